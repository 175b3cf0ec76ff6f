"""The one write path: gapless per-room seqs, idempotent resends, the broadcast, and the readers of the log."""

import asyncio
from unittest import mock

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.test import SimpleTestCase, TestCase, override_settings
from django.test.utils import CaptureQueriesContext

from chat import protocol, services
from chat.exceptions import ClientError
from chat.fanout import MESSAGE_EVENT, MESSAGES_EVENT
from chat.models import Message, Room
from chat.services import message_create, room_get_or_create

from .helpers import ChatTransactionTestCase, RoomListener, run_in_threads


def post(room: Room, body: str = "hello", *, client_id: str | None = None, author: str = "ada") -> services.Posted:
    return message_create(room=room, author=author, body=body, client_id=client_id)


def seqs(messages: list[dict]) -> list[int]:
    return [message["seq"] for message in messages]


class MessageCreateTests(TestCase):
    def setUp(self):
        self.room = Room.objects.create(name="general")

    def test_the_first_message_in_a_room_gets_seq_1(self):
        self.assertEqual(post(self.room).message.seq, 1)

    def test_messages_in_a_room_get_consecutive_seqs(self):
        self.assertEqual([post(self.room, f"m{i}").message.seq for i in range(3)], [1, 2, 3])

    def test_each_room_numbers_its_messages_independently(self):
        other = Room.objects.create(name="other")
        order = [self.room, other, other, self.room, other, self.room]
        got = [(room.name, post(room).message.seq) for room in order]
        self.assertEqual(
            got, [("general", 1), ("other", 1), ("other", 2), ("general", 2), ("other", 3), ("general", 3)]
        )

    def test_posting_advances_the_room_last_seq(self):
        for _ in range(3):
            post(self.room)
        self.room.refresh_from_db()
        self.assertEqual(self.room.last_seq, 3)

    def test_posting_sets_the_room_last_activity_to_the_message_time(self):
        posted = post(self.room)
        self.room.refresh_from_db()
        self.assertEqual(self.room.last_activity, posted.message.created)

    def test_a_new_message_is_reported_as_created(self):
        self.assertTrue(post(self.room).created)

    def test_the_stored_message_keeps_author_user_and_client_id(self):
        user = get_user_model().objects.create_user("ada", password="x-pass-123")
        posted = message_create(room=self.room, author="ada", user=user, body="hi", client_id="c-1")
        stored = Message.objects.get(pk=posted.message.pk)
        self.assertEqual(
            (stored.room_id, stored.seq, stored.author, stored.user, stored.body, stored.client_id),
            (self.room.pk, 1, "ada", user, "hi", "c-1"),
        )

    def test_the_stored_body_is_trimmed_and_nfc_normalised(self):
        posted = post(self.room, "  Cafe\u0301 \n")
        self.assertEqual(Message.objects.get(pk=posted.message.pk).body, "Caf\u00e9")

    def test_a_resent_client_id_returns_the_original_message(self):
        original = post(self.room, "first", client_id="c-1")
        post(self.room, "in between")
        resent = post(self.room, "first", client_id="c-1")
        self.assertEqual((resent.created, resent.message.pk, resent.message.seq), (False, original.message.pk, 1))

    def test_a_resent_client_id_stores_nothing(self):
        post(self.room, client_id="c-1")
        post(self.room, client_id="c-1")
        self.room.refresh_from_db()
        self.assertEqual((Message.objects.count(), self.room.last_seq), (1, 1))

    def test_a_resent_client_id_with_another_body_still_returns_the_original_body(self):
        post(self.room, "first", client_id="c-1")
        self.assertEqual(post(self.room, "edited", client_id="c-1").message.body, "first")

    def test_the_same_client_id_in_two_rooms_stores_two_messages(self):
        other = Room.objects.create(name="other")
        here, there = post(self.room, client_id="c-1"), post(other, client_id="c-1")
        self.assertEqual((here.created, there.created, Message.objects.count()), (True, True, 2))

    def test_messages_without_a_client_id_are_never_taken_for_resends(self):
        bodies = ["same", "same", "same"]
        self.assertEqual([post(self.room, body).created for body in bodies], [True, True, True])

    def test_an_empty_body_is_refused_as_empty(self):
        with self.assertRaises(ClientError) as caught:
            post(self.room, "  \n ")
        self.assertEqual(caught.exception.code, protocol.EMPTY)

    def test_a_refused_message_stores_nothing_and_keeps_the_seq(self):
        with self.assertRaises(ClientError):
            post(self.room, "")
        self.room.refresh_from_db()
        self.assertEqual((Message.objects.count(), self.room.last_seq, self.room.last_activity), (0, 0, None))

    @override_settings(CHAT_MAX_MESSAGE_LENGTH=5)
    def test_a_body_over_the_configured_length_is_refused_as_too_long(self):
        with self.assertRaises(ClientError) as caught:
            post(self.room, "123456")
        self.assertEqual(caught.exception.code, protocol.TOO_LONG)

    def test_a_body_with_a_control_character_is_refused_as_bad_text(self):
        with self.assertRaises(ClientError) as caught:
            post(self.room, "a\x00b")
        self.assertEqual(caught.exception.code, protocol.BAD_TEXT)

    def test_a_bad_client_id_is_refused_as_bad_frame(self):
        with self.assertRaises(ClientError) as caught:
            post(self.room, client_id="not ok")
        self.assertEqual(caught.exception.code, protocol.BAD_FRAME)


class RoomGetOrCreateTests(TestCase):
    def test_a_new_room_is_stored_under_its_lowercase_name(self):
        self.assertEqual(room_get_or_create("General").name, "general")

    def test_an_existing_room_is_found_in_any_case(self):
        room = Room.objects.create(name="general")
        self.assertEqual(room_get_or_create("GENERAL").pk, room.pk)

    def test_an_invalid_name_is_refused_as_bad_room_and_creates_nothing(self):
        with self.assertRaises(ClientError) as caught:
            room_get_or_create("bad.name")
        self.assertEqual((caught.exception.code, Room.objects.count()), ("bad_room", 0))


class MessagePayloadTests(TestCase):
    def test_the_payload_is_the_message_frame_of_the_stored_message(self):
        room = Room.objects.create(name="general")
        message = post(room, "hi", client_id="c-9").message
        self.assertEqual(
            services.message_payload(message, "general"),
            {
                "type": "message",
                "room": "general",
                "seq": 1,
                "author": "ada",
                "body": "hi",
                "sent_at": protocol.iso_utc(message.created),
                "client_id": "c-9",
            },
        )

    def test_the_sent_at_of_a_stored_message_is_utc_with_a_z(self):
        room = Room.objects.create(name="general")
        message = Message.objects.get(pk=post(room).message.pk)
        self.assertTrue(services.message_payload(message, "general")["sent_at"].endswith("Z"))


class BroadcastTests(TestCase):
    """message_create broadcasts to the room's group on the in-memory layer, after storing."""

    def setUp(self):
        self.room = Room.objects.create(name="general")

    def listen(self, scenario):
        """Run ``scenario(listener)`` in one event loop, with a listener in the general room's group."""

        async def run():
            async with RoomListener("general") as listener:
                return await scenario(listener)

        return async_to_sync(run)()

    def test_a_new_message_is_broadcast_as_a_chat_message_event(self):
        async def scenario(listener):
            posted = await sync_to_async(post)(self.room, "hi", client_id="c-1")
            return posted, await listener.receive()

        posted, event = self.listen(scenario)
        frame = services.message_payload(posted.message, "general")
        self.assertEqual(event, {"type": "chat.message", "seq": 1, "text": protocol.encode(frame)})

    def test_a_new_message_is_broadcast_exactly_once(self):
        async def scenario(listener):
            await sync_to_async(post)(self.room, "hi")
            await listener.receive()
            return await listener.receive_or_none()

        self.assertIsNone(self.listen(scenario))

    def test_a_resend_is_not_broadcast(self):
        async def scenario(listener):
            await sync_to_async(post)(self.room, "hi", client_id="c-1")
            await listener.receive()
            await sync_to_async(post)(self.room, "hi", client_id="c-1")
            return await listener.receive_or_none()

        self.assertIsNone(self.listen(scenario))

    def test_a_refused_message_is_not_broadcast(self):
        async def scenario(listener):
            with self.assertRaises(ClientError):
                await sync_to_async(post)(self.room, "")
            return await listener.receive_or_none()

        self.assertIsNone(self.listen(scenario))

    def test_a_message_in_another_room_is_not_broadcast_here(self):
        other = Room.objects.create(name="other")

        async def scenario(listener):
            await sync_to_async(post)(other, "hi")
            return await listener.receive_or_none()

        self.assertIsNone(self.listen(scenario))

    def test_broadcasts_arrive_in_seq_order(self):
        async def scenario(listener):
            for body in ["one", "two", "three"]:
                await sync_to_async(post)(self.room, body)
            return [(await listener.receive())["seq"] for _ in range(3)]

        self.assertEqual(self.listen(scenario), [1, 2, 3])


class AsyncMessageCreateTests(ChatTransactionTestCase):
    def test_amessage_create_stores_with_the_next_seq_and_broadcasts(self):
        room = Room.objects.create(name="general")

        async def scenario():
            async with RoomListener("general") as listener:
                posted = await services.amessage_create(room=room, author="ada", body="hi", client_id="c-1")
                return posted, await listener.receive()

        posted, event = async_to_sync(scenario)()
        self.assertEqual((posted.created, posted.message.seq, event["seq"]), (True, 1, 1))

    def test_amessage_create_returns_the_original_for_a_resend_without_broadcasting(self):
        room = Room.objects.create(name="general")

        async def scenario():
            async with RoomListener("general") as listener:
                first = await services.amessage_create(room=room, author="ada", body="hi", client_id="c-1")
                await listener.receive()
                again = await services.amessage_create(room=room, author="ada", body="hi", client_id="c-1")
                return first, again, await listener.receive_or_none()

        first, again, event = async_to_sync(scenario)()
        self.assertEqual((again.created, again.message.pk, event), (False, first.message.pk, None))


class AsyncMessageCreateFailureTests(SimpleTestCase):
    def test_a_database_error_while_storing_becomes_an_unavailable_client_error(self):
        failing_store = mock.AsyncMock(side_effect=DatabaseError("disk I/O error"))
        with (
            mock.patch.object(services, "_astore_all", failing_store),
            self.assertLogs("chat.services", "WARNING"),
            self.assertRaises(ClientError) as caught,
        ):
            async_to_sync(services.amessage_create)(room=Room(name="general"), author="ada", body="hi")
        self.assertEqual(caught.exception.code, protocol.UNAVAILABLE)


def draft(room: Room, body: str = "hello", *, client_id: str | None = None) -> services.Draft:
    return services.Draft(room=room, author="ada", user=None, body=body, client_id=client_id)


class StoreAllTests(TestCase):
    """_store_all stores a batch of drafts in one transaction, as the socket path's group commit does."""

    def setUp(self):
        self.room = Room.objects.create(name="general")
        self.other = Room.objects.create(name="other")

    def test_a_batch_across_two_rooms_numbers_each_room_in_arrival_order(self):
        order = [self.room, self.other, self.room, self.other, self.room]
        posted = services._store_all([draft(room, f"m{i}") for i, room in enumerate(order)])
        got = [(p.message.room.name, p.message.seq, p.message.body) for p in posted]
        self.assertEqual(
            got,
            [("general", 1, "m0"), ("other", 1, "m1"), ("general", 2, "m2"), ("other", 2, "m3"), ("general", 3, "m4")],
        )

    def test_a_batch_is_stored_with_one_insert(self):
        with CaptureQueriesContext(connection) as queries:
            services._store_all([draft(self.room, f"m{i}", client_id=f"c-{i}") for i in range(10)])
        inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
        self.assertEqual((len(inserts), Message.objects.count()), (1, 10))

    def test_a_batch_advances_each_room_last_seq_by_what_it_stored(self):
        services._store_all([draft(self.room), draft(self.other), draft(self.room)])
        self.room.refresh_from_db()
        self.other.refresh_from_db()
        self.assertEqual((self.room.last_seq, self.other.last_seq), (2, 1))

    def test_a_resend_in_a_batch_answers_the_original_and_takes_no_seq(self):
        original = post(self.room, "first", client_id="c-1").message
        posted = services._store_all(
            [draft(self.room, "x", client_id="c-2"), draft(self.room, "first", client_id="c-1")]
        )
        self.assertEqual([(p.created, p.message.seq) for p in posted], [(True, 2), (False, original.seq)])
        self.assertEqual(Message.objects.count(), 2)

    def test_one_client_id_twice_in_a_batch_is_stored_once_and_both_get_its_seq(self):
        posted = services._store_all(
            [draft(self.room, "a", client_id="c-1"), draft(self.room, "a", client_id="c-1"), draft(self.room, "b")]
        )
        self.assertEqual([(p.created, p.message.seq) for p in posted], [(True, 1), (False, 1), (True, 2)])
        self.room.refresh_from_db()
        self.assertEqual((Message.objects.count(), self.room.last_seq), (2, 2))

    def test_a_client_id_stored_by_another_writer_after_the_lookup_falls_back_to_one_by_one(self):
        original = post(self.room, "first", client_id="c-1").message
        real_lookup = services._already_stored
        calls = []

        def stale_first_lookup(cursor, drafts):
            # As if another process committed c-1 between this batch's lookup and its insert.
            calls.append(len(drafts))
            return {} if len(calls) == 1 else real_lookup(cursor, drafts)

        with mock.patch.object(services, "_already_stored", stale_first_lookup):
            posted = services._store_all(
                [draft(self.room, "new", client_id="c-2"), draft(self.room, "first", client_id="c-1")]
            )
        self.assertEqual([(p.created, p.message.seq) for p in posted], [(True, 2), (False, original.seq)])
        self.room.refresh_from_db()
        self.assertEqual(list(Message.objects.values_list("seq", flat=True)), [1, 2])
        self.assertEqual(self.room.last_seq, 2)


class GroupCommitTests(ChatTransactionTestCase):
    """amessage_create batches what arrives while the database thread is busy: one transaction for many posts."""

    def setUp(self):
        self.room = Room.objects.create(name="general")
        self.batches: list[int] = []
        real = services._astore_all

        async def counting(drafts):
            self.batches.append(len(drafts))
            return await real(drafts)

        patcher = mock.patch.object(services, "_astore_all", counting)
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
        frames = [services.message_payload(p.message, "general") for p in posted]
        self.assertEqual(
            events[0]["events"],
            [{"type": MESSAGE_EVENT, "seq": f["seq"], "text": protocol.encode(f)} for f in frames],
        )

    @mock.patch.object(services, "GROUP_COMMIT_MAX", 8)
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
        real = services._astore_all
        failures = [DatabaseError("server closed the connection")]

        async def failing_once(drafts):
            if failures:
                raise failures.pop()
            return await real(drafts)

        async def scenario():
            with mock.patch.object(services, "_astore_all", failing_once):
                first = await asyncio.gather(
                    *(services.amessage_create(room=self.room, author="ada", body=f"m{i}") for i in range(3)),
                    return_exceptions=True,
                )
                again = await services.amessage_create(room=self.room, author="ada", body="again")
            return first, again

        with self.assertLogs("chat.services", "WARNING"):
            first, again = async_to_sync(scenario)()
        self.assertEqual([getattr(e, "code", e) for e in first], [protocol.UNAVAILABLE] * 3)
        self.assertEqual((again.created, again.message.seq), (True, 1))


class LogReaderTestCase(ChatTransactionTestCase):
    """backlog, history and last_seq are database_sync_to_async helpers, so these tests commit for real."""

    def setUp(self):
        self.room = Room.objects.create(name="general")

    def fill(self, count: int, room: Room | None = None) -> None:
        for index in range(count):
            post(room or self.room, f"message {index + 1}")

    def backlog(self, after: int | None = None) -> tuple[list[dict], int]:
        return async_to_sync(services.backlog)(self.room, after=after)

    def history(self, before: int, limit: int) -> tuple[list[dict], bool]:
        return async_to_sync(services.history)(self.room, before=before, limit=limit)


@override_settings(CHAT_BACKLOG_LIMIT=5, CHAT_RESUME_LIMIT=20)
class BacklogTests(LogReaderTestCase):
    def test_without_after_the_backlog_is_the_newest_backlog_limit_messages_oldest_first(self):
        self.fill(8)
        self.assertEqual(seqs(self.backlog()[0]), [4, 5, 6, 7, 8])

    def test_without_after_a_short_log_is_returned_whole(self):
        self.fill(3)
        self.assertEqual(seqs(self.backlog()[0]), [1, 2, 3])

    def test_the_backlog_of_an_empty_room_is_empty_with_last_seq_0(self):
        self.assertEqual(self.backlog(), ([], 0))

    def test_the_backlog_comes_with_the_room_last_seq(self):
        self.fill(8)
        self.assertEqual(self.backlog()[1], 8)

    def test_the_backlog_holds_message_frames(self):
        self.fill(1)
        (frame,), _ = self.backlog()
        self.assertEqual(
            (frame["type"], frame["room"], frame["body"], frame["author"]), ("message", "general", "message 1", "ada")
        )

    def test_with_after_k_the_backlog_is_the_messages_after_k(self):
        self.fill(8)
        self.assertEqual(seqs(self.backlog(after=5)[0]), [6, 7, 8])

    def test_with_after_the_backlog_limit_does_not_apply(self):
        self.fill(8)
        self.assertEqual(seqs(self.backlog(after=1)[0]), [2, 3, 4, 5, 6, 7, 8])

    def test_with_after_0_the_backlog_is_the_whole_log(self):
        self.fill(8)
        self.assertEqual(seqs(self.backlog(after=0)[0]), list(range(1, 9)))

    def test_with_after_the_last_seq_the_backlog_is_empty(self):
        self.fill(4)
        self.assertEqual(self.backlog(after=4), ([], 4))

    def test_with_after_beyond_the_last_seq_the_backlog_is_empty(self):
        self.fill(4)
        self.assertEqual(self.backlog(after=99), ([], 4))

    @override_settings(CHAT_RESUME_LIMIT=3)
    def test_with_after_the_backlog_is_capped_to_the_newest_resume_limit(self):
        self.fill(8)
        self.assertEqual(seqs(self.backlog(after=1)[0]), [6, 7, 8])

    def test_the_backlog_holds_only_its_room_messages(self):
        other = Room.objects.create(name="other")
        self.fill(2, other)
        self.fill(2)
        self.fill(2, other)
        frames, last_seq = self.backlog()
        self.assertEqual(([frame["room"] for frame in frames], seqs(frames), last_seq), (["general"] * 2, [1, 2], 2))


class HistoryTests(LogReaderTestCase):
    def test_history_is_the_messages_just_before_before_oldest_first(self):
        self.fill(10)
        self.assertEqual(seqs(self.history(before=8, limit=3)[0]), [5, 6, 7])

    def test_history_has_more_when_older_messages_remain(self):
        self.fill(10)
        self.assertTrue(self.history(before=8, limit=3)[1])

    def test_history_has_no_more_when_the_page_reaches_seq_1(self):
        self.fill(10)
        messages, has_more = self.history(before=4, limit=3)
        self.assertEqual((seqs(messages), has_more), ([1, 2, 3], False))

    def test_history_with_a_limit_larger_than_what_is_left_returns_the_rest(self):
        self.fill(10)
        messages, has_more = self.history(before=3, limit=50)
        self.assertEqual((seqs(messages), has_more), ([1, 2], False))

    def test_history_before_1_is_empty(self):
        self.fill(3)
        self.assertEqual(self.history(before=1, limit=10), ([], False))

    def test_history_before_a_seq_beyond_the_log_pages_from_the_newest(self):
        self.fill(5)
        messages, has_more = self.history(before=1000, limit=2)
        self.assertEqual((seqs(messages), has_more), ([4, 5], True))

    def test_history_holds_only_its_room_messages(self):
        other = Room.objects.create(name="other")
        self.fill(3, other)
        self.fill(2)
        messages, has_more = self.history(before=10, limit=10)
        self.assertEqual(([m["room"] for m in messages], seqs(messages), has_more), (["general"] * 2, [1, 2], False))


class LastSeqTests(LogReaderTestCase):
    def test_last_seq_is_read_from_the_database_not_the_room_object(self):
        self.fill(3)
        self.assertEqual((self.room.last_seq, async_to_sync(services.last_seq)(self.room)), (0, 3))

    def test_last_seq_of_an_empty_room_is_0(self):
        self.assertEqual(async_to_sync(services.last_seq)(self.room), 0)


class ConcurrentWriterTests(ChatTransactionTestCase):
    """Writers in several threads, each with its own database connection, as in several server processes."""

    THREADS = 8
    PER_THREAD = 25

    def setUp(self):
        self.room = Room.objects.create(name="general")

    def write_many(self, index: int) -> list[int]:
        room = Room.objects.get(pk=self.room.pk)
        return [
            post(room, f"writer {index} message {n}", author=f"w{index}").message.seq for n in range(self.PER_THREAD)
        ]

    def test_concurrent_writers_to_one_room_get_seqs_1_to_200_without_gaps_or_duplicates(self):
        run_in_threads(self.THREADS, self.write_many)
        total = self.THREADS * self.PER_THREAD
        stored = list(Message.objects.filter(room=self.room).values_list("seq", flat=True).order_by("seq"))
        self.room.refresh_from_db()
        self.assertEqual(stored, list(range(1, total + 1)))
        self.assertEqual(self.room.last_seq, total)

    def test_concurrent_writers_each_see_their_own_seqs_rising_and_all_seqs_once(self):
        per_thread = run_in_threads(self.THREADS, self.write_many)
        for got in per_thread:
            self.assertEqual(got, sorted(got))
        every = [seq for got in per_thread for seq in got]
        self.assertEqual(sorted(every), list(range(1, self.THREADS * self.PER_THREAD + 1)))

    def test_concurrent_writers_keep_each_message_with_its_own_author(self):
        run_in_threads(self.THREADS, self.write_many)
        for index in range(self.THREADS):
            bodies = list(Message.objects.filter(author=f"w{index}").order_by("seq").values_list("body", flat=True))
            self.assertEqual(bodies, [f"writer {index} message {n}" for n in range(self.PER_THREAD)])

    def test_the_same_client_id_posted_concurrently_is_stored_once(self):
        run_in_threads(self.THREADS, lambda index: post(Room.objects.get(pk=self.room.pk), "hi", client_id="same"))
        self.room.refresh_from_db()
        self.assertEqual((Message.objects.count(), self.room.last_seq), (1, 1))

    def test_every_concurrent_post_of_one_client_id_returns_the_same_seq(self):
        results = run_in_threads(
            self.THREADS, lambda index: post(Room.objects.get(pk=self.room.pk), "hi", client_id="same")
        )
        self.assertEqual({posted.message.seq for posted in results}, {1})
        self.assertEqual(sum(posted.created for posted in results), 1)

    def test_concurrent_batches_across_two_rooms_keep_both_rooms_gapless(self):
        # Each thread is one process's group commit; batches lock the two rooms in opposite arrival orders.
        other = Room.objects.create(name="other")

        def write(index: int) -> None:
            rooms = [Room.objects.get(pk=self.room.pk), Room.objects.get(pk=other.pk)]
            if index % 2:
                rooms.reverse()
            for n in range(10):
                services._store_all([draft(rooms[k % 2], f"{index}-{n}-{k}") for k in range(4)])

        run_in_threads(self.THREADS, write)
        for room in [self.room, other]:
            stored = list(Message.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
            self.assertEqual(stored, list(range(1, self.THREADS * 10 * 2 + 1)), room.name)

    def test_concurrent_writers_to_two_rooms_keep_both_rooms_gapless(self):
        other = Room.objects.create(name="other")
        rooms = [self.room, other]

        def write(index: int) -> None:
            room = Room.objects.get(pk=rooms[index % 2].pk)
            for n in range(10):
                post(room, f"{index}-{n}")

        run_in_threads(self.THREADS, write)
        for room in rooms:
            stored = list(Message.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
            self.assertEqual(stored, list(range(1, self.THREADS // 2 * 10 + 1)), room.name)
