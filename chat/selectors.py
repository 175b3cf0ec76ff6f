"""Reading a room's log: what a connecting, resuming, paging or catching-up client is sent. Oldest first."""

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from . import protocol
from .models import Message, Room

# The most messages one catch-up read sends; a socket far behind reads several, each once the last has drained.
CATCH_UP_PAGE = 100


def message_payload(message: Message, room_name: str) -> dict[str, Any]:
    """The frame of a stored message."""
    return protocol.message(
        room=room_name,
        seq=message.seq,
        author=message.author,
        body=message.body,
        sent_at=message.created,
        client_id=message.client_id,
    )


def _room_last_seq(room: Room) -> int:
    return Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)


@database_sync_to_async
def backlog(room: Room, *, after: int | None) -> tuple[list[dict[str, Any]], int]:
    """The messages a connecting client needs and the room's last seq, read in one transaction.

    Without ``after``: the newest CHAT_BACKLOG_LIMIT messages. With ``after``: the messages after it, at most the
    newest CHAT_RESUME_LIMIT; the client pages the older rest with history requests.
    """
    with transaction.atomic():
        last_seq = _room_last_seq(room)
        limit = settings.CHAT_BACKLOG_LIMIT if after is None else settings.CHAT_RESUME_LIMIT
        query = Message.objects.filter(room=room)
        if after is not None:
            query = query.filter(seq__gt=after)
        newest = list(query.order_by("-seq")[:limit])
    return [message_payload(m, room.name) for m in reversed(newest)], last_seq


@database_sync_to_async
def catch_up(room: Room, *, after: int) -> tuple[list[dict[str, Any]], int, bool]:
    """The next page of what a socket that fell behind missed after seq ``after``; the room's last seq; whether
    the page reaches it.

    All of it, however far behind: on its own connection a socket gets no gap. (One behind for too long is closed
    instead, and resumes like any reconnect.)
    """
    with transaction.atomic():
        last_seq = _room_last_seq(room)
        page = list(Message.objects.filter(room=room, seq__gt=after).order_by("seq")[:CATCH_UP_PAGE])
    complete = not page or page[-1].seq >= last_seq
    return [message_payload(m, room.name) for m in page], last_seq, complete


@database_sync_to_async
def history(room: Room, *, before: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The ``limit`` messages just before seq ``before``, oldest first, and whether older ones exist."""
    newest = list(Message.objects.filter(room=room, seq__lt=before).order_by("-seq")[: limit + 1])
    has_more = len(newest) > limit
    return [message_payload(m, room.name) for m in reversed(newest[:limit])], has_more


@database_sync_to_async
def last_seq(room: Room) -> int:
    return _room_last_seq(room)
