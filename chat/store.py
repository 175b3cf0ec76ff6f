"""Storing messages: drafts go into the log with their rooms' next seqs, in one transaction, in plain SQL.

The write path speaks SQL directly because the ORM's query building cost more than the queries themselves
(docs/performance.md, "ingest"). Callers go through chat.services, which validates first and broadcasts after.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .models import Message, Room


@dataclass(frozen=True, slots=True)
class Draft:
    """A message checked and ready to store: body cleaned, client_id valid."""

    room: Room
    author: str
    user: User | None
    body: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of posting: the stored message, and whether this call stored it (False for a resend)."""

    message: Message
    created: bool


def _sql(template: str, **placeholders: str) -> str:
    # Only table names and runs of %s are interpolated: never input, which goes in as parameters.
    quote = connection.ops.quote_name
    return template.format(room=quote(Room._meta.db_table), message=quote(Message._meta.db_table), **placeholders)


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


LOCK_ROOMS = "SELECT id FROM {room} WHERE id IN ({rooms}) ORDER BY id FOR UPDATE"
TAKE_SEQS = (
    "UPDATE {room} SET last_seq = last_seq + CASE id {cases} END, last_activity = %s WHERE id IN ({rooms})"
    " RETURNING id, last_seq"
)
# Pairs spelled out as ORs: both databases then search the (room, client_id) index for each, where row-value IN
# lists or IN x IN scanned the table (EXPLAIN on SQLite 3.40 and PostgreSQL 15).
FIND_CLIENT_IDS = "SELECT id, room_id, client_id FROM {message} WHERE {pairs}"
INSERT = (
    "INSERT INTO {message} (room_id, seq, author, user_id, body, client_id, created) VALUES {rows}"
    " RETURNING id, room_id, seq"
)


def _already_stored(cursor: Any, drafts: list[Draft]) -> dict[tuple[int, str], Message]:
    """The logged messages that drafts repeat by (room, client_id): resends."""
    wanted = {(d.room.pk, d.client_id) for d in drafts if d.client_id is not None}
    if not wanted:
        return {}
    pairs = sorted(wanted)
    condition = " OR ".join(["(room_id = %s AND client_id = %s)"] * len(pairs))
    cursor.execute(_sql(FIND_CLIENT_IDS, pairs=condition), [value for pair in pairs for value in pair])
    found = {(room, client): pk for pk, room, client in cursor.fetchall()}
    if not found:
        return {}
    originals = Message.objects.in_bulk(found.values())  # resends are rare: the ORM is fine here
    return {key: originals[pk] for key, pk in found.items()}


def _take_seqs(cursor: Any, counts: dict[int, int], now: Any) -> dict[int, int]:
    """Advance each room's last_seq by its count, in one statement; the rooms' new last_seqs.

    This locks the rooms' rows (PostgreSQL; SQLite's IMMEDIATE transactions lock the whole database) until commit,
    so seqs are handed out and committed in one order: gapless. Several rooms are locked in pk order first, so
    that two processes' batches cannot deadlock.
    """
    if not counts:
        return {}
    rooms = sorted(counts)
    marks = _marks(len(rooms))
    if len(rooms) > 1 and connection.features.has_select_for_update:
        cursor.execute(_sql(LOCK_ROOMS, rooms=marks), rooms)
    cases = " ".join(["WHEN %s THEN %s"] * len(rooms))
    params = [value for room in rooms for value in (room, counts[room])]
    cursor.execute(_sql(TAKE_SEQS, cases=cases, rooms=marks), [*params, now, *rooms])
    return dict(cursor.fetchall())


def _insert(drafts: list[Draft]) -> list[Posted]:
    """Store drafts inside the caller's transaction: one seq range per room and one INSERT for all of them."""
    now = timezone.now()
    created = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        stored = _already_stored(cursor, drafts)
        first: dict[tuple[int, str], int] = {}  # (room, client_id) -> the first draft in this batch that has it
        fresh: dict[int, list[int]] = {}  # room pk -> the drafts it stores, in arrival order
        for index, draft in enumerate(drafts):
            if draft.client_id is not None:
                key = (draft.room.pk, draft.client_id)
                if key in stored or key in first:
                    continue
                first[key] = index
            fresh.setdefault(draft.room.pk, []).append(index)
        new: dict[int, Message] = {}
        last_seqs = _take_seqs(cursor, {room_pk: len(indexes) for room_pk, indexes in fresh.items()}, created)
        for room_pk, indexes in fresh.items():
            for seq, index in enumerate(indexes, start=last_seqs[room_pk] - len(indexes) + 1):
                d = drafts[index]
                new[index] = Message(
                    room=d.room, seq=seq, author=d.author, user=d.user, body=d.body, client_id=d.client_id, created=now
                )
        if new:
            rows = [(m.room_id, m.seq, m.author, m.user_id, m.body, m.client_id, created) for m in new.values()]
            sql = _sql(INSERT, rows=", ".join([f"({_marks(7)})"] * len(rows)))
            cursor.execute(sql, [value for row in rows for value in row])
            by_seq = {(m.room_id, m.seq): m for m in new.values()}
            for pk, room_pk, seq in cursor.fetchall():  # RETURNING's row order is not promised, so match by key
                by_seq[room_pk, seq].pk = pk
    posted = []
    for index, draft in enumerate(drafts):
        if index in new:
            posted.append(Posted(message=new[index], created=True))
            continue
        key = (draft.room.pk, draft.client_id or "")
        original = stored.get(key) or new[first[key]]
        posted.append(Posted(message=original, created=False))
    return posted


def store_all(drafts: list[Draft]) -> list[Posted]:
    """Store drafts in one transaction; a resent client_id answers the message already stored."""
    try:
        with transaction.atomic():
            return _insert(drafts)
    except IntegrityError:
        # Another writer stored one of these client_ids after the lookup. The transaction rolled back, seqs
        # included; one by one, the lookup finds it.
        if len(drafts) > 1:
            return [posted for draft in drafts for posted in store_all([draft])]
        (draft,) = drafts
        if draft.client_id is None:
            raise
        existing = Message.objects.filter(room_id=draft.room.pk, client_id=draft.client_id).first()
        if existing is None:
            raise
        return [Posted(message=existing, created=False)]
