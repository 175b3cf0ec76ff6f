"""The one write path: validate a message, store it with the room's next seq, then broadcast it.

The consumer, the admin and the ``chat_post`` command all post through ``message_create`` (or its async twin,
which runs the same store in a thread). The broadcast happens only after the commit, so every seq a client can
see is already in the log, and a client that missed a broadcast finds the message by seq.
"""

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from . import metrics, protocol
from .broadcast import broadcast
from .exceptions import ClientError
from .fanout import MESSAGE_EVENT
from .models import Message, Room
from .rooms import normalize_room_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of posting: the stored message, and whether this call stored it (False for a resend)."""

    message: Message
    created: bool


def room_get_or_create(name: str) -> Room:
    canonical = normalize_room_name(name)
    if canonical is None:
        raise ClientError("bad_room", "Room names are 1-64 letters, digits, '-' or '_'.")
    room, _ = Room.objects.get_or_create(name=canonical)
    return room


def message_payload(message: Message, room_name: str) -> dict[str, Any]:
    return protocol.message(
        room=room_name,
        seq=message.seq,
        author=message.author,
        body=message.body,
        sent_at=message.created,
        client_id=message.client_id,
    )


def _next_seq_sql() -> str:
    table = connection.ops.quote_name(Room._meta.db_table)
    # Only the table name is interpolated, and it comes from the model, never from input.
    return f"UPDATE {table} SET last_seq = last_seq + 1, last_activity = %s WHERE id = %s RETURNING last_seq"  # noqa: S608


def _store(*, room: Room, author: str, user: User | None, body: str, client_id: str | None) -> Posted:
    body = protocol.clean_body(body, settings.CHAT_MAX_MESSAGE_LENGTH)
    client_id = protocol.clean_client_id(client_id)
    now = timezone.now()
    try:
        with transaction.atomic():
            # Taking the next seq locks the room's row (PostgreSQL; SQLite's IMMEDIATE transactions lock the
            # whole database) until commit, so seqs are handed out and committed in one order: gapless.
            with connection.cursor() as cursor:
                cursor.execute(_next_seq_sql(), [now, room.pk])
                (seq,) = cursor.fetchone()
            message = Message.objects.create(
                room_id=room.pk, seq=seq, author=author, user=user, body=body, client_id=client_id, created=now
            )
    except IntegrityError:
        # A resend: this client_id is already stored in this room. The transaction, seq included, rolled back.
        existing = Message.objects.filter(room_id=room.pk, client_id=client_id).first() if client_id else None
        if existing is None:
            raise
        return Posted(message=existing, created=False)
    return Posted(message=message, created=True)


def _event(posted: Posted, room: Room) -> dict[str, Any]:
    # The frame travels encoded, so a broadcast encodes JSON once, not once per recipient.
    return {
        "type": MESSAGE_EVENT,
        "seq": posted.message.seq,
        "text": protocol.encode(message_payload(posted.message, room.name)),
    }


def message_create(
    *, room: Room, author: str, user: User | None = None, body: str, client_id: str | None = None
) -> Posted:
    """Store a message and broadcast it to the room. For synchronous callers: the admin, management commands."""
    posted = _store(room=room, author=author, user=user, body=body, client_id=client_id)
    if posted.created:
        metrics.MESSAGES_STORED.inc()
        async_to_sync(broadcast)(room.name, _event(posted, room))
    return posted


_astore = database_sync_to_async(_store)


async def amessage_create(
    *, room: Room, author: str, user: User | None = None, body: str, client_id: str | None = None
) -> Posted:
    """The async twin of message_create for consumers: the same store, then an awaited broadcast."""
    try:
        posted = await _astore(room=room, author=author, user=user, body=body, client_id=client_id)
    except DatabaseError as exc:
        logger.warning("storing a message in room=%s failed: %r", room.name, exc)
        raise ClientError(protocol.UNAVAILABLE, "The message could not be stored; send it again.") from None
    if posted.created:
        metrics.MESSAGES_STORED.inc()
        await broadcast(room.name, _event(posted, room))
    return posted


@database_sync_to_async
def backlog(room: Room, *, after: int | None) -> tuple[list[dict[str, Any]], int]:
    """The messages a connecting client needs and the room's last seq, read in one transaction.

    Without ``after``: the newest CHAT_BACKLOG_LIMIT messages. With ``after``: the messages after it, at most the
    newest CHAT_RESUME_LIMIT; the client pages the older rest with history requests. Oldest first.
    """
    with transaction.atomic():
        last_seq = Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)
        limit = settings.CHAT_BACKLOG_LIMIT if after is None else settings.CHAT_RESUME_LIMIT
        query = Message.objects.filter(room=room)
        if after is not None:
            query = query.filter(seq__gt=after)
        newest = list(query.order_by("-seq")[:limit])
    return [message_payload(m, room.name) for m in reversed(newest)], last_seq


@database_sync_to_async
def history(room: Room, *, before: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The ``limit`` messages just before seq ``before``, oldest first, and whether older ones exist."""
    newest = list(Message.objects.filter(room=room, seq__lt=before).order_by("-seq")[: limit + 1])
    has_more = len(newest) > limit
    return [message_payload(m, room.name) for m in reversed(newest[:limit])], has_more


@database_sync_to_async
def last_seq(room: Room) -> int:
    return Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)
