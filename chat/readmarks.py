"""Read markers: how far each person has read each room, moved forward by their ``read`` frames.

A page sends ``read`` at most every 2 s while it shows the newest messages, so a busy room brings a steady trickle
of them, and each would otherwise cost a transaction on the database thread that stores the room's messages
(``make bench``'s reads scenario at 100 clients, 50 reads/s: a commit per batch of frames took the fan-out at
saturation from 88,576 to 51,027 deliveries/s). So frames are
gathered for GATHER_SECONDS and the markers of a batch are moved in one statement (an upsert that only moves a
marker forward). A frame is answered (its ``read`` broadcast to the person's sockets) only after that commit, so
an answered marker survives a restart of every process.
"""

import asyncio
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.utils import timezone

from .models import ReadMarker, Room


@dataclass(frozen=True, slots=True)
class Mark:
    room: Room
    who: str  # chat.store.who's key
    seq: int


def last_read(room: Room, who: str) -> int:
    """The person's marker in the room; 0 when they never read it."""
    return ReadMarker.objects.filter(room=room, who=who).values_list("seq", flat=True).first() or 0


# Moves each marker forward only; RETURNING names the ones that moved (inserted, or updated past their seq).
UPSERT = (
    "INSERT INTO {marker} (room_id, who, seq, updated) VALUES {rows}"
    " ON CONFLICT (who, room_id) DO UPDATE SET seq = excluded.seq, updated = excluded.updated"
    " WHERE {marker}.seq < excluded.seq RETURNING room_id, who, seq"
)
# How long frames are gathered before their markers are stored: a read's answer may wait this much.
GATHER_SECONDS = 0.1


def store_marks(marks: list[Mark]) -> dict[tuple[int, str], int | None]:
    """Move each (room, person)'s marker forward to the highest of their marks, clamped to the room's last seq, in
    one transaction; the stored value for each that moved, None for each that did not."""
    wanted: dict[tuple[int, str], int] = {}
    for mark in marks:
        key = (mark.room.pk, mark.who)
        wanted[key] = max(wanted.get(key, 0), mark.seq)
    moved: dict[tuple[int, str], int | None] = dict.fromkeys(wanted)
    with transaction.atomic():
        last_seqs = dict(Room.objects.filter(pk__in={room for room, _ in wanted}).values_list("pk", "last_seq"))
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = [
            (room_pk, who, min(seq, last_seqs.get(room_pk, 0)), now)
            for (room_pk, who), seq in sorted(wanted.items())
            if min(seq, last_seqs.get(room_pk, 0)) > 0
        ]
        if not rows:
            return moved
        table = connection.ops.quote_name(ReadMarker._meta.db_table)
        sql = UPSERT.format(marker=table, rows=", ".join(["(%s, %s, %s, %s)"] * len(rows)))
        with connection.cursor() as cursor:
            cursor.execute(sql, [value for row in rows for value in row])
            for room_pk, who, seq in cursor.fetchall():
                moved[room_pk, who] = seq
    return moved


_astore_marks = database_sync_to_async(store_marks)


class MarkWriter:
    """Stores marks in batches: those that arrive within GATHER_SECONDS, or while a commit runs, go into one."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Mark, asyncio.Future[int | None]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def mark(self, mark: Mark) -> int | None:
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.waiting.append((mark, future))
        if self.writer is None or self.writer.get_loop() is not asyncio.get_running_loop():
            self.writer = asyncio.get_running_loop().create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self.waiting:
                await asyncio.sleep(GATHER_SECONDS)
                batch, self.waiting = self.waiting, []
                try:
                    moved = await _astore_marks([mark for mark, _ in batch])
                except Exception as exc:  # the database's failure, answered to every frame of the batch
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                answered: set[tuple[int, str]] = set()
                for mark, future in batch:
                    key = (mark.room.pk, mark.who)
                    # The first of a person's frames in the batch announces the move; the rest moved nothing.
                    value = moved.get(key) if key not in answered else None
                    answered.add(key)
                    if not future.done():
                        future.set_result(value)
        finally:
            self.writer = None


_writer = MarkWriter()


async def mark(room: Room, who: str, seq: int) -> int | None:
    """Move the person's marker in the room towards ``seq``; the stored value if it moved, else None."""
    return await _writer.mark(Mark(room, who, seq))
