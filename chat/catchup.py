"""Catch-ups of one room that share a read of the log.

When the layer loses events, or a burst outruns many sockets at once, every socket of the room falls behind
together and asks the log for the same seqs: left alone, each would run the same query and encode the same
frames, and the database work grows with the room. Here the first asks, and the others that need the same page
wait for its answer and take the part of it after their own seq (Go's ``singleflight``).

Nothing is cached beyond the read in flight: a page kept for later could send a body after the delete that
erased it was acknowledged. A socket joins only a read that began after the socket joined its room, so what it
gets is never older than what its own read would have been when it connected; and a later delete reaches it
as an entry of its own, which the socket's next catch-up reads.
"""

import asyncio
import bisect
import time
from dataclasses import dataclass

from . import metrics, protocol, selectors
from .models import Room

# (seq, encoded frame) pairs oldest first; the room's last seq; whether the pairs reach it.
Page = tuple[list[tuple[int, str]], int, bool]


@dataclass(frozen=True, eq=False)
class _Read:
    after: int
    began: float  # time.monotonic()
    task: "asyncio.Task[Page]"


# Room pk -> the reads of its log in flight on this process.
_in_flight: dict[int, list[_Read]] = {}


async def read(room: Room, *, after: int, joined_at: float) -> Page:
    """The next page of the room's log after seq ``after``, for a socket that joined the room at ``joined_at``
    (time.monotonic()); a share of a read already in flight when one fits."""
    loop = asyncio.get_running_loop()
    for flight in _in_flight.get(room.pk, ()):
        # A finished read waits on the list for its done-callback; its page may predate what this socket missed,
        # and awaiting a done task does not yield, so a catch-up that took it could loop without ever letting
        # the callback run.
        if flight.task.done() or flight.after > after or flight.began < joined_at or flight.task.get_loop() is not loop:
            continue
        entries, last_seq, complete = await asyncio.shield(flight.task)
        rest = entries[bisect.bisect_right(entries, after, key=lambda entry: entry[0]) :]
        if rest or complete:
            metrics.CATCH_UP_READS.labels(shared="yes").inc()
            return rest, last_seq, complete
        break  # the page ended at or below ``after``: read the next one
    metrics.CATCH_UP_READS.labels(shared="no").inc()
    flight = _Read(after, time.monotonic(), loop.create_task(_read(room, after)))
    reads = _in_flight.setdefault(room.pk, [])
    reads.append(flight)
    flight.task.add_done_callback(lambda _: _forget(room.pk, flight))
    # Shielded: a socket that disconnects mid-read must not cancel the read for those sharing it.
    return await asyncio.shield(flight.task)


async def _read(room: Room, after: int) -> Page:
    payloads, last_seq, complete = await selectors.catch_up(room, after=after)
    return [(payload["seq"], protocol.encode(payload)) for payload in payloads], last_seq, complete


def _forget(room_pk: int, flight: _Read) -> None:
    reads = _in_flight.get(room_pk)
    if reads is None:
        return
    if flight in reads:
        reads.remove(flight)
    if not reads:
        del _in_flight[room_pk]
    if not flight.task.cancelled():
        flight.task.exception()  # retrieved, so that a failed read nobody shared is not logged as never retrieved
