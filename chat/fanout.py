"""Fan-out inside one server process: one channel-layer subscription per room, each event handed to the room's
local sockets.

Channels' usual design gives every socket its own layer channel, so each recipient of a broadcast costs a queue
hop, a task wake-up, a dispatch and (since channels 4.2) a thread hop to close database connections (the bench's
tutorial target measures it: docs/performance.md). Here, as in Phoenix's "fastlane", a process joins each room's
group once, and the one task that receives the room's events calls each local socket's handler in turn with the
frame already encoded. A handler never waits for its socket (chat.fanout_consumer), so no reader holds up the room.

The contract stays Channels': a ``group_send`` to a room's group, from any process, reaches every socket in it,
through the handler named after the event's type. The group's member is the process's room subscription instead
of each socket. This is not a source of truth either: what a socket may have missed is always in the log, by seq.
"""

import asyncio
import logging
from typing import Any, Protocol

from channels.consumer import get_handler_name
from channels.layers import get_channel_layer

from . import metrics
from .broadcast import LAYER_ERRORS
from .events import MESSAGE_EVENT, MESSAGES_EVENT, revoke_event
from .rooms import group_name

logger = logging.getLogger(__name__)

_LAYER_RETRY_SECONDS = (0.5, 1, 2, 5)


class Member(Protocol):
    """What the fan-out needs of a socket (chat.fanout_consumer.FanoutConsumer): an id, a handler per event type
    (``chat_message`` for ``chat.message``) that never waits for the socket, and a way to be told that the layer
    lost events."""

    connection_id: str
    person: str  # whose socket it is: events with a "person" go to that person's sockets alone

    def resync(self) -> None: ...


class RoomFanout:
    """This process's subscription to one room, and the room's local sockets."""

    def __init__(self, room_name: str) -> None:
        self.room_name = room_name
        self.members: dict[str, Member] = {}
        self.people: dict[str, dict[str, Member]] = {}  # person -> their sockets here, by connection id
        self.channel = ""
        self.started: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def ended(self) -> bool:
        """Failed to subscribe, or left behind by an event loop that has ended (one per test)."""
        started = self.started
        if started is None or started.get_loop() is not asyncio.get_running_loop():
            return True
        if started.done() and (started.cancelled() or started.exception() is not None):
            return True
        return self.task is not None and self.task.done()

    async def start(self) -> None:
        layer = get_channel_layer()
        # The default prefix on purpose: channels-redis' core layer lets one receive per process wait on Redis,
        # and it reads only its own prefix's list, so channels of another prefix would wait behind it.
        self.channel = await layer.new_channel()
        await layer.group_add(group_name(self.room_name), self.channel)
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"fanout-{self.room_name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        try:
            await get_channel_layer().group_discard(group_name(self.room_name), self.channel)
        except LAYER_ERRORS as exc:
            logger.warning("leaving the group of room=%s failed: %r", self.room_name, exc)

    async def renew(self) -> None:
        """Re-add the subscription to the room's group: Redis forgets it on restart and after group_expiry."""
        await get_channel_layer().group_add(group_name(self.room_name), self.channel)

    async def _run(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                event = await layer.receive(self.channel)
            except LAYER_ERRORS as exc:
                metrics.LAYER_ERRORS.inc()
                logger.warning("channel layer receive failed for room=%s: %r", self.room_name, exc)
                await self._recover()
                continue
            await self.fan_out(event)

    async def _recover(self) -> None:
        """Wait until the layer answers (rejoining the group is the probe), then resync every socket from the log."""
        attempt = 0
        while True:
            await asyncio.sleep(_LAYER_RETRY_SECONDS[min(attempt, len(_LAYER_RETRY_SECONDS) - 1)])
            attempt += 1
            try:
                await self.renew()
            except LAYER_ERRORS:
                continue
            break
        for member in list(self.members.values()):
            member.resync()

    async def fan_out(self, event: dict[str, Any]) -> None:
        """Call each local socket's handler for the event, in join order. Handlers do not wait for their socket
        (one that is behind is skipped, see chat.fanout_consumer), so no reader holds up the others."""
        if event["type"] == MESSAGES_EVENT:
            for inner in event["events"]:
                await self.fan_out(inner)
            return
        revokes = event.get("revokes")
        if revokes is not None:
            # A kick or ban: its person's sockets are shut out first, by the per-person event a leave sends, so
            # they get neither this entry nor anything after it; the per-recipient loop below asks nothing more.
            await self.fan_out(revoke_event(revokes))
        text = event.get("text")
        if text is not None:
            # Built once for every recipient: the ASGI message, and its size for the sockets' bounds.
            event["frame"] = {"type": "websocket.send", "text": text}
            event["size"] = len(text.encode("utf-8", "surrogatepass"))
        name = get_handler_name(event)
        # One person's event (a read marker) goes to their sockets alone.
        person = event.get("person")
        members = list((self.members if person is None else self.people.get(person, {})).values())
        for member in members:
            handler = getattr(member, name, None)
            if handler is None:
                continue
            try:
                await handler(event)
            except (OSError, RuntimeError) as exc:
                # The socket closed while the fan-out was writing to it; its disconnect handler cleans up.
                logger.debug("send to a closed socket in room=%s: %r", self.room_name, exc)
            except Exception:
                # A bug in one handler must not cost the others their frame.
                logger.exception("room=%s: %s failed for a socket", self.room_name, name)
        if event["type"] == MESSAGE_EVENT:
            metrics.DELIVERIES.inc(len(members))


class Hub:
    """All of this process's room subscriptions."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomFanout] = {}

    async def join(self, room_name: str, member: Member) -> None:
        """Add a socket to the room's group, subscribing this process to it first if it is the room's first."""
        fanout = self.rooms.get(room_name)
        if fanout is None or fanout.ended():
            # Registered before the subscription is awaited, so sockets joining meanwhile share it.
            fanout = self.rooms[room_name] = RoomFanout(room_name)
            fanout.started = asyncio.get_running_loop().create_task(fanout.start())
        fanout.members[member.connection_id] = member
        fanout.people.setdefault(member.person, {})[member.connection_id] = member
        try:
            await asyncio.shield(fanout.started)  # type: ignore[arg-type]
        except BaseException:
            await self.leave(room_name, member)
            raise

    async def leave(self, room_name: str, member: Member) -> None:
        fanout = self.rooms.get(room_name)
        if fanout is None:
            return
        fanout.members.pop(member.connection_id, None)
        sockets = fanout.people.get(member.person)
        if sockets is not None:
            sockets.pop(member.connection_id, None)
            if not sockets:
                del fanout.people[member.person]
        if not fanout.members and self.rooms.get(room_name) is fanout:
            del self.rooms[room_name]
            await fanout.stop()

    def connection_ids(self) -> list[str]:
        return [cid for fanout in self.rooms.values() for cid in fanout.members]


hub = Hub()
