"""Catch-ups of one room that share a read of the log (chat.catchup)."""

import asyncio
import time

from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import catchup, selectors
from chat.models import Room

from .helpers import ChatTransactionTestCase, post

Page = catchup.Page


def page_seqs(page: Page) -> list[int]:
    return [seq for seq, _ in page[0]]


class SharedCatchUpTests(ChatTransactionTestCase):
    def setUp(self):
        self.room = Room.objects.create(name="general")
        for index in range(10):
            post(self.room, f"message {index + 1}")

    def read_alone(self, after: int) -> Page:
        return async_to_sync(catchup.read)(self.room, after=after, joined_at=0.0)

    def read_together(self, *requests: tuple[int, float]) -> tuple[list[Page], int]:
        """Catch-ups started at the same moment, each (after, joined_at); their pages and the queries they made."""

        async def together() -> list[Page]:
            reads = [catchup.read(self.room, after=after, joined_at=joined_at) for after, joined_at in requests]
            return list(await asyncio.gather(*reads))

        with CaptureQueriesContext(connection) as queries:
            pages = async_to_sync(together)()
        return pages, len(queries)

    def queries_of_one_read(self) -> int:
        with CaptureQueriesContext(connection) as queries:
            self.read_alone(0)
        return len(queries)

    def test_catch_ups_started_together_make_the_queries_of_one(self):
        one = self.queries_of_one_read()
        pages, queries = self.read_together((0, 0.0), (0, 0.0), (0, 0.0))
        self.assertEqual(queries, one)
        self.assertEqual([page_seqs(page) for page in pages], [list(range(1, 11))] * 3)

    def test_a_shared_read_gives_each_socket_only_what_follows_its_own_seq(self):
        pages, _ = self.read_together((2, 0.0), (7, 0.0))
        self.assertEqual([page_seqs(page) for page in pages], [list(range(3, 11)), [8, 9, 10]])
        self.assertEqual([(last_seq, complete) for _, last_seq, complete in pages], [(10, True), (10, True)])

    def test_a_shared_page_is_the_frames_a_read_of_its_own_would_have_sent(self):
        pages, _ = self.read_together((0, 0.0), (4, 0.0))
        self.assertEqual(pages[1], self.read_alone(4))

    def test_a_socket_behind_the_read_in_flight_reads_for_itself(self):
        one = self.queries_of_one_read()
        pages, queries = self.read_together((5, 0.0), (2, 0.0))
        self.assertEqual(queries, 2 * one, "a read after seq 5 has nothing the socket at seq 2 still needs")
        self.assertEqual(page_seqs(pages[1]), list(range(3, 11)))

    def test_a_socket_that_joined_after_the_read_began_reads_for_itself(self):
        # Its read must not be older than its join: a delete acked before it connected has to be in what it gets.
        one = self.queries_of_one_read()
        _, queries = self.read_together((0, 0.0), (0, time.monotonic() + 60))
        self.assertEqual(queries, 2 * one)

    def test_a_socket_past_the_end_of_the_page_in_flight_reads_the_next_page(self):
        for index in range(selectors.CATCH_UP_PAGE):
            post(self.room, f"more {index + 1}")
        pages, _ = self.read_together((0, 0.0), (selectors.CATCH_UP_PAGE + 2, 0.0))
        self.assertEqual(page_seqs(pages[0]), list(range(1, selectors.CATCH_UP_PAGE + 1)))
        self.assertFalse(pages[0][2])
        self.assertEqual(page_seqs(pages[1]), list(range(selectors.CATCH_UP_PAGE + 3, selectors.CATCH_UP_PAGE + 11)))
        self.assertTrue(pages[1][2])

    def test_a_socket_that_goes_away_mid_read_does_not_cancel_the_read_it_shared(self):
        async def first_goes_away() -> Page:
            first = asyncio.ensure_future(catchup.read(self.room, after=0, joined_at=0.0))
            await asyncio.sleep(0)  # the first read is in flight
            second = asyncio.ensure_future(catchup.read(self.room, after=0, joined_at=0.0))
            await asyncio.sleep(0)  # the second shares it
            first.cancel()
            return await second

        self.assertEqual(page_seqs(async_to_sync(first_goes_away)()), list(range(1, 11)))

    def test_once_a_read_is_done_the_next_catch_up_reads_the_log_again(self):
        self.read_alone(0)
        post(self.room, "after the read")
        self.assertEqual(page_seqs(self.read_alone(10)), [11])

    def test_a_read_that_has_finished_is_not_shared_while_it_is_still_listed(self):
        # A read's task is done a moment before its done-callback takes it off the list, and awaiting a done task
        # does not yield: a socket that took its (complete, older) page there looped in its catch-up without ever
        # letting the callback run, and the process stopped serving anyone (seen in make soak's burst).
        async def in_the_window() -> Page:
            page = await catchup._read(self.room, 0)
            finished = asyncio.get_running_loop().create_task(asyncio.sleep(0, result=page))
            await finished
            catchup._in_flight[self.room.pk] = [catchup._Read(0, time.monotonic(), finished)]
            post_later = asyncio.to_thread(post, self.room, "after the read")
            await post_later
            try:
                return await asyncio.wait_for(catchup.read(self.room, after=10, joined_at=0.0), 5)
            finally:
                catchup._in_flight.pop(self.room.pk, None)

        self.assertEqual(page_seqs(async_to_sync(in_the_window)()), [11])
