"""The chat_post command: the system author posting through the same write path as the chat."""

from io import StringIO

from asgiref.sync import async_to_sync, sync_to_async
from django.core.management import CommandError, call_command
from django.test import TestCase

from chat.models import Message, Room
from chat.services import message_create

from .helpers import RoomListener


def chat_post(*args: str) -> str:
    out = StringIO()
    call_command("chat_post", *args, stdout=out)
    return out.getvalue()


class ChatPostTests(TestCase):
    def test_posting_to_a_new_room_creates_it_under_its_lowercase_name(self):
        chat_post("General", "hello")
        self.assertEqual(list(Room.objects.values_list("name", flat=True)), ["general"])

    def test_the_first_post_is_seq_1_authored_by_system(self):
        chat_post("General", "hello")
        message = Message.objects.get()
        self.assertEqual((message.seq, message.author, message.user, message.body), (1, "system", None, "hello"))

    def test_the_command_prints_the_room_and_seq(self):
        self.assertEqual(chat_post("General", "hello"), "general #1\n")

    def test_posting_to_an_existing_room_takes_its_next_seq(self):
        room = Room.objects.create(name="general")
        message_create(room=room, author="ada", body="earlier")
        self.assertEqual(chat_post("GENERAL", "hello"), "general #2\n")

    def test_the_post_is_broadcast_to_the_room(self):
        Room.objects.create(name="general")

        async def scenario():
            async with RoomListener("general") as listener:
                await sync_to_async(chat_post)("general", "hello")
                return await listener.receive()

        event = async_to_sync(scenario)()
        self.assertEqual((event["type"], event["seq"]), ("chat.message", 1))
        self.assertIn('"author":"system"', event["text"])

    def test_an_invalid_room_name_is_a_command_error(self):
        with self.assertRaisesMessage(CommandError, "Room names are 1-64 letters"):
            chat_post("bad.name", "hello")

    def test_an_invalid_room_name_creates_nothing(self):
        with self.assertRaises(CommandError):
            chat_post("bad.name", "hello")
        self.assertEqual((Room.objects.count(), Message.objects.count()), (0, 0))

    def test_an_empty_text_is_a_command_error(self):
        for text in ["", "   "]:
            with self.subTest(text=text), self.assertRaisesMessage(CommandError, "The message is empty."):
                chat_post("general", text)

    def test_an_empty_text_stores_no_message(self):
        with self.assertRaises(CommandError):
            chat_post("general", "")
        self.assertEqual(Message.objects.count(), 0)

    def test_an_empty_text_creates_no_room(self):
        with self.assertRaises(CommandError):
            chat_post("newroom", "  ")
        self.assertFalse(Room.objects.filter(name="newroom").exists())

    def test_a_text_with_a_control_character_is_a_command_error(self):
        with self.assertRaisesMessage(CommandError, "control character"):
            chat_post("general", "bell\x07")
