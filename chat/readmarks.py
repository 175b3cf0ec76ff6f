"""Read markers: how far each person has read each room, moved forward by their ``read`` frames.

A page sends ``read`` at most every 2 s while it shows the newest messages, so a busy room brings a steady trickle
of them. They are stored as socket messages are (chat.groupcommit): the markers that arrive while the database
thread is busy go into one transaction, and a person's several frames for one room into one row write. A frame is
answered (its ``read`` broadcast to the person's sockets) only after that commit, so an answered marker survives
a restart of every process.
"""

import asyncio
import logging
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.db import IntegrityError, transaction

from .models import ReadMarker, Room

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mark:
    room: Room
    who: str  # chat.store.who's key
    seq: int


def last_read(room: Room, who: str) -> int:
    """The person's marker in the room; 0 when they never read it."""
    return ReadMarker.objects.filter(room=room, who=who).values_list("seq", flat=True).first() or 0


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
        for (room_pk, who), seq in wanted.items():
            seq = min(seq, last_seqs.get(room_pk, 0))
            if seq <= 0:
                continue
            if ReadMarker.objects.filter(room_id=room_pk, who=who, seq__lt=seq).update(seq=seq):
                moved[room_pk, who] = seq
            elif not ReadMarker.objects.filter(room_id=room_pk, who=who).exists():
                try:
                    with transaction.atomic():
                        ReadMarker.objects.create(room_id=room_pk, who=who, seq=seq)
                except IntegrityError:
                    # Another process made the row meanwhile: move it, if it is behind.
                    if not ReadMarker.objects.filter(room_id=room_pk, who=who, seq__lt=seq).update(seq=seq):
                        continue
                moved[room_pk, who] = seq
    return moved


_astore_marks = database_sync_to_async(store_marks)


class MarkWriter:
    """Stores the marks that arrive while a commit runs together, in the next one."""

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
