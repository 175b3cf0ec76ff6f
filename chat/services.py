"""The one write path: validate a message, store it with the room's next seq, then broadcast it.

The consumer, the admin and the ``chat_post`` command all post through ``message_create`` (or its async twin,
which runs the same store in a thread). The broadcast happens only after the commit, so every seq a client can
see is already in the log, and a client that missed a broadcast finds the message by seq.
"""

import asyncio
import logging
import weakref
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
from .fanout import MESSAGE_EVENT, MESSAGES_EVENT
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


@dataclass(frozen=True, slots=True)
class Draft:
    """A message checked and ready to store: body cleaned, client_id valid."""

    room: Room
    author: str
    user: User | None
    body: str
    client_id: str | None


def _draft(*, room: Room, author: str, user: User | None, body: str, client_id: str | None) -> Draft:
    return Draft(
        room=room,
        author=author,
        user=user,
        body=protocol.clean_body(body, settings.CHAT_MAX_MESSAGE_LENGTH),
        client_id=protocol.clean_client_id(client_id),
    )


def _sql(template: str, **placeholders: str) -> str:
    # Only table names and runs of %s are interpolated: never input, which goes in as parameters.
    quote = connection.ops.quote_name
    return template.format(room=quote(Room._meta.db_table), message=quote(Message._meta.db_table), **placeholders)


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


# The write path speaks SQL directly: the ORM's query building cost more than the queries (docs/performance.md).
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


def _store_all(drafts: list[Draft]) -> list[Posted]:
    """Store drafts in one transaction; a resent client_id answers the message already stored."""
    try:
        with transaction.atomic():
            return _insert(drafts)
    except IntegrityError:
        # Another writer stored one of these client_ids after the lookup. The transaction rolled back, seqs
        # included; one by one, the lookup finds it.
        if len(drafts) > 1:
            return [posted for draft in drafts for posted in _store_all([draft])]
        (draft,) = drafts
        if draft.client_id is None:
            raise
        existing = Message.objects.filter(room_id=draft.room.pk, client_id=draft.client_id).first()
        if existing is None:
            raise
        return [Posted(message=existing, created=False)]


def _store(*, room: Room, author: str, user: User | None, body: str, client_id: str | None) -> Posted:
    """Store one message, without broadcasting it."""
    return _store_all([_draft(room=room, author=author, user=user, body=body, client_id=client_id)])[0]


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


_astore_all = database_sync_to_async(_store_all)

# The most messages one transaction stores; more wait for the next.
GROUP_COMMIT_MAX = 100


class GroupCommit:
    """The socket path's writer: messages posted while the database thread is busy are stored together.

    Idle, a message is stored at once, alone. Under load, everything that arrived during one commit goes into the
    next, so the cost of a transaction and of a database-thread hop is shared (measured in docs/performance.md).
    Each batch's broadcasts start right after its commit and run while the next batch commits; they go out in
    commit order, and only one batch's are ever outstanding, so a slow channel layer slows posting instead of
    queueing without bound. A room's messages in one batch travel as one event (MESSAGES_EVENT): it arrives
    whole, so another process's broadcast cannot land between them and make every client ask for a gap.
    """

    def __init__(self) -> None:
        self.waiting: list[tuple[Draft, asyncio.Future[Posted]]] = []
        self.writer: asyncio.Task[None] | None = None
        self.broadcasting: asyncio.Task[None] | None = None

    async def post(self, draft: Draft) -> Posted:
        future: asyncio.Future[Posted] = asyncio.get_running_loop().create_future()
        self.waiting.append((draft, future))
        if self.writer is None:
            self.writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:GROUP_COMMIT_MAX], self.waiting[GROUP_COMMIT_MAX:]
                earlier = self.broadcasting
                await self._commit(batch)
                if earlier is not None:
                    # wait, not await: a failed broadcast (a bug; layer errors are caught) must not stop the writer
                    await asyncio.wait([earlier])
        finally:
            self.writer = None

    async def _commit(self, batch: list[tuple[Draft, asyncio.Future[Posted]]]) -> None:
        """Store a batch, start broadcasting what it stored, answer its posters."""
        try:
            results = await _astore_all([draft for draft, _ in batch])
        except DatabaseError as exc:
            logger.warning("storing %d message(s) failed: %r", len(batch), exc)
            self._fail(batch, ClientError(protocol.UNAVAILABLE, "The message could not be stored; send it again."))
            return
        except Exception as exc:  # a bug: each poster raises it, as if it had stored alone
            self._fail(batch, exc)
            return
        metrics.MESSAGE_COMMITS.inc()
        by_room: dict[str, list[dict[str, Any]]] = {}
        for (draft, _), posted in zip(batch, results, strict=True):
            if posted.created:
                metrics.MESSAGES_STORED.inc()
                by_room.setdefault(draft.room.name, []).append(_event(posted, draft.room))
        if by_room:
            self.broadcasting = asyncio.create_task(self._broadcast(self.broadcasting, by_room))
        for (_, future), posted in zip(batch, results, strict=True):
            # A poster that went away (its socket closed) was stored anyway; its resend will be answered by seq.
            if not future.done():
                future.set_result(posted)

    @staticmethod
    def _fail(batch: list[tuple[Draft, asyncio.Future[Posted]]], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    @staticmethod
    async def _broadcast(earlier: asyncio.Task[None] | None, by_room: dict[str, list[dict[str, Any]]]) -> None:
        if earlier is not None:
            await asyncio.wait([earlier])  # commit order
        for room_name, events in by_room.items():
            await broadcast(room_name, events[0] if len(events) == 1 else {"type": MESSAGES_EVENT, "events": events})


# One writer per event loop: its futures and its task belong to the loop.
_group_commits: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit]" = weakref.WeakKeyDictionary()


async def amessage_create(
    *, room: Room, author: str, user: User | None = None, body: str, client_id: str | None = None
) -> Posted:
    """The async twin of message_create for consumers: the same checks and store, batched with other posts."""
    draft = _draft(room=room, author=author, user=user, body=body, client_id=client_id)
    loop = asyncio.get_running_loop()
    writer = _group_commits.get(loop)
    if writer is None:
        writer = _group_commits[loop] = GroupCommit()
    return await writer.post(draft)


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
