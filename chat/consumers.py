"""The room socket: accept or refuse, decode, validate, dispatch to a service, encode the answer."""

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings

from . import heartbeat, metrics, presence, protocol, services
from .broadcast import LAYER_ERRORS, broadcast
from .exceptions import ClientError
from .identity import Identity, identify
from .models import Room
from .ratelimit import TokenBucket
from .rooms import group_name, normalize_room_name

logger = logging.getLogger(__name__)

# An internal event: the channel layer failed this socket's receive (Redis went away) and answers again.
RESYNC_EVENT = "chat.resync"
# Channel-layer events that touch no database. Channels' dispatch hops to a worker thread to close stale
# database connections before every handler (~200 µs); these skip it, since the database helpers close stale
# connections themselves in the thread they run in.
_NO_DATABASE_EVENTS = frozenset({services.MESSAGE_EVENT, presence.PRESENCE_EVENT})
_LAYER_RETRY_SECONDS = (0.5, 1, 2, 5)


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


class ChatConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    identity: Identity
    opened: float = 0.0
    # Live messages with a seq at or below this were already sent from the log (backlog or resync).
    sent_through: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' own loop, but with a channel-layer receive that survives Redis going away (see
        # _receive_from_layer) instead of ending the consumer with an unhandled ConnectionError.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        try:
            with contextlib.suppress(StopConsumer):  # the consumer's normal way out
                await await_many_dispatch([receive, self._receive_from_layer], self.dispatch)
        finally:
            # However the socket ended, the heartbeat must stop renewing it.
            heartbeat.unregister(self.channel_name)

    async def _receive_from_layer(self) -> dict[str, Any]:
        """The next channel-layer event; if the layer fails, wait until it answers again, then resync."""
        try:
            return await self.channel_layer.receive(self.channel_name)
        except LAYER_ERRORS as exc:
            metrics.LAYER_ERRORS.inc()
            logger.warning("channel layer receive failed for room=%s: %r", self._room_name, exc)
        for attempt in itertools.count():
            await asyncio.sleep(_LAYER_RETRY_SECONDS[min(attempt, len(_LAYER_RETRY_SECONDS) - 1)])
            try:
                # Rejoining the group is both the probe and the repair: an emptied Redis forgot the membership.
                if self.room is not None:
                    await self.channel_layer.group_add(group_name(self.room.name), self.channel_name)
            except LAYER_ERRORS:
                continue
            break
        return {"type": RESYNC_EVENT}

    @property
    def _room_name(self) -> str:
        return self.room.name if self.room else "-"

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] in _NO_DATABASE_EVENTS:
            await getattr(self, message["type"].replace(".", "_"))(message)
        else:
            await super().dispatch(message)

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
        self.identity = identity
        self.opened = time.monotonic()
        self.bucket = TokenBucket(burst=settings.CHAT_RATE_LIMIT_BURST, per_second=settings.CHAT_RATE_LIMIT_PER_SECOND)
        room = await database_sync_to_async(services.room_get_or_create)(name)
        # Join the group before reading the backlog: a message committed after the read is then delivered
        # live, and one delivered both ways is dropped by seq, so the client sees no gap and no duplicate.
        try:
            await self.channel_layer.group_add(group_name(room.name), self.channel_name)
        except LAYER_ERRORS as exc:
            metrics.LAYER_ERRORS.inc()
            logger.warning("connect room=%s refused: channel layer unavailable: %r", room.name, exc)
            await self.close(code=protocol.CLOSE_INTERNAL_ERROR)
            return
        self.room = room
        heartbeat.register(self.channel_name, room.name)
        metrics.CONNECTIONS.inc()
        metrics.CONNECTS.inc()
        change = await presence.enter(room, channel_name=self.channel_name, name=identity.name)
        after = _after(self.scope["query_string"])
        if after is not None:
            metrics.RESUMES.inc()
        messages, last_seq = await services.backlog(room, after=after)
        self.sent_through = last_seq
        await self._send(protocol.hello(room=room.name, you=identity.name, online=change.online, last_seq=last_seq))
        for payload in messages:
            await self._send(payload)
        if change.edge:
            await broadcast(room.name, presence.presence_event("join", identity.name))
        logger.info("connect room=%s user=%s after=%s backlog=%d", room.name, identity.name, after, len(messages))

    async def disconnect(self, code: int) -> None:
        if self.room is None:
            return
        heartbeat.unregister(self.channel_name)
        metrics.CONNECTIONS.dec()
        try:
            await self.channel_layer.group_discard(group_name(self.room.name), self.channel_name)
        except LAYER_ERRORS as exc:
            metrics.LAYER_ERRORS.inc()
            logger.warning("group_discard for room=%s failed: %r", self.room.name, exc)
        change = await presence.leave(self.room, channel_name=self.channel_name, name=self.identity.name)
        if change.edge:
            await broadcast(self.room.name, presence.presence_event("leave", self.identity.name))
        logger.info(
            "close room=%s user=%s code=%s duration=%.1fs",
            self.room.name,
            self.identity.name,
            code,
            time.monotonic() - self.opened,
        )

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

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A stored message, broadcast by services; its frame arrives encoded."""
        if event["seq"] > self.sent_through:
            metrics.DELIVERIES.inc()
            await self.send(text_data=event["text"])

    async def chat_presence(self, event: dict[str, Any]) -> None:
        """Join, leave or typing of someone else in the room (a person's own tabs are not told about them)."""
        if event["user"] != self.identity.name:
            await self.send(text_data=event["text"])

    async def chat_resync(self, event: dict[str, Any]) -> None:
        """The layer failed and is back: whatever it lost meanwhile is in the log, so send that."""
        if self.room is None:
            return
        messages, last_seq = await services.backlog(self.room, after=self.sent_through)
        metrics.GAPS_HEALED.inc(len(messages))
        for payload in messages:
            await self._send(payload)
        self.sent_through = max(self.sent_through, last_seq)
        logger.info("resync room=%s user=%s healed=%d", self.room.name, self.identity.name, len(messages))


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any WebSocket path that is not a room: refused at the handshake instead of a routing traceback."""

    async def connect(self) -> None:
        await self.close()
