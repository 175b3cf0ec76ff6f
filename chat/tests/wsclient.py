"""A protocol-following chat client for tests that drive real server processes over real sockets.

It does what docs/protocol.md asks of a client: keeps every message it has seen by seq, resumes with
``?after=<contiguous seq>`` on reconnect (to whichever server it is pointed at), fills holes with ``history``, and
resends every unacknowledged message with its original ``client_id``.
"""

import asyncio
import contextlib
import json
import socket as socketlib
import time
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


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
        self.view: dict[int, dict[str, Any]] = {}
        # The view only grows, so its contiguous run and its top are kept as it grows, not recounted: recounting
        # per message made a 100-member burst quadratic in the load generator (make soak's L2 spent its time here).
        self._through = 0
        self._highest = 0
        self.duplicates = 0
        # A seq seen twice with a different message: two different rows under one seq, never allowed.
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.outbox: dict[str, str] = {}  # client_id -> body, until acked
        self.sent_at: dict[str, float] = {}  # client_id -> monotonic time it was last (re)sent
        self.acked: dict[str, int] = {}  # client_id -> seq
        # An ack that named another seq than an earlier ack of the same client_id.
        self.ack_conflicts: list[tuple[str, int, int]] = []
        self.errors: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []
        self.online: set[str] = set()
        self.you = ""
        self.events: list[dict[str, Any]] = []
        self.connections = 0
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._hello = asyncio.Event()
        self._fills: set[asyncio.Future[None]] = set()
        self._reading = asyncio.Event()
        self._reading.set()

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
        options: dict[str, Any] = {}
        if self.receive_buffer is not None:
            options["sock"] = await _small_buffer_socket(base_url, self.receive_buffer)
        self._socket = await connect(
            url,
            origin=base_url,  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=2**22,
            ping_interval=self.ping_interval,
            open_timeout=10,
            **options,
        )
        self.connections += 1
        self._reader = asyncio.create_task(self._read(self._socket))
        # The server may accept and then close at once (4429, 1011) instead of saying hello.
        hello = asyncio.ensure_future(self._hello.wait())
        await asyncio.wait({hello, self._reader}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not self._hello.is_set():
            hello.cancel()
            code = self._socket.close_code
            await self.close()
            raise ConnectionError(f"no hello from {url} (close code {code})")
        await self.resend(older_than=0)

    async def resend(self, *, older_than: float) -> int:
        """Send again every unacknowledged message last sent at least ``older_than`` seconds ago; how many."""
        now = time.monotonic()
        due = [(cid, body) for cid, body in list(self.outbox.items()) if now - self.sent_at.get(cid, 0) >= older_than]
        for client_id, body in due:
            if not self.connected:
                break
            self.sent_at[client_id] = now
            with contextlib.suppress(ConnectionClosed):  # resent on the next connect
                await self._send({"type": "message", "body": body, "client_id": client_id})
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

    async def send(self, body: str) -> str:
        """Queue a message in the outbox and send it if connected; returns its client_id."""
        client_id = uuid.uuid4().hex
        self.outbox[client_id] = body
        self.sent_at[client_id] = time.monotonic()
        if self.connected:
            with contextlib.suppress(ConnectionClosed):  # resent on the next connect
                await self._send({"type": "message", "body": body, "client_id": client_id})
        return client_id

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._socket is not None
        await self._socket.send(json.dumps(frame))

    async def _read(self, socket: ClientConnection) -> None:
        try:
            while True:
                await self._reading.wait()
                text = await socket.recv()
                frame = json.loads(text)
                self.events.append(frame)
                await self._handle(frame)
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(socket.close_code)

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "hello":
            self.you = frame["you"]
            self.online = set(frame["online"])
            self._hello.set()
            if frame["last_seq"] > self.contiguous and self.connections > 1:
                await self._fill(frame["last_seq"] + 1)
        elif kind == "message":
            self._see(frame)
        elif kind == "history":
            for message in frame["messages"]:
                self._see(message)
        elif kind == "ack":
            client_id = frame["client_id"]
            self.outbox.pop(client_id, None)
            if client_id in self.acked and self.acked[client_id] != frame["seq"]:
                self.ack_conflicts.append((client_id, self.acked[client_id], frame["seq"]))
            self.acked.setdefault(client_id, frame["seq"])
        elif kind == "error":
            self.errors.append(frame)
        elif kind == "join":
            self.online.add(frame["user"])
        elif kind == "leave":
            self.online.discard(frame["user"])
        elif kind == "online":
            self.online = set(frame["online"])
        elif kind == "pong" and frame["last_seq"] > self.contiguous:
            await self._fill(frame["last_seq"] + 1)

    def _see(self, message: dict[str, Any]) -> None:
        if message["seq"] in self.view:
            self.duplicates += 1
            known = self.view[message["seq"]]
            if (known["body"], known["client_id"]) != (message["body"], message["client_id"]):
                self.conflicts.append((known, message))
            return
        self.view[message["seq"]] = message
        self._highest = highest = max(self._highest, message["seq"])
        if highest > self.contiguous + 1:
            self._fills.add(task := asyncio.ensure_future(self._fill(highest)))
            task.add_done_callback(self._fills.discard)

    async def _fill(self, before: int) -> None:
        """Ask for the messages missing below ``before``; repeated until the hole is closed.

        The page asked for is the one just below the lowest message held above the contiguous run, so that a
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
