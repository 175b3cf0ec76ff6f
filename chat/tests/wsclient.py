"""A protocol-following chat client for tests that drive real server processes over real sockets.

It does what docs/protocol.md asks of a client: keeps every entry it has seen by seq (messages, edits, deletes and
reactions alike: each seq counts as held for gaps), folds them into each message's state by the protocol's rule,
resumes with ``?after=<contiguous seq>`` on reconnect (to whichever server it is pointed at), fills holes with
``history``, and resends everything unacknowledged (messages, edits, deletes, reactions) with its original
``client_id``.

It also keeps what the oracle (chat.tests.oracle) needs to judge it afterwards: every frame it received, when and on
which connection; what it sent under each client_id; and which of its requests each answer was for.
"""

import asyncio
import contextlib
import json
import socket as socketlib
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Frames the server sends only in answer to one of the client's own (the consumer handles a socket's frames one
# at a time, so they come in the order of the requests), and what each request is answered by.
ANSWERS = {
    "message": "ack",
    "edit": "ack",
    "delete": "ack",
    "react": "ack",
    "moderate": "ack",
    "ping": "pong",
    "history": "history",
}
# Errors that say "not now": nothing was stored and the same frame goes again. Any other refuses it for good.
RETRYABLE = {"rate_limited", "unavailable"}


def entry_identity(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What never changes about an entry's frame (a message's body and state do): two frames of one seq that
    differ here are two different entries."""
    kind = entry["type"]
    if kind == "message":
        return (kind, entry["author"], entry["client_id"], entry.get("reply_to"))
    if kind == "reaction":
        return (kind, entry["target"], entry["user"], entry["emoji"], entry["on"])
    if kind == "moderation":
        return (kind, entry["action"], entry["user"], entry["by"], entry["seconds"])
    return (kind, entry["target"], entry["by"])


@dataclass(slots=True)
class Folded:
    """A message as this client shows it: its state as of ``state_seq`` (docs/protocol.md, "Folding entries")."""

    seq: int
    author: str
    client_id: str | None
    body: str
    edited: bool
    deleted: bool
    reactions: dict[str, list[str]]
    state_seq: int

    @classmethod
    def of(cls, frame: dict[str, Any]) -> "Folded":
        return cls(
            seq=frame["seq"],
            author=frame["author"],
            client_id=frame["client_id"],
            body=frame["body"],
            edited=frame.get("edited_at") is not None,
            deleted=bool(frame.get("deleted")),
            reactions={emoji: list(names) for emoji, names in (frame.get("reactions") or {}).items()},
            state_seq=frame.get("state_seq") or frame["seq"],
        )

    def apply(self, entry: dict[str, Any]) -> None:
        """Fold an edit, delete or reaction whose seq is above ``state_seq`` into the state."""
        kind = entry["type"]
        if kind == "edit":
            self.body = entry["body"]
            self.edited = True
        elif kind == "delete":
            self.deleted = True
            self.body = ""
            self.reactions = {}
        elif kind == "reaction":
            names = self.reactions.setdefault(entry["emoji"], [])
            if entry["on"]:
                names.append(entry["user"])
            elif entry["user"] in names:
                names.remove(entry["user"])
            if not names:
                del self.reactions[entry["emoji"]]
        self.state_seq = entry["seq"]


@dataclass(frozen=True, slots=True)
class Request:
    """A frame this client sent that the server answers: its type, client_id, and when it went."""

    type: str
    client_id: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Received:
    """A frame as it arrived: when (monotonic), on which connection (1 is the first), and for an answer, when its
    request was sent."""

    at: float
    connection: int
    frame: dict[str, Any]
    asked_at: float | None = None


class ChatClient:
    def __init__(
        self, *, room: str, cookie: str | None = None, receive_buffer: int | None = None, ping_interval: float = 20
    ) -> None:
        self.room = room
        self.cookie = cookie
        # SO_RCVBUF for the socket (small makes a client that stops reading stall the server's sends sooner).
        self.receive_buffer = receive_buffer
        # The websockets library's own keepalive; None leaves a dead network to the server's pings.
        self.ping_interval = ping_interval
        # Every entry held, by seq, as first received (a message's current state is in ``messages``).
        self.view: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, Folded] = {}
        # Entries are folded in seq order, so only up to the contiguous run: one above a hole waits for it. Its
        # target, with a lower seq, is then always held.
        self._folded_through = 0
        # Message frames that came with an older state than the one held (a history page read before an entry
        # that arrived first): the newer one was kept.
        self.older_states = 0
        # The view only grows, so its contiguous run and its top are kept as it grows, not recounted: recounting
        # per message made a 100-member burst quadratic in the load generator (make soak's L2 spent its time here).
        self._through = 0
        self._highest = 0
        self.duplicates = 0
        # A seq seen twice as two different entries: two different rows under one seq, never allowed.
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.outbox: dict[str, dict[str, Any]] = {}  # client_id -> frame, until acked or refused
        self.sent: dict[str, dict[str, Any]] = {}  # client_id -> frame, everything ever queued
        self.sent_at: dict[str, float] = {}  # client_id -> monotonic time it was last (re)sent
        self.acked: dict[str, int | None] = {}  # client_id -> seq (None: a reaction that never wrote anything)
        self.acked_at: dict[str, float] = {}  # client_id -> monotonic time of its first ack
        # An ack that named another seq than an earlier ack of the same client_id.
        self.ack_conflicts: list[tuple[str, int | None, int | None]] = []
        self.refused: dict[str, str] = {}  # client_id -> the error code that refused it for good
        # Answers that did not fit the request they were taken for: (request, answer).
        self.reply_mismatches: list[tuple[Request | None, dict[str, Any]]] = []
        self.errors: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []
        self.reader_failures: list[str] = []  # exceptions that ended a reader other than the socket closing
        self.online: set[str] = set()
        self.last_read = 0  # the read marker: hello's last_read, then each read frame's seq
        self.reads: list[int] = []  # the seq of every read frame received
        self.you = ""
        self.received: list[Received] = []
        self.opened_at: list[float] = []  # monotonic time each connection was begun, by connection number - 1
        self.connections = 0
        self._socket: ClientConnection | None = None
        self._requests: deque[Request] = deque()
        # Held while a request is queued and written, so the requests queue in the order they go on the wire.
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._hello = asyncio.Event()
        self._fills: set[asyncio.Future[None]] = set()
        self._reading = asyncio.Event()
        self._reading.set()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every frame received, in order."""
        return [r.frame for r in self.received]

    @property
    def contiguous(self) -> int:
        while self._through + 1 in self.view:
            self._through += 1
        return self._through

    async def connect(self, base_url: str) -> None:
        """Open a socket to ``base_url`` (http://host:port), resuming after the contiguous seq, and resend."""
        await self.close()
        after = f"?after={self.contiguous}" if self.connections else ""
        url = base_url.replace("http", "ws", 1) + f"/ws/chat/{self.room}/{after}"
        headers = {"Cookie": self.cookie} if self.cookie else {}
        self._hello.clear()
        begun = time.monotonic()
        options: dict[str, Any] = {}
        if self.receive_buffer is not None:
            options["sock"] = await _small_buffer_socket(base_url, self.receive_buffer)
        socket = await connect(
            url,
            origin=base_url,  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=2**22,
            ping_interval=self.ping_interval,
            open_timeout=10,
            **options,
        )
        self._socket, self._requests = socket, deque()
        self.connections += 1
        self.opened_at.append(begun)
        self._reader = asyncio.create_task(self._read(socket, self.connections, self._requests))
        # The server may accept and then close at once (4429, 1011) instead of saying hello.
        hello = asyncio.ensure_future(self._hello.wait())
        await asyncio.wait({hello, self._reader}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not self._hello.is_set():
            hello.cancel()
            code = socket.close_code
            await self.close()
            raise ConnectionError(f"no hello from {url} (close code {code})")
        await self.resend(older_than=0)

    async def resend(self, *, older_than: float) -> int:
        """Send again every unacknowledged frame last sent at least ``older_than`` seconds ago; how many."""
        now = time.monotonic()
        due = [(cid, frame) for cid, frame in list(self.outbox.items()) if now - self.sent_at.get(cid, 0) >= older_than]
        for client_id, frame in due:
            if not self.connected:
                break
            if client_id not in self.outbox:
                continue  # answered while the others went
            self.sent_at[client_id] = now
            with contextlib.suppress(ConnectionClosed):  # resent on the next connect
                await self._send(frame)
        return len(due)

    def pause_reading(self) -> None:
        """Stop reading frames, as a frozen tab does: the socket's buffers fill and the server's sends stall."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._socket = None
        self._reader = None

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def send(self, body: str, *, reply_to: int | None = None) -> str:
        """Queue a message in the outbox and send it if connected; returns its client_id."""
        frame: dict[str, Any] = {"type": "message", "body": body}
        if reply_to is not None:
            frame["reply_to"] = reply_to
        return await self.post(frame)

    async def edit(self, target: int, body: str) -> str:
        return await self.post({"type": "edit", "target": target, "body": body})

    async def delete(self, target: int) -> str:
        return await self.post({"type": "delete", "target": target})

    async def react(self, target: int, emoji: str, *, on: bool = True) -> str:
        return await self.post({"type": "react", "target": target, "emoji": emoji, "on": on})

    async def moderate(self, action: str, user: str | None = None, seconds: int | None = None) -> str:
        """Send a moderation action (it is in the outbox until acked or refused, like a change)."""
        return await self.post({"type": "moderate", "action": action, "user": user, "seconds": seconds})

    async def mark_read(self, seq: int) -> None:
        """Say the person has read the room up to ``seq`` (answered, if it moves the marker, by a read frame)."""
        await self._send({"type": "read", "seq": seq})

    async def post(self, frame: dict[str, Any]) -> str:
        """Queue a frame that changes the room (a message, edit, delete or reaction) in the outbox under a new
        client_id, and send it if connected; returns the client_id. It is resent until acked or refused."""
        client_id = uuid.uuid4().hex
        frame = {**frame, "client_id": client_id}
        self.outbox[client_id] = self.sent[client_id] = frame
        self.sent_at[client_id] = time.monotonic()
        self._queued(client_id)
        if self.connected:
            with contextlib.suppress(ConnectionClosed):  # resent on the next connect
                await self._send(frame)
        return client_id

    def _queued(self, client_id: str) -> None:
        """Called when a frame enters the outbox, before it is first sent (for subclasses that time it)."""

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            socket, requests = self._socket, self._requests
            if socket is None:
                raise ConnectionClosed(None, None)
            if frame["type"] in ANSWERS:
                requests.append(Request(frame["type"], frame.get("client_id"), time.monotonic()))
            await socket.send(json.dumps(frame))

    async def _read(self, socket: ClientConnection, number: int, requests: deque[Request]) -> None:
        try:
            while True:
                await self._reading.wait()
                text = await socket.recv()
                frame = json.loads(text)
                request = self._answered(frame, requests)
                self.received.append(Received(time.monotonic(), number, frame, request.at if request else None))
                await self._handle(frame)
        except ConnectionClosed:
            pass
        except Exception as exc:
            # A frame this client could not take: kept, so that a test failing on "not connected" says why.
            self.reader_failures.append(repr(exc))
            raise
        finally:
            self.close_codes.append(socket.close_code)

    def _answered(self, frame: dict[str, Any], requests: deque[Request]) -> Request | None:
        """The request an answer (ack, error, pong, history) is for; an error refuses a client_id for good unless
        it says "not now"."""
        kind = frame["type"]
        if kind not in ("ack", "error", "pong", "history"):
            return None
        request = requests.popleft() if requests else None
        if request is None or (kind != "error" and ANSWERS[request.type] != kind):
            self.reply_mismatches.append((request, frame))
            return None
        if kind == "ack" and frame["client_id"] != request.client_id:
            self.reply_mismatches.append((request, frame))
            return None
        client_id = request.client_id
        if kind == "error" and client_id and frame["code"] not in RETRYABLE and client_id not in self.acked:
            self.outbox.pop(client_id, None)
            self.refused.setdefault(client_id, frame["code"])
        return request

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "hello":
            self.you = frame["you"]
            self.online = set(frame["online"])
            self.last_read = frame.get("last_read", 0)
            self._hello.set()
            if frame["last_seq"] > self.contiguous and self.connections > 1:
                self._fill_soon(frame["last_seq"] + 1)
        elif kind in ("message", "edit", "delete", "reaction", "moderation"):
            self._see(frame)
        elif kind == "history":
            for entry in frame["messages"]:
                self._see(entry)
        elif kind == "ack":
            client_id = frame["client_id"]
            self.outbox.pop(client_id, None)
            if client_id in self.acked and self.acked[client_id] != frame["seq"]:
                self.ack_conflicts.append((client_id, self.acked[client_id], frame["seq"]))
            if client_id not in self.acked:
                self.acked[client_id] = frame["seq"]
                self.acked_at[client_id] = time.monotonic()
        elif kind == "read":
            self.reads.append(frame["seq"])
            self.last_read = max(self.last_read, frame["seq"])
        elif kind == "error":
            self.errors.append(frame)
        elif kind == "join":
            self.online.add(frame["user"])
        elif kind == "leave":
            self.online.discard(frame["user"])
        elif kind == "online":
            self.online = set(frame["online"])
        elif kind == "pong" and frame["last_seq"] > self.contiguous:
            self._fill_soon(frame["last_seq"] + 1)

    def _see(self, entry: dict[str, Any]) -> None:
        """Take an entry of any kind: held by seq, then folded (a message frame's state at once if it is newer)."""
        seq = entry["seq"]
        if seq in self.view:
            self.duplicates += 1
            known = self.view[seq]
            if entry_identity(known) != entry_identity(entry):
                self.conflicts.append((known, entry))
            elif entry["type"] == "message":
                self._take_state(entry)  # a history page may carry a newer state than the one held
            return
        self.view[seq] = entry
        if entry["type"] == "message":
            self._take_state(entry)
        self._fold()
        self._highest = highest = max(self._highest, seq)
        if highest > self.contiguous + 1:
            self._fill_soon(highest)

    def _take_state(self, frame: dict[str, Any]) -> None:
        """A message frame replaces the state held for its seq, unless the one held is later (protocol rule 1): a
        history page read before an entry was committed may arrive after that entry was folded, and replacing
        would undo it for good (its seq is held, so it is never asked for again)."""
        state = Folded.of(frame)
        held = self.messages.get(frame["seq"])
        if held is not None and state.state_seq < held.state_seq:
            self.older_states += 1
            return
        self.messages[frame["seq"]] = state

    def _fold(self) -> None:
        """Fold the edits, deletes and reactions up to the contiguous seq into their targets, in seq order; one at
        or below its target's state_seq is already in that state, and one whose target is not held is skipped."""
        through = self.contiguous
        while self._folded_through < through:
            self._folded_through += 1
            entry = self.view[self._folded_through]
            if entry["type"] in ("message", "moderation"):
                continue
            target = self.messages.get(entry["target"])
            if target is not None and entry["seq"] > target.state_seq:
                target.apply(entry)

    def _fill_soon(self, before: int) -> None:
        # A task, so that the reader never waits to send (the server may be waiting for it to read).
        self._fills.add(task := asyncio.ensure_future(self._fill(before)))
        task.add_done_callback(self._fills.discard)

    async def _fill(self, before: int) -> None:
        """Ask for the entries missing below ``before``; repeated until the hole is closed.

        The page asked for is the one just below the lowest entry held above the contiguous run, so that a
        hole wider than a page, below a long run (a resume's 1000 newest), is filled from its top down."""
        through = self.contiguous
        above = [seq for seq in self.view if seq > through]
        if above:
            before = min(above)
        if self.connected:
            with contextlib.suppress(ConnectionClosed):  # asked again after the next connect
                await self._send({"type": "history", "before": before, "limit": 100})

    async def ping(self) -> None:
        await self._send({"type": "ping"})


async def _small_buffer_socket(base_url: str, size: int) -> socketlib.socket:
    """A TCP socket to the server with SO_RCVBUF set before connecting, so the window it offers stays small."""
    host, port = base_url.split("://", 1)[1].rsplit(":", 1)
    sock = socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM)
    sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_RCVBUF, size)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return sock
