"""Fan-out inside one server process: one channel-layer subscription per room, frames written straight to the
room's local sockets.

Channels' usual design gives every socket its own layer channel, so each recipient of a broadcast costs a queue
hop, a task wake-up, a dispatch and (since channels 4.2) a thread hop to close database connections: hundreds of
microseconds per recipient. Here, as in Phoenix's "fastlane", a process joins each room's group once, and the
one task that receives the room's events writes the already-encoded frame to each local socket in turn.

The contract stays Channels': a ``group_send`` to a room's group, from any process, reaches every socket in it.
The group's member is the process's room subscription instead of each socket. This is not a source of truth
either: what a socket may have missed is always in the log, by seq.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.layers import get_channel_layer

from . import metrics
from .broadcast import LAYER_ERRORS
from .rooms import group_name

logger = logging.getLogger(__name__)

# The channel-layer events of a room's group. Each carries its frame already encoded in "text".
MESSAGE_EVENT = "chat.message"  # a stored message, with its "seq"
MESSAGES_EVENT = "chat.messages"  # several stored messages of one commit, oldest first: "events", each a MESSAGE_EVENT
PRESENCE_EVENT = "chat.presence"  # a join, leave or typing of "user"
# A socket whose send has not completed in this long stops reading; it is closed so the room is not held up.
SEND_STALL_SECONDS = 2.0
_LAYER_RETRY_SECONDS = (0.5, 1, 2, 5)


class Member(Protocol):
    """What the fan-out needs of a socket (chat.consumers.ChatConsumer)."""

    name: str
    connection_id: str

    async def deliver_message(self, seq: int, message: dict[str, Any]) -> None: ...

    async def deliver(self, message: dict[str, Any]) -> None: ...

    def stalled(self) -> None: ...

    async def resync(self) -> None: ...


class RoomFanout:
    """This process's subscription to one room, and the room's local sockets."""

    def __init__(self, room_name: str) -> None:
        self.room_name = room_name
        self.members: dict[str, Member] = {}
        self.channel = ""
        self.task: asyncio.Task[None] | None = None

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
            await member.resync()

    async def fan_out(self, event: dict[str, Any]) -> None:
        if event["type"] == MESSAGES_EVENT:
            for inner in event["events"]:
                await self.fan_out(inner)
            return
        message = {"type": "websocket.send", "text": event["text"]}
        members = list(self.members.values())
        if event["type"] == MESSAGE_EVENT:
            seq = event["seq"]
            await self._each(members, lambda member: member.deliver_message(seq, message))
            metrics.DELIVERIES.inc(len(members))
        elif event["type"] == PRESENCE_EVENT:
            # A person's own tabs are not told about their own join, leave or typing.
            user = event["user"]
            await self._each([m for m in members if m.name != user], lambda member: member.deliver(message))

    async def _each(self, members: list[Member], send: Callable[[Member], Awaitable[None]]) -> None:
        """Send to each member in turn; a member that stalls or has gone is dropped, the others still served."""
        loop = asyncio.get_running_loop()
        index = 0
        while index < len(members):
            try:
                # One timeout for the whole loop, pushed forward as it goes: a member whose send has not
                # completed within SEND_STALL_SECONDS/2 to SEND_STALL_SECONDS is the one it interrupts.
                async with asyncio.timeout(None) as stall:
                    while index < len(members):
                        member = members[index]
                        index += 1
                        # Re-armed only when half the allowance is used: a timer per recipient costs ~4 µs.
                        now = loop.time()
                        deadline = stall.when()
                        if deadline is None or deadline - now < SEND_STALL_SECONDS / 2:
                            stall.reschedule(now + SEND_STALL_SECONDS)
                        await send(member)
            except TimeoutError:
                logger.warning("closing a stalled socket in room=%s", self.room_name)
                self.members.pop(member.connection_id, None)
                member.stalled()
            except (OSError, RuntimeError) as exc:
                # The socket closed while the fan-out was writing to it; its disconnect handler cleans up.
                logger.debug("send to a closed socket in room=%s: %r", self.room_name, exc)


# The server's own send, in the scope (chat.socketstack puts it there): live frames go out through it.
SERVER_SEND = "chat.server_send"


class Hub:
    """All of this process's room subscriptions."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomFanout] = {}

    async def join(self, room_name: str, member: Member) -> None:
        fanout = self.rooms.get(room_name)
        if fanout is None or fanout.task is None or fanout.task.done():
            # New, or left behind by an event loop that has ended (one per test).
            fanout = RoomFanout(room_name)
            await fanout.start()
            self.rooms[room_name] = fanout
        fanout.members[member.connection_id] = member

    async def leave(self, room_name: str, member: Member) -> None:
        fanout = self.rooms.get(room_name)
        if fanout is None:
            return
        fanout.members.pop(member.connection_id, None)
        if not fanout.members:
            del self.rooms[room_name]
            await fanout.stop()

    def connection_ids(self) -> list[str]:
        return [cid for fanout in self.rooms.values() for cid in fanout.members]


hub = Hub()
