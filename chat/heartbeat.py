"""The process's own sockets, kept alive: one task per server process refreshes their presence, renews its room
subscriptions, and sweeps away sockets of processes that died.

Renewing subscriptions matters because channels-redis' core layer forgets group memberships after a Redis
restart and after ``group_expiry``; re-adding is idempotent for the pub/sub layer.
"""

import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError

from . import metrics, presence
from .broadcast import LAYER_ERRORS, broadcast
from .events import presence_event
from .fanout import hub

logger = logging.getLogger(__name__)

_task: asyncio.Task[None] | None = None


def start() -> None:
    """Run the heartbeat in this event loop, unless it already runs."""
    global _task
    if _task is None or _task.done() or _task.get_loop() is not asyncio.get_running_loop():
        _task = asyncio.get_running_loop().create_task(_beat(), name="chat-heartbeat")


def stop_if_idle() -> None:
    """Stop once the process has no sockets; also means no task outlives a test's event loop."""
    global _task
    if not hub.rooms and _task is not None:
        _task.cancel()
        _task = None


async def beat_once() -> None:
    """One round: refresh, renew, sweep. Each step survives the failure of the others."""
    try:
        await presence.touch(hub.connection_ids())
        left = await presence.sweep()
    except DatabaseError as exc:
        # The database being briefly unreachable must not end the heartbeat; the next round tries again.
        logger.warning("presence heartbeat could not reach the database: %r", exc)
        left = []
    try:
        for fanout in list(hub.rooms.values()):
            await fanout.renew()
    except LAYER_ERRORS as exc:
        metrics.LAYER_ERRORS.inc()
        logger.warning("heartbeat could not renew room subscriptions: %r", exc)
    for room_name, user in left:
        await broadcast(room_name, presence_event("leave", user))


async def _beat() -> None:
    while True:
        await asyncio.sleep(settings.CHAT_HEARTBEAT_SECONDS)
        await beat_once()
