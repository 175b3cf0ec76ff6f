"""Who is online in a room, counted per name: several tabs (or processes) of one person are one user.

Each open socket is a row, so every server process sees the same list. Each process refreshes the rows of its
own sockets (chat.heartbeat); a row not refreshed within CHAT_PRESENCE_TTL_SECONDS belongs to a process that died
without saying goodbye: it no longer counts, and the next sweep removes it and announces the leave.
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from . import metrics
from .models import Presence, Room


@dataclass(frozen=True, slots=True)
class Change:
    """What a socket opening or closing did to the room's online list."""

    online: list[str]
    # True when this socket was the name's first to open, or its last to close: time for a join / leave.
    edge: bool


def _fresh_since() -> datetime:
    return timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL_SECONDS)


def online_names(room: Room) -> list[str]:
    names = Presence.objects.filter(room=room, seen__gte=_fresh_since()).values_list("name", flat=True)
    return sorted(set(names))


# Room pk -> (time.monotonic() it began, the task) of the newest online-list read in flight on this process.
_reads: dict[int, tuple[float, "asyncio.Task[list[str]]"]] = {}


async def online_names_since(room: Room, *, since: float) -> list[str]:
    """The room's online list, read after ``since`` (time.monotonic()): a share of the read in flight if it began
    then or later, else a new one.

    Every socket that skipped presence frames while behind asks for the list once it catches up. Each presence
    event is broadcast after its commit, so a read begun after the socket got the event sees it; without sharing,
    500 sockets joining one room at once made a quadratic storm of these reads (each join, every socket still
    catching up), and the database thread did nothing else (py-spy, make bench's reads scenario).
    """
    loop = asyncio.get_running_loop()
    current = _reads.get(room.pk)
    if current is not None:
        began, task = current
        if began >= since and not task.done() and task.get_loop() is loop:
            metrics.ONLINE_READS.labels(shared="yes").inc()
            return list(await asyncio.shield(task))
    metrics.ONLINE_READS.labels(shared="no").inc()
    task = loop.create_task(database_sync_to_async(online_names)(room))
    _reads[room.pk] = (time.monotonic(), task)
    task.add_done_callback(lambda done: _forget(room.pk, done))
    # Shielded: a socket that goes away mid-read must not cancel it for those sharing it.
    return list(await asyncio.shield(task))


def _forget(room_pk: int, task: "asyncio.Task[list[str]]") -> None:
    current = _reads.get(room_pk)
    if current is not None and current[1] is task:
        del _reads[room_pk]
    if not task.cancelled():
        task.exception()  # retrieved, so that a failed read nobody shared is not logged as never retrieved


def online_counts() -> dict[int, int]:
    """Room id to the number of distinct names online there, for the lobby."""
    rows = (
        Presence.objects.filter(seen__gte=_fresh_since()).values("room_id").annotate(names=Count("name", distinct=True))
    )
    return {row["room_id"]: row["names"] for row in rows}


@database_sync_to_async
def enter(room: Room, *, connection_id: str, name: str) -> Change:
    with transaction.atomic():
        # The room lock orders concurrent opens and closes, so exactly one of two tabs opening at once is first.
        Room.objects.select_for_update().only("id").get(pk=room.pk)
        first = not Presence.objects.filter(room=room, name=name, seen__gte=_fresh_since()).exists()
        Presence.objects.create(room=room, connection_id=connection_id, name=name, seen=timezone.now())
        return Change(online=online_names(room), edge=first)


@database_sync_to_async
def leave(room: Room, *, connection_id: str, name: str) -> Change:
    with transaction.atomic():
        Room.objects.select_for_update().only("id").get(pk=room.pk)
        Presence.objects.filter(connection_id=connection_id).delete()
        last = not Presence.objects.filter(room=room, name=name, seen__gte=_fresh_since()).exists()
        return Change(online=online_names(room), edge=last)


# SQLite allows a limited number of query parameters; refresh in chunks well under it.
_TOUCH_CHUNK = 500


@database_sync_to_async
def touch(connection_ids: list[str]) -> None:
    """Mark these sockets as alive now."""
    now = timezone.now()
    for start in range(0, len(connection_ids), _TOUCH_CHUNK):
        Presence.objects.filter(connection_id__in=connection_ids[start : start + _TOUCH_CHUNK]).update(seen=now)


@database_sync_to_async
def sweep() -> list[tuple[str, str]]:
    """Remove expired sockets; returns the (room name, user) pairs that thereby left their room."""
    left: list[tuple[str, str]] = []
    stale_rooms = set(Presence.objects.filter(seen__lt=_fresh_since()).values_list("room_id", flat=True))
    for room_id in stale_rooms:
        with transaction.atomic():
            # Under the room lock, so that of several processes sweeping at once exactly one announces a leave.
            room = Room.objects.select_for_update().only("id", "name").get(pk=room_id)
            stale = Presence.objects.filter(room=room, seen__lt=_fresh_since())
            names = set(stale.values_list("name", flat=True))
            stale.delete()
            still_here = set(Presence.objects.filter(room=room, name__in=names).values_list("name", flat=True))
            left.extend((room.name, name) for name in sorted(names - still_here))
    return left
