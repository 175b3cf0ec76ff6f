from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import protocol
from chat.exceptions import ClientError
from chat.identity import SYSTEM_AUTHOR
from chat.services import message_create, room_get_or_create


class Command(BaseCommand):
    help = "Post a message to a room as the system author, through the same write path as the chat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room")
        parser.add_argument("text")

    def handle(self, *args: Any, room: str, text: str, **options: Any) -> None:
        try:
            # Checked before the room is looked up, so that a refused text does not leave a new, empty room behind.
            protocol.clean_body(text, settings.CHAT_MAX_MESSAGE_LENGTH)
            posted = message_create(room=room_get_or_create(room), author=SYSTEM_AUTHOR, body=text)
        except ClientError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"{posted.message.room.name} #{posted.message.seq}")
