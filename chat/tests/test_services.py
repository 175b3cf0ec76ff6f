"""The one write path: validation, gapless per-room seqs, idempotent resends, and the broadcast after commit."""

from unittest import mock

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.test import SimpleTestCase, TestCase, override_settings

from chat import groupcommit, protocol, services
from chat.exceptions import ClientError
from chat.models import Message, Room
from chat.selectors import message_payload
from chat.services import message_create, room_get_or_create
from chat.store import store_all

from .helpers import ChatTransactionTestCase, RoomListener, draft, post, run_in_threads


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
        frame = message_payload(posted.message, "general")
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
            mock.patch.object(groupcommit, "_astore_all", failing_store),
            self.assertLogs("chat.groupcommit", "WARNING"),
            self.assertRaises(ClientError) as caught,
        ):
            async_to_sync(services.amessage_create)(room=Room(name="general"), author="ada", body="hi")
        self.assertEqual(caught.exception.code, protocol.UNAVAILABLE)


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
                store_all([draft(rooms[k % 2], f"{index}-{n}-{k}") for k in range(4)])

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
