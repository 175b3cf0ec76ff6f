"""A protocol-following chat client for tests that drive real server processes over real sockets.

It does what docs/protocol.md asks of a client: keeps every message it has seen by seq, resumes with
``?after=<contiguous seq>`` on reconnect (to whichever server it is pointed at), fills holes with ``history``, and
resends every unacknowledged message with its original ``client_id``.
"""

import asyncio
import contextlib
import json
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class ChatClient:
    def __init__(self, *, room: str, cookie: str | None = None) -> None:
        self.room = room
        self.cookie = cookie
        self.view: dict[int, dict[str, Any]] = {}
        self.duplicates = 0
        self.outbox: dict[str, str] = {}  # client_id -> body, until acked
        self.acked: dict[str, int] = {}  # client_id -> seq
        self.online: set[str] = set()
        self.you = ""
        self.events: list[dict[str, Any]] = []
        self.connections = 0
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._hello = asyncio.Event()
        self._fills: set[asyncio.Future[None]] = set()

    @property
    def contiguous(self) -> int:
        seq = 0
        while seq + 1 in self.view:
            seq += 1
        return seq

    async def connect(self, base_url: str) -> None:
        """Open a socket to ``base_url`` (http://host:port), resuming after the contiguous seq, and resend."""
        await self.close()
        after = f"?after={self.contiguous}" if self.connections else ""
        url = base_url.replace("http", "ws", 1) + f"/ws/chat/{self.room}/{after}"
        headers = {"Cookie": self.cookie} if self.cookie else {}
        self._hello.clear()
        self._socket = await connect(url, origin=base_url, additional_headers=headers, max_size=2**22)  # type: ignore[arg-type]
        self.connections += 1
        self._reader = asyncio.create_task(self._read(self._socket))
        await asyncio.wait_for(self._hello.wait(), 10)
        for client_id, body in list(self.outbox.items()):
            await self._send({"type": "message", "body": body, "client_id": client_id})

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
        if self.connected:
            with contextlib.suppress(ConnectionClosed):  # resent on the next connect
                await self._send({"type": "message", "body": body, "client_id": client_id})
        return client_id

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._socket is not None
        await self._socket.send(json.dumps(frame))

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for text in socket:
                frame = json.loads(text)
                self.events.append(frame)
                await self._handle(frame)
        except ConnectionClosed:
            pass

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
            self.outbox.pop(frame["client_id"], None)
            self.acked[frame["client_id"]] = frame["seq"]
        elif kind == "join":
            self.online.add(frame["user"])
        elif kind == "leave":
            self.online.discard(frame["user"])
        elif kind == "pong" and frame["last_seq"] > self.contiguous:
            await self._fill(frame["last_seq"] + 1)

    def _see(self, message: dict[str, Any]) -> None:
        if message["seq"] in self.view:
            self.duplicates += 1
            return
        self.view[message["seq"]] = message
        highest = max(self.view)
        if highest > self.contiguous + 1:
            self._fills.add(task := asyncio.ensure_future(self._fill(highest)))
            task.add_done_callback(self._fills.discard)

    async def _fill(self, before: int) -> None:
        """Ask for the messages missing below ``before``; repeated until the hole is closed."""
        if self.connected:
            with contextlib.suppress(ConnectionClosed):  # asked again after the next connect
                await self._send({"type": "history", "before": before, "limit": 100})

    async def ping(self) -> None:
        await self._send({"type": "ping"})


async def eventually(condition: Any, *, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass (then AssertionError)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
