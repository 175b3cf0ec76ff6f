"""Readers of the log: message frames, the backlog, history pages, the catch-up page and the last seq."""

from asgiref.sync import async_to_sync
from django.test import TestCase, override_settings

from chat import protocol, selectors
from chat.models import Message, Room
from chat.selectors import message_payload

from .helpers import ChatTransactionTestCase, post, seqs


class MessagePayloadTests(TestCase):
    def test_the_payload_is_the_message_frame_of_the_stored_message(self):
        room = Room.objects.create(name="general")
        message = post(room, "hi", client_id="c-9").message
        self.assertEqual(
            message_payload(message, "general"),
            {
                "type": "message",
                "room": "general",
                "seq": 1,
                "author": "ada",
                "body": "hi",
                "sent_at": protocol.iso_utc(message.created),
                "client_id": "c-9",
                "reply_to": None,
                "edited_at": None,
                "deleted": False,
                "reactions": {},
                "state_seq": 1,
                "mentions": [],
            },
        )

    def test_the_sent_at_of_a_stored_message_is_utc_with_a_z(self):
        room = Room.objects.create(name="general")
        message = Message.objects.get(pk=post(room).message.pk)
        self.assertTrue(message_payload(message, "general")["sent_at"].endswith("Z"))


class LogReaderTestCase(ChatTransactionTestCase):
    """backlog, history and last_seq are database_sync_to_async helpers, so these tests commit for real."""

    def setUp(self):
        self.room = Room.objects.create(name="general")

    def fill(self, count: int, room: Room | None = None) -> None:
        for index in range(count):
            post(room or self.room, f"message {index + 1}")

    def backlog(self, after: int | None = None) -> tuple[list[dict], int]:
        return async_to_sync(selectors.backlog)(self.room, after=after)

    def history(self, before: int, limit: int) -> tuple[list[dict], bool]:
        return async_to_sync(selectors.history)(self.room, before=before, limit=limit)


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
        self.assertEqual((self.room.last_seq, async_to_sync(selectors.last_seq)(self.room)), (0, 3))

    def test_last_seq_of_an_empty_room_is_0(self):
        self.assertEqual(async_to_sync(selectors.last_seq)(self.room), 0)


class CatchUpTests(LogReaderTestCase):
    def catch_up(self, after: int) -> tuple[list[dict], int, bool]:
        return async_to_sync(selectors.catch_up)(self.room, after=after)

    def test_a_catch_up_page_is_the_oldest_messages_after_the_seq_sent(self):
        self.fill(5)
        messages, last_seq, complete = self.catch_up(2)
        self.assertEqual((seqs(messages), last_seq, complete), ([3, 4, 5], 5, True))

    @override_settings(CHAT_RESUME_LIMIT=3)
    def test_a_catch_up_far_behind_is_paged_from_where_it_stopped_without_a_hole(self):
        self.fill(selectors.CATCH_UP_PAGE + 5)
        messages, last_seq, complete = self.catch_up(0)
        self.assertEqual(seqs(messages), list(range(1, selectors.CATCH_UP_PAGE + 1)))
        self.assertFalse(complete)
        rest, _, complete = self.catch_up(selectors.CATCH_UP_PAGE)
        self.assertEqual((seqs(rest), complete), (list(range(selectors.CATCH_UP_PAGE + 1, last_seq + 1)), True))

    def test_a_catch_up_with_nothing_missed_is_empty_and_complete(self):
        self.fill(2)
        self.assertEqual(self.catch_up(2), ([], 2, True))
