"""The room socket: accept or refuse, decode, validate, dispatch to a service, encode the answer."""

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from . import access, catchup, heartbeat, metrics, presence, protocol, readmarks, selectors, services
from .broadcast import LAYER_ERRORS, broadcast
from .events import presence_event, read_event
from .exceptions import ClientError, Refused
from .fanout_consumer import FanoutConsumer, TooSlow
from .identity import Identity, identify
from .models import Kind, Room
from .ratelimit import ConnectionCounter, TokenBucket
from .rooms import normalize_room_name
from .store import who

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


class ChatConsumer(FanoutConsumer):
    """One room socket: ``ws/chat/<room>/[?after=SEQ]``. Live events arrive through the process's room fan-out."""

    room: Room | None = None
    identity: Identity
    # What the person may do here (chat.access), decided at connect and again when a moderation entry names them.
    # Writes are decided again by the store, under the room's lock.
    rights: access.Rights = access.NONE
    name = ""
    # Whether this socket counts against its address's and user's caps, and whether it has a presence row.
    counted = False
    present = False
    # The newest read marker of this person in this room that the socket was told: hello's, then each read event's.
    marker = 0

    async def connect(self) -> None:
        # Accepted first, so that a refusal reaches the page as a close code rather than a failed handshake.
        await self.accept()
        try:
            await self._enter()
        except Refused as refusal:
            # A client's doing (a bad name, no login, too many sockets) is news; a server's failing is a warning.
            level = logging.WARNING if refusal.code == protocol.CLOSE_INTERNAL_ERROR else logging.INFO
            logger.log(level, "refused room=%s code=%s: %s", self.room_name or "-", refusal.code, refusal.reason)
            await self.close(code=refusal.code)
        except DatabaseError as exc:
            # The client reconnects with backoff and resumes; nothing half-sent matters, it resumes by seq.
            logger.warning("connect room=%s closed: database unavailable: %r", self.room_name, exc)
            await self.close(code=protocol.CLOSE_INTERNAL_ERROR)
        except TooSlow:
            self._too_slow()

    async def _enter(self) -> None:
        """Identify, check the caps, join the room, then hello, the backlog and live frames; or raise Refused."""
        name = normalize_room_name(self.scope["url_route"]["kwargs"]["room"])
        if name is None:
            raise Refused(protocol.CLOSE_ROOM_NOT_FOUND, "not a room name")
        self.room_name = name
        identity = await _identify(self.scope)
        if identity is None:
            raise Refused(protocol.CLOSE_LOGIN_REQUIRED, "guests are off")
        client = self.scope.get("client")
        self.limit_keys = [f"user:{identity.name}"] + ([f"address:{client[0]}"] if client else [])
        if not _open_sockets.try_open(self.limit_keys, settings.CHAT_MAX_SOCKETS_PER_CLIENT):
            raise Refused(protocol.CLOSE_TOO_MANY_SOCKETS, f"too many sockets for {identity.name} from {client}")
        self.counted = True
        self.identity = identity
        self.name = identity.name
        self.person = who(identity.user, identity.guest_id)
        self.opened = time.monotonic()
        self.bucket = TokenBucket(burst=settings.CHAT_RATE_LIMIT_BURST, per_second=settings.CHAT_RATE_LIMIT_PER_SECOND)
        # Joined before the backlog is read: what is committed after the read arrives live (or is caught up from
        # the log, see go_live), and what arrives both ways is dropped by seq. No gap, no duplicate. Joined before
        # access is asked, too: a kick or ban committed after the answer arrives as an event and closes the
        # socket. Nothing reaches the socket meanwhile: it is not live until go_live.
        try:
            await self.join(name)
        except LAYER_ERRORS as exc:
            metrics.LAYER_ERRORS.inc()
            raise Refused(protocol.CLOSE_INTERNAL_ERROR, f"channel layer unavailable: {exc!r}") from None
        room, self.rights = await database_sync_to_async(services.room_for)(name, identity)
        if self.shut:
            raise Refused(protocol.CLOSE_FORBIDDEN, f"{identity.name} lost {name} while connecting")
        self.room = room
        heartbeat.start()
        metrics.CONNECTIONS.inc()
        metrics.CONNECTS.inc()
        after = _after(self.scope["query_string"])
        change = await presence.enter(room, connection_id=self.connection_id, name=identity.name)
        self.present = True
        messages, last_seq = await selectors.backlog(room, after=after)
        if any(_names_for_removal(payload, self.name) for payload in messages):
            # A kick or ban that committed while this socket connected: its event may still be on its way (through
            # Redis it comes after this), and the backlog must not go out before the rule is asked again.
            self.rights = await database_sync_to_async(access.rights)(identity, room)
            if not self.rights.read:
                raise Refused(protocol.CLOSE_FORBIDDEN, f"{identity.name} lost {name} while connecting")
        last_read = await database_sync_to_async(readmarks.last_read)(room, self.person)
        self.marker = max(self.marker, last_read)
        if after is not None:
            metrics.RESUMES.inc()
        self.sent_through = last_seq
        await self.send_frame(
            protocol.hello(
                room=room.name,
                you=self.name,
                online=change.online,
                last_seq=last_seq,
                last_read=last_read,
                moderate=self.rights.moderate,
                muted=self.rights.muted,
                muted_until=self.rights.muted_until,
                slow_mode=room.slow_mode_seconds,
            )
        )
        for payload in messages:
            await self.send_frame(payload)
        await self.go_live()
        if change.edge:
            await broadcast(room.name, presence_event("join", self.name))
        logger.info("connect room=%s user=%s after=%s backlog=%d", room.name, self.name, after, len(messages))

    async def disconnect(self, code: int) -> None:
        if self.counted:
            _open_sockets.close(self.limit_keys)
            self.counted = False
        await self.leave()
        if self.room is None:
            return
        heartbeat.stop_if_idle()
        metrics.CONNECTIONS.dec()
        if self.present:
            await self._leave_presence(self.room)
        logger.info(
            "close room=%s user=%s code=%s duration=%.1fs",
            self.room.name,
            self.name,
            code,
            time.monotonic() - self.opened,
        )

    async def _leave_presence(self, room: Room) -> None:
        try:
            change = await presence.leave(room, connection_id=self.connection_id, name=self.name)
        except DatabaseError as exc:
            # The row stays behind; the heartbeat sweep removes it and announces the leave after the TTL.
            logger.warning("close room=%s: presence not updated, database unavailable: %r", room.name, exc)
            return
        if change.edge:
            await broadcast(room.name, presence_event("leave", self.name))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None:
            return
        if text_data is None:
            await self.send_frame(protocol.error(code=protocol.BAD_FRAME, detail="Binary frames are not supported."))
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
                reactions=settings.CHAT_REACTIONS,
            )
            await self._handle(self.room, frame)
        except ClientError as exc:
            await self.send_frame(protocol.error(code=exc.code, detail=exc.detail, **exc.extra))
        except DatabaseError as exc:
            # Not the client's fault and not a bug to trace: the frame is answered, the socket stays open.
            logger.warning("room=%s: database unavailable: %r", self.room.name, exc)
            await self.send_frame(
                protocol.error(code=protocol.UNAVAILABLE, detail="The server's database is unavailable.")
            )
        except TooSlow:
            self._too_slow()

    async def _handle(self, room: Room, frame: protocol.ClientFrame) -> None:
        identity = self.identity
        if not self.rights.read:  # never while open: a socket that loses it is closed (chat_message, read_log)
            raise ClientError(protocol.FORBIDDEN, "You may not read this room.")
        match frame:
            case protocol.MessageFrame(body=body, client_id=client_id, reply_to=reply_to):
                posted = await services.amessage_create(
                    room=room,
                    author=identity.name,
                    user=identity.user,
                    body=body,
                    client_id=client_id,
                    guest_id=identity.guest_id,
                    reply_to=reply_to,
                )
                await self.send_frame(protocol.ack(client_id=client_id, seq=posted.ack_seq))
            case protocol.EditFrame(target=target, body=body, client_id=client_id):
                await self._change(client_id, room=room, identity=identity, kind=Kind.EDIT, target=target, body=body)
            case protocol.DeleteFrame(target=target, client_id=client_id):
                await self._change(client_id, room=room, identity=identity, kind=Kind.DELETE, target=target)
            case protocol.ReactFrame(target=target, emoji=emoji, on=on, client_id=client_id):
                await self._change(
                    client_id, room=room, identity=identity, kind=Kind.REACTION, target=target, emoji=emoji, on=on
                )
            case protocol.ModerateFrame(action=action, user=user, seconds=seconds, client_id=client_id):
                posted = await services.apost(
                    services.moderation(
                        room=room, identity=identity, action=action, subject=user, seconds=seconds, client_id=client_id
                    )
                )
                await self.send_frame(protocol.ack(client_id=client_id, seq=posted.ack_seq))
            case protocol.ReportFrame(target=target, reason=reason, client_id=client_id):
                await database_sync_to_async(services.report)(
                    room=room, identity=identity, target=target, reason=reason
                )
                await self.send_frame(protocol.ack(client_id=client_id, seq=None))
            case protocol.VersionsFrame(target=target):
                found = await selectors.versions(room, target=target)
                await self.send_frame(protocol.versions(target=target, versions=found))
            case protocol.ReadFrame(seq=seq):
                moved = await readmarks.mark(room, self.person, seq)
                if moved is not None:
                    # To every socket of this person in the room, this one included, on every process.
                    await broadcast(room.name, read_event(room.name, self.person, moved))
            case protocol.TypingFrame():
                await broadcast(room.name, presence_event("typing", self.identity.name))
            case protocol.PingFrame():
                last_seq, rights = await selectors.pong(room, identity)
                if rights is not None and not rights.read:
                    self._revoke()
                    return
                await self.send_frame(protocol.pong(last_seq=last_seq))
            case protocol.HistoryFrame(before=before, limit=limit):
                metrics.HISTORY_REQUESTS.inc()
                messages, has_more = await selectors.history(room, before=before, limit=limit)
                await self.send_frame(protocol.history(before=before, messages=messages, has_more=has_more))

    async def _change(self, client_id: str | None, **change: Any) -> None:
        posted = await services.apost(services.change(client_id=client_id, **change))
        await self.send_frame(protocol.ack(client_id=client_id, seq=posted.ack_seq))

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send one of this socket's own frames, once the server holds little for it (TooSlow if it never does)."""
        if self.close_sent or self.shut:
            return  # closing: the server would refuse it, or the person lost the room
        await self.drained()
        await self.send(text_data=protocol.encode(frame))

    # Handlers of the room's group events (chat.events), called by the process's fan-out.

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_live(event)

    async def chat_revoke(self, event: dict[str, Any]) -> None:
        # The fan-out sends it only to this person's sockets: they left, or a kick or ban of them is on its way.
        self._revoke()

    def _revoke(self) -> None:
        self.rights = access.NONE
        self.shut_out()
        if not self.close_sent:
            logger.info("revoked room=%s user=%s", self.room_name, self.name)
            asyncio.get_running_loop().create_task(self.close(code=protocol.CLOSE_FORBIDDEN))

    async def chat_read(self, event: dict[str, Any]) -> None:
        # The fan-out sends it only to this person's sockets. Markers only move forward: the newest one told is
        # the stored one, and what a socket that skipped it is sent once it has caught up (own_missed).
        self.marker = max(self.marker, event["marker"])
        await self.send_live(event)

    async def chat_presence(self, event: dict[str, Any]) -> None:
        # A person's own tabs are not told about their own join, leave or typing.
        if event["user"] != self.name:
            await self.send_live(event)

    # What a catch-up reads and sends (chat.fanout_consumer).

    async def read_log(self, *, after: int) -> tuple[list[tuple[int, str]], int, bool]:
        if self.room is None:  # never: only a socket that joined a room is caught up
            return [], after, True
        entries, last_seq, complete = await catchup.read(self.room, after=after, joined_at=self.joined_at)
        if any(_may_revoke(text, self.name) for _, text in entries):
            # Its live event was lost (the layer is lossy) or came while this socket was behind: ask again.
            self.rights = await database_sync_to_async(access.rights)(self.identity, self.room)
            if not self.rights.read:
                self._revoke()
                return [], last_seq, True
        return entries, last_seq, complete

    async def presence_missed(self) -> None:
        if self.room is None:
            return
        online = await presence.online_names_since(self.room, since=self.missed_presence_at)
        if self.shut:
            return
        await self.send(text_data=protocol.encode(protocol.online(online=online)))

    async def own_missed(self, *, stale: bool) -> None:
        # A skipped read frame costs no query: the socket was told its seq. Only a layer that lost events (stale)
        # may have lost one, and then the stored marker sets it right.
        if self.room is None:
            return
        if stale:
            stored = await database_sync_to_async(readmarks.last_read)(self.room, self.person)
            self.marker = max(self.marker, stored)  # after the await: a newer event may have come meanwhile
        if self.marker and not self.shut:
            await self.send(text_data=protocol.encode(protocol.read(room=self.room.name, seq=self.marker)))


def _names_for_removal(frame: dict[str, Any], name: str) -> bool:
    """Whether a log entry's frame is a kick or ban of the person called ``name`` (names can repeat among guests,
    so it only says when to ask chat.access again)."""
    return (
        frame.get("type") == protocol.MODERATION
        and frame.get("action") in ("kick", "ban")
        and frame.get("user") == name
    )


def _may_revoke(text: str, name: str) -> bool:
    """_names_for_removal for an encoded frame; decoded only if it is a moderation entry at all."""
    return '"type":"moderation"' in text and _names_for_removal(protocol.decode(text), name)


class RefusingConsumer(FanoutConsumer):
    """Refuses the handshake (HTTP 403): any WebSocket path that is not a room, and a foreign origin.

    A FanoutConsumer for its ``__call__``, which takes no layer channel: a refused handshake must not subscribe to
    Redis, nor fail instead of refusing while Redis is down.
    """

    async def connect(self) -> None:
        await self.close()
