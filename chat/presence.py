"""Who is online in a room, counted per name: several tabs (or processes) of one person are one user.

Each open socket is a row, so every server process sees the same list. Rows are refreshed by the socket's pings;
a row not refreshed within CHAT_PRESENCE_TTL_SECONDS belongs to a process that died without saying goodbye and no
longer counts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

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


def online_counts() -> dict[int, int]:
    """Room id to the number of distinct names online there, for the lobby."""
    rows = (
        Presence.objects.filter(seen__gte=_fresh_since()).values("room_id").annotate(names=Count("name", distinct=True))
    )
    return {row["room_id"]: row["names"] for row in rows}


@database_sync_to_async
def enter(room: Room, *, channel_name: str, name: str) -> Change:
    with transaction.atomic():
        # The room lock orders concurrent opens and closes, so exactly one of two tabs opening at once is first.
        Room.objects.select_for_update().only("id").get(pk=room.pk)
        Presence.objects.filter(room=room, seen__lt=_fresh_since()).delete()
        first = not Presence.objects.filter(room=room, name=name).exists()
        Presence.objects.create(room=room, channel_name=channel_name, name=name, seen=timezone.now())
        return Change(online=online_names(room), edge=first)


@database_sync_to_async
def leave(room: Room, *, channel_name: str, name: str) -> Change:
    with transaction.atomic():
        Room.objects.select_for_update().only("id").get(pk=room.pk)
        Presence.objects.filter(channel_name=channel_name).delete()
        last = not Presence.objects.filter(room=room, name=name, seen__gte=_fresh_since()).exists()
        return Change(online=online_names(room), edge=last)


@database_sync_to_async
def touch(channel_name: str) -> None:
    Presence.objects.filter(channel_name=channel_name).update(seen=timezone.now())
