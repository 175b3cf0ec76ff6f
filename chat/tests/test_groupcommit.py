"""The group commit: posts that arrive together share a transaction and are broadcast in commit order."""

import asyncio
from unittest import mock

from asgiref.sync import async_to_sync
from django.db import DatabaseError

from chat import groupcommit, protocol, services
from chat.events import MESSAGE_EVENT, MESSAGES_EVENT
from chat.models import Message, Room
from chat.selectors import message_payload

from .helpers import ChatTransactionTestCase, RoomListener


class GroupCommitTests(ChatTransactionTestCase):
    """amessage_create batches what arrives while the database thread is busy: one transaction for many posts."""

    def setUp(self):
        self.room = Room.objects.create(name="general")
        self.batches: list[int] = []
        real = groupcommit._astore_all

        async def counting(drafts):
            self.batches.append(len(drafts))
            return await real(drafts)

        patcher = mock.patch.object(groupcommit, "_astore_all", counting)
        patcher.start()
        self.addCleanup(patcher.stop)

    def post_together(self, count: int):
        """Post ``count`` messages at once; what was posted, and the room's broadcast events until all are seen."""

        async def scenario():
            async with RoomListener("general") as listener:
                posted = await asyncio.gather(
                    *(
                        services.amessage_create(room=self.room, author="ada", body=f"m{i}", client_id=f"c-{i}")
                        for i in range(count)
                    )
                )
                events = []
                while sum(len(event.get("events", [event])) for event in events) < count:
                    events.append(await listener.receive())
                return posted, events

        return async_to_sync(scenario)()

    @staticmethod
    def seqs(events: list[dict]) -> list[int]:
        return [inner["seq"] for event in events for inner in event.get("events", [event])]

    def test_posts_that_arrive_together_are_stored_in_one_transaction(self):
        self.post_together(20)
        self.assertEqual(self.batches, [20])

    def test_posts_stored_together_get_seqs_in_posting_order(self):
        posted, _ = self.post_together(20)
        self.assertEqual([(p.message.seq, p.message.body) for p in posted], [(i + 1, f"m{i}") for i in range(20)])

    def test_posts_stored_together_are_broadcast_in_seq_order(self):
        _, events = self.post_together(20)
        self.assertEqual(self.seqs(events), list(range(1, 21)))

    def test_a_rooms_posts_stored_together_are_broadcast_as_one_event(self):
        _, events = self.post_together(20)
        self.assertEqual([(event["type"], len(event["events"])) for event in events], [(MESSAGES_EVENT, 20)])

    def test_each_message_in_a_batch_event_is_the_frame_of_its_stored_message(self):
        posted, events = self.post_together(3)
        frames = [message_payload(p.message, "general") for p in posted]
        self.assertEqual(
            events[0]["events"],
            [{"type": MESSAGE_EVENT, "seq": f["seq"], "text": protocol.encode(f)} for f in frames],
        )

    @mock.patch.object(groupcommit, "GROUP_COMMIT_MAX", 8)
    def test_a_transaction_stores_at_most_group_commit_max_posts(self):
        posted, _ = self.post_together(20)
        self.assertEqual(self.batches, [8, 8, 4])
        self.assertEqual([p.message.seq for p in posted], list(range(1, 21)))

    def test_a_post_alone_is_stored_alone(self):
        async def one_by_one():
            return [
                (await services.amessage_create(room=self.room, author="ada", body=f"m{i}")).message.seq
                for i in range(3)
            ]

        self.assertEqual(async_to_sync(one_by_one)(), [1, 2, 3])
        self.assertEqual(self.batches, [1, 1, 1])

    def test_a_poster_that_goes_away_before_its_commit_still_has_its_message_stored(self):
        async def scenario():
            first = asyncio.ensure_future(services.amessage_create(room=self.room, author="ada", body="gone"))
            second = asyncio.ensure_future(services.amessage_create(room=self.room, author="ada", body="stays"))
            await asyncio.sleep(0)  # both are waiting for the writer
            first.cancel()
            return (await second).message.seq

        self.assertEqual(async_to_sync(scenario)(), 2)
        self.assertEqual(list(Message.objects.order_by("seq").values_list("body", flat=True)), ["gone", "stays"])

    def test_a_failed_commit_answers_every_post_in_it_unavailable_and_the_next_commit_stores(self):
        real = groupcommit._astore_all
        failures = [DatabaseError("server closed the connection")]

        async def failing_once(drafts):
            if failures:
                raise failures.pop()
            return await real(drafts)

        async def scenario():
            with mock.patch.object(groupcommit, "_astore_all", failing_once):
                first = await asyncio.gather(
                    *(services.amessage_create(room=self.room, author="ada", body=f"m{i}") for i in range(3)),
                    return_exceptions=True,
                )
                again = await services.amessage_create(room=self.room, author="ada", body="again")
            return first, again

        with self.assertLogs("chat.groupcommit", "WARNING"):
            first, again = async_to_sync(scenario)()
        self.assertEqual([getattr(e, "code", e) for e in first], [protocol.UNAVAILABLE] * 3)
        self.assertEqual((again.created, again.message.seq), (True, 1))
