"""The process's own sockets, kept alive: one task per server process refreshes their presence, re-adds them
to their room groups, and sweeps away sockets of processes that died.

This registry is not a source of truth (the database is, and the channel-layer group is the delivery list); it
only tells this process which rows and group memberships are its own to renew. Re-adding memberships matters
because channels-redis forgets them: after a Redis restart, and after ``group_expiry``.
"""

import asyncio
import logging

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from . import metrics, presence
from .broadcast import LAYER_ERRORS, broadcast
from .rooms import group_name

logger = logging.getLogger(__name__)

# channel name -> room name, for the sockets open in this process.
_sockets: dict[str, str] = {}
_task: asyncio.Task[None] | None = None


def register(channel_name: str, room_name: str) -> None:
    """Called once a socket has joined its room; starts the heartbeat if this is the process's first socket."""
    global _task
    _sockets[channel_name] = room_name
    if _task is None or _task.done() or _task.get_loop() is not asyncio.get_running_loop():
        _task = asyncio.get_running_loop().create_task(_beat(), name="chat-heartbeat")


def unregister(channel_name: str) -> None:
    global _task
    _sockets.pop(channel_name, None)
    if not _sockets and _task is not None:
        # Nothing left to keep alive; stopping also means no task outlives a test's event loop.
        _task.cancel()
        _task = None


async def beat_once() -> None:
    """One round: refresh, re-add, sweep. Each step survives the failure of the others."""
    layer = get_channel_layer()
    sockets = dict(_sockets)
    try:
        await presence.touch(list(sockets))
        left = await presence.sweep()
    except DatabaseError:
        # The database being briefly unreachable must not end the heartbeat; the next round tries again.
        logger.warning("presence heartbeat could not reach the database", exc_info=True)
        left = []
    try:
        for channel_name, room_name in sockets.items():
            await layer.group_add(group_name(room_name), channel_name)
    except LAYER_ERRORS as exc:
        metrics.LAYER_ERRORS.inc()
        logger.warning("heartbeat could not renew group memberships: %r", exc)
    for room_name, user in left:
        await broadcast(room_name, presence.presence_event("leave", user))


async def _beat() -> None:
    while True:
        await asyncio.sleep(settings.CHAT_HEARTBEAT_SECONDS)
        await beat_once()
