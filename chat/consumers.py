"""The room socket: accept or refuse, decode, validate, dispatch to a service, encode the answer."""

import asyncio
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import aclose_old_connections, database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from . import fanout, heartbeat, metrics, presence, protocol, services
from .broadcast import LAYER_ERRORS, broadcast
from .exceptions import ClientError
from .identity import Identity, identify
from .models import Room
from .ratelimit import ConnectionCounter, TokenBucket
from .rooms import normalize_room_name

logger = logging.getLogger(__name__)

_open_sockets = ConnectionCounter()


@database_sync_to_async
def _identify(scope: dict[str, Any]) -> Identity | None:
    # Reading the session touches the database, so it happens in a thread.
    return identify(scope.get("user"), scope.get("session"))


def _after(query_string: bytes) -> int | None:
    """The ``after`` resume point from the query string; anything but a whole number >= 0 means none."""
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values or not values[0].isdigit() or len(values[0]) > 18:
        return None
    return int(values[0])


class ChatConsumer:
    """One room socket. Live frames reach it through the process's room fan-out (chat.fanout), not through a
    channel-layer channel of its own.

    Channels' AsyncWebsocketConsumer protocol (websocket_connect / _receive / _disconnect, accept, close, send),
    without its base classes: they give every instance a __dict__, and an idle socket's consumer lives as long as
    the socket. With __slots__ it is about 0.2 KiB instead of about 1 KiB.
    """

    __slots__ = (
        "_closing",
        "base_send",
        "bucket",
        "connection_id",
        "counted",
        "identity",
        "limit_keys",
        "name",
        "opened",
        "ready",
        "room",
        "scope",
        "sent_through",
        "server_send",
        "waiting",
    )

    room: Room | None
    identity: Identity
    name: str
    opened: float
    # Live messages with a seq at or below this were already sent from the log (backlog or resync).
    sent_through: int
    # Until hello and the backlog are out, live frames wait in self.waiting so they cannot overtake them.
    ready: bool
    # Whether this socket is counted against its address's and user's caps.
    counted: bool

    def __init__(self) -> None:
        self.connection_id = uuid.uuid4().hex
        self.waiting: list[tuple[int, dict[str, Any]]] = []
        self._closing: asyncio.Task[None] | None = None
        self.room = None
        self.name = ""
        self.opened = 0.0
        self.sent_through = 0
        self.ready = False
        self.counted = False

    @classmethod
    def as_asgi(cls) -> Any:
        """The ASGI application for a route: a consumer per connection, as channels' as_asgi."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            return await cls()(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = {}  # type: ignore[attr-defined]
        return app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' consumer loop without a layer channel per socket: chatsite never sends to one socket alone
        # through the layer, and not having one saves a Redis subscription per connection.
        self.scope = scope
        self.base_send = send
        # Live frames go out through the server's own send (chat.socketstack keeps it in the scope).
        self.server_send = scope.get(fanout.SERVER_SEND, send)
        # One source of messages, so no await_many_dispatch: it would keep a second task, and an asyncio.wait
        # with its future and callbacks, alive for every idle socket (about 2 KiB each, seen with tracemalloc).
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:  # the consumer's normal way out
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first hops to a worker thread to close stale database connections, about 200 µs
        # per frame. Every database call here runs through database_sync_to_async, which does that in its own
        # thread anyway, so handlers are called directly.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # Channels' AsyncWebsocketConsumer, as ChatConsumer uses it (no groups, no AcceptConnection / DenyConnection).

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.connect()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if message.get("text") is not None:
            await self.receive(text_data=message["text"])
        else:
            await self.receive(bytes_data=message["bytes"])

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        await self.disconnect(message["code"])
        await aclose_old_connections()
        raise StopConsumer()

    async def accept(self, subprotocol: str | None = None) -> None:
        await self.base_send({"type": "websocket.accept", "subprotocol": subprotocol})

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        message: dict[str, Any] = {"type": "websocket.close"}
        if code is not None:
            message["code"] = code
        if reason:
            message["reason"] = reason
        await self.base_send(message)

    async def send(self, text_data: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text_data})

    async def connect(self) -> None:
        name = normalize_room_name(self.scope["url_route"]["kwargs"]["room"])
        identity = await _identify(self.scope)
        await self.accept()
        if name is None:
            await self.close(code=protocol.CLOSE_ROOM_NOT_FOUND)
            return
        if identity is None:
            await self.close(code=protocol.CLOSE_LOGIN_REQUIRED)
            return
        client = self.scope.get("client")
        self.limit_keys = [f"user:{identity.name}"] + ([f"address:{client[0]}"] if client else [])
        if not _open_sockets.try_open(self.limit_keys, settings.CHAT_MAX_SOCKETS_PER_CLIENT):
            logger.warning("refused room=%s user=%s: too many sockets from %s", name, identity.name, client)
            await self.close(code=protocol.CLOSE_TOO_MANY_SOCKETS)
            return
        self.counted = True
        self.identity = identity
        self.name = identity.name
        self.opened = time.monotonic()
        self.bucket = TokenBucket(burst=settings.CHAT_RATE_LIMIT_BURST, per_second=settings.CHAT_RATE_LIMIT_PER_SECOND)
        room = await database_sync_to_async(services.room_get_or_create)(name)
        # Subscribe before reading the backlog: a message committed after the read is then delivered live, and
        # one delivered both ways is dropped by seq, so the client sees no gap and no duplicate.
        try:
            await fanout.hub.join(room.name, self)
        except LAYER_ERRORS as exc:
            metrics.LAYER_ERRORS.inc()
            logger.warning("connect room=%s refused: channel layer unavailable: %r", room.name, exc)
            await self.close(code=protocol.CLOSE_INTERNAL_ERROR)
            return
        self.room = room
        heartbeat.start()
        metrics.CONNECTIONS.inc()
        metrics.CONNECTS.inc()
        after = _after(self.scope["query_string"])
        try:
            change = await presence.enter(room, channel_name=self.connection_id, name=identity.name)
            messages, last_seq = await services.backlog(room, after=after)
        except DatabaseError as exc:
            # The client reconnects with backoff and resumes; nothing was sent, so nothing is half-sent.
            logger.warning("connect room=%s closed: database unavailable: %r", room.name, exc)
            await self.close(code=protocol.CLOSE_INTERNAL_ERROR)
            return
        if after is not None:
            metrics.RESUMES.inc()
        self.sent_through = last_seq
        await self._send(protocol.hello(room=room.name, you=identity.name, online=change.online, last_seq=last_seq))
        for payload in messages:
            await self._send(payload)
        await self._release_waiting()
        if change.edge:
            await broadcast(room.name, presence.presence_event("join", identity.name))
        logger.info("connect room=%s user=%s after=%s backlog=%d", room.name, identity.name, after, len(messages))

    async def _release_waiting(self) -> None:
        # Frames that arrive while these are sent join the list, so the loop ends with nothing left behind.
        while self.waiting:
            seq, message = self.waiting.pop(0)
            if seq == 0 or seq > self.sent_through:
                await self.server_send(message)
        self.ready = True

    async def disconnect(self, code: int) -> None:
        if self.counted:
            _open_sockets.close(self.limit_keys)
            self.counted = False
        if self.room is None:
            return
        await fanout.hub.leave(self.room.name, self)
        heartbeat.stop_if_idle()
        metrics.CONNECTIONS.dec()
        try:
            change = await presence.leave(self.room, channel_name=self.connection_id, name=self.name)
        except DatabaseError as exc:
            # The row stays behind; the heartbeat sweep removes it and announces the leave after the TTL.
            logger.warning("close room=%s: presence not updated, database unavailable: %r", self.room.name, exc)
        else:
            if change.edge:
                await broadcast(self.room.name, presence.presence_event("leave", self.name))
        duration = time.monotonic() - self.opened
        logger.info("close room=%s user=%s code=%s duration=%.1fs", self.room.name, self.name, code, duration)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None:
            return
        if text_data is None:
            await self._send(protocol.error(code=protocol.BAD_FRAME, detail="Binary frames are not supported."))
            return
        if len(text_data.encode("utf-8", "surrogatepass")) > settings.CHAT_MAX_FRAME_BYTES:
            await self.close(code=protocol.CLOSE_FRAME_TOO_BIG)
            return
        try:
            if not self.bucket.take():
                metrics.RATE_LIMITED.inc()
                raise ClientError(protocol.RATE_LIMITED, "Too many frames; slow down.")
            frame = protocol.parse(
                text_data,
                max_length=settings.CHAT_MAX_MESSAGE_LENGTH,
                history_max=settings.CHAT_HISTORY_MAX_LIMIT,
            )
            await self._handle(self.room, frame)
        except ClientError as exc:
            await self._send(protocol.error(code=exc.code, detail=exc.detail))
        except DatabaseError as exc:
            # Not the client's fault and not a bug to trace: the frame is answered, the socket stays open.
            logger.warning("room=%s: database unavailable: %r", self.room.name, exc)
            await self._send(protocol.error(code=protocol.UNAVAILABLE, detail="The server's database is unavailable."))

    async def _handle(self, room: Room, frame: protocol.ClientFrame) -> None:
        match frame:
            case protocol.MessageFrame(body=body, client_id=client_id):
                posted = await services.amessage_create(
                    room=room, author=self.identity.name, user=self.identity.user, body=body, client_id=client_id
                )
                await self._send(protocol.ack(client_id=posted.message.client_id, seq=posted.message.seq))
            case protocol.TypingFrame():
                await broadcast(room.name, presence.presence_event("typing", self.identity.name))
            case protocol.PingFrame():
                await self._send(protocol.pong(last_seq=await services.last_seq(room)))
            case protocol.HistoryFrame(before=before, limit=limit):
                metrics.HISTORY_REQUESTS.inc()
                messages, has_more = await services.history(room, before=before, limit=limit)
                await self._send(protocol.history(before=before, messages=messages, has_more=has_more))

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=protocol.encode(frame))

    # The room fan-out's side (chat.fanout.Member): live frames arrive as ready-made ASGI messages.

    async def deliver_message(self, seq: int, message: dict[str, Any]) -> None:
        if not self.ready:
            self.waiting.append((seq, message))
        elif seq > self.sent_through:
            await self.server_send(message)

    async def deliver(self, message: dict[str, Any]) -> None:
        if not self.ready:
            self.waiting.append((0, message))
        else:
            await self.server_send(message)

    def stalled(self) -> None:
        """The socket stopped reading: close it, so that it reconnects and resumes from the log."""
        self._closing = asyncio.get_running_loop().create_task(self.close(code=protocol.CLOSE_TOO_SLOW))

    async def resync(self) -> None:
        """The layer failed and is back: whatever it lost meanwhile is in the log, so send that."""
        if self.room is None or not self.ready:
            return
        messages, last_seq = await services.backlog(self.room, after=self.sent_through)
        metrics.GAPS_HEALED.inc(len(messages))
        for payload in messages:
            await self._send(payload)
        self.sent_through = max(self.sent_through, last_seq)
        logger.info("resync room=%s user=%s healed=%d", self.room.name, self.name, len(messages))


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any WebSocket path that is not a room: refused at the handshake instead of a routing traceback."""

    async def connect(self) -> None:
        await self.close()
