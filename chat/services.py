"""The one write path: validate a message, store it with the room's next seq, then broadcast it.

The consumer, the admin and the ``chat_post`` command all post through ``message_create`` (or its async twin,
which shares a transaction with other posts: chat.groupcommit). The broadcast happens only after the commit, so
every seq a client can see is already in the log, and a client that missed a broadcast finds the message by seq.
"""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User

from . import groupcommit, metrics, protocol
from .broadcast import broadcast
from .events import message_event
from .exceptions import ClientError
from .models import Room
from .rooms import ROOM_NAME_RULE, normalize_room_name
from .selectors import message_payload
from .store import Draft, Posted, store_all

__all__ = ["Posted", "amessage_create", "draft", "message_create", "room_get_or_create"]


def room_get_or_create(name: str) -> Room:
    canonical = normalize_room_name(name)
    if canonical is None:
        raise ClientError("bad_room", f"Room names are {ROOM_NAME_RULE}.")
    room, _ = Room.objects.get_or_create(name=canonical)
    return room


def draft(*, room: Room, author: str, user: User | None, body: str, client_id: str | None) -> Draft:
    """Check a message before it is stored: ClientError for a bad body or client_id."""
    return Draft(
        room=room,
        author=author,
        user=user,
        body=protocol.clean_body(body, settings.CHAT_MAX_MESSAGE_LENGTH),
        client_id=protocol.clean_client_id(client_id),
    )


def message_create(
    *, room: Room, author: str, user: User | None = None, body: str, client_id: str | None = None
) -> Posted:
    """Store a message and broadcast it to the room. For synchronous callers: the admin, management commands."""
    (posted,) = store_all([draft(room=room, author=author, user=user, body=body, client_id=client_id)])
    if posted.created:
        metrics.MESSAGES_STORED.inc()
        async_to_sync(broadcast)(room.name, message_event(message_payload(posted.message, room.name)))
    return posted


async def amessage_create(
    *, room: Room, author: str, user: User | None = None, body: str, client_id: str | None = None
) -> Posted:
    """The async twin of message_create for consumers: the same checks and store, batched with other posts."""
    return await groupcommit.post(draft(room=room, author=author, user=user, body=body, client_id=client_id))
