"""The socket path's writer: entries posted while the database thread is busy are stored in one transaction."""

import asyncio
import logging
import weakref
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError

from . import metrics, protocol
from .broadcast import broadcast
from .events import message_event, messages_event
from .exceptions import ClientError
from .selectors import message_payload
from .store import Entry, Outcome, Posted, store_all

logger = logging.getLogger(__name__)

_astore_all = database_sync_to_async(store_all)
# The most messages one transaction stores; more wait for the next.
GROUP_COMMIT_MAX = 100


class GroupCommit:
    """The socket path's writer: entries (messages, edits, deletes, reactions) posted while the database thread is
    busy are stored together.

    Idle, a message is stored at once, alone. Under load, everything that arrived during one commit goes into the
    next, so the cost of a transaction and of a database-thread hop is shared (measured in docs/performance.md).
    Each batch's broadcasts start right after its commit and run while the next batch commits; they go out in
    commit order, and only one batch's are ever outstanding, so a slow channel layer slows posting instead of
    queueing without bound. A room's messages in one batch travel as one event (chat.events.messages_event): it arrives
    whole, so another process's broadcast cannot land between them and make every client ask for a gap.
    """

    def __init__(self) -> None:
        self.waiting: list[tuple[Entry, asyncio.Future[Posted]]] = []
        self.writer: asyncio.Task[None] | None = None
        self.broadcasting: asyncio.Task[None] | None = None

    async def post(self, draft: Entry) -> Posted:
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

    async def _commit(self, batch: list[tuple[Entry, asyncio.Future[Posted]]]) -> None:
        """Store a batch, start broadcasting what it stored, answer its posters."""
        try:
            results = await _astore_all([draft for draft, _ in batch])
        except DatabaseError as exc:
            logger.warning("storing %d entries failed: %r", len(batch), exc)
            self._fail(batch, ClientError(protocol.UNAVAILABLE, "It could not be stored; send it again."))
            return
        except Exception as exc:  # a bug: each poster raises it, as if it had stored alone
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            # One draft's bug must not fail the others': each alone, so that only its own poster gets it.
            for item in batch:
                await self._commit([item])
            return
        metrics.MESSAGE_COMMITS.inc()
        by_room: dict[str, list[dict[str, Any]]] = {}
        for (draft, _), outcome in zip(batch, results, strict=True):
            if isinstance(outcome, Posted) and outcome.created and outcome.entry is not None:
                metrics.count_stored(outcome.entry.kind)
                payload = message_payload(outcome.entry, draft.room.name, outcome.quoted)
                by_room.setdefault(draft.room.name, []).append(message_event(payload, revokes=outcome.revokes))
        if by_room:
            self.broadcasting = asyncio.create_task(self._broadcast(self.broadcasting, by_room))
        for (_, future), outcome in zip(batch, results, strict=True):
            # A poster that went away (its socket closed) was stored anyway; its resend will be answered by seq.
            if not future.done():
                self._answer(future, outcome)

    @staticmethod
    def _answer(future: "asyncio.Future[Posted]", outcome: Outcome) -> None:
        if isinstance(outcome, ClientError):
            future.set_exception(outcome)  # its rules refused it: nothing of it was stored
        else:
            future.set_result(outcome)

    @staticmethod
    def _fail(batch: list[tuple[Entry, asyncio.Future[Posted]]], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    @staticmethod
    async def _broadcast(earlier: asyncio.Task[None] | None, by_room: dict[str, list[dict[str, Any]]]) -> None:
        if earlier is not None:
            await asyncio.wait([earlier])  # commit order
        for room_name, events in by_room.items():
            await broadcast(room_name, messages_event(events))


# One writer per event loop: its futures and its task belong to the loop.
_group_commits: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit]" = weakref.WeakKeyDictionary()


async def post(draft: Entry) -> Posted:
    """Store a checked draft through this event loop's group commit, and broadcast it after the commit."""
    loop = asyncio.get_running_loop()
    writer = _group_commits.get(loop)
    if writer is None:
        writer = _group_commits[loop] = GroupCommit()
    return await writer.post(draft)
