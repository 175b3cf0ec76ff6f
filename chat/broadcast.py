"""The one way chatsite sends to a room's group, and what a channel-layer failure looks like.

The in-memory layer never fails; channels-redis raises redis' errors (and OSError underneath) while Redis is down
or restarting. Those are the only errors caught around layer calls: a broadcast carries a message that is already
in the log, so a lost one is healed by seq (clients notice the gap), never by failing the sender.
"""

import logging
from typing import Any

from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from . import metrics
from .rooms import group_name

logger = logging.getLogger(__name__)

LAYER_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


async def broadcast(room_name: str, event: dict[str, Any]) -> bool:
    """Send an event to everyone in the room; False (logged, not raised) when the channel layer failed."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        await layer.group_send(group_name(room_name), event)
    except LAYER_ERRORS as exc:
        metrics.LAYER_ERRORS.inc()
        logger.warning("broadcast to room=%s failed, clients will recover it by seq: %r", room_name, exc)
        return False
    return True
