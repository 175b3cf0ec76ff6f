"""The one write path: validate an entry, store it with the room's next seq, then broadcast it.

Messages, edits, deletes and reactions all go this way. The consumer posts through the async functions (which
share a transaction with other posts: chat.groupcommit); the admin and the ``chat_post`` command through the
sync ones. The broadcast happens only after the commit, so every seq a client can see is already in the log,
and a client that missed a broadcast finds the entry by seq.
"""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User

from . import access, groupcommit, metrics, protocol
from .broadcast import broadcast
from .events import message_event
from .exceptions import ClientError
from .identity import Identity
from .models import Kind, Room
from .rooms import ROOM_NAME_RULE, normalize_room_name
from .selectors import message_payload
from .store import Change, Draft, Posted, store_one

__all__ = [
    "Posted",
    "amessage_create",
    "apost",
    "change",
    "draft",
    "entry_create",
    "message_create",
    "message_delete",
    "room_get_or_create",
]


def room_get_or_create(name: str) -> Room:
    canonical = normalize_room_name(name)
    if canonical is None:
        raise ClientError("bad_room", f"Room names are {ROOM_NAME_RULE}.")
    room, _ = Room.objects.get_or_create(name=canonical)
    return room


def draft(
    *,
    room: Room,
    author: str,
    user: User | None,
    body: str,
    client_id: str | None = None,
    guest_id: str | None = None,
    reply_to: int | None = None,
) -> Draft:
    """Check a message before it is stored: ClientError for a bad body or client_id."""
    return Draft(
        room=room,
        author=author,
        user=user,
        body=protocol.clean_body(body, settings.CHAT_MAX_MESSAGE_LENGTH),
        client_id=protocol.clean_client_id(client_id),
        guest_id=guest_id if user is None else None,
        reply_to=reply_to,
    )


def change(
    *,
    room: Room,
    identity: Identity,
    kind: Kind,
    target: int,
    client_id: str | None = None,
    body: str = "",
    emoji: str = "",
    on: bool = True,
) -> Change:
    """Check an edit, delete or reaction before it is stored; the rules that need the message are the store's."""
    if kind == Kind.EDIT:
        body = protocol.clean_body(body, settings.CHAT_MAX_MESSAGE_LENGTH)
    if kind == Kind.REACTION:
        emoji = protocol.clean_emoji(emoji, settings.CHAT_REACTIONS)
    return Change(
        room=room,
        kind=kind,
        target=target,
        author=identity.name,
        user=identity.user,
        guest_id=identity.guest_id,
        client_id=protocol.clean_client_id(client_id),
        body=body,
        emoji=emoji,
        on=on,
        moderator=access.can_moderate(identity, room),
        edit_seconds=settings.CHAT_EDIT_SECONDS,
    )


def entry_create(d: Draft | Change) -> Posted:
    """Store an entry and broadcast it to the room. For synchronous callers: the admin, management commands."""
    posted = store_one(d)
    if posted.created and posted.entry is not None:
        metrics.count_stored(posted.entry.kind)
        payload = message_payload(posted.entry, d.room.name, posted.quoted)
        async_to_sync(broadcast)(d.room.name, message_event(payload))
    return posted


def message_create(
    *, room: Room, author: str, user: User | None = None, body: str, client_id: str | None = None
) -> Posted:
    """Store a message and broadcast it to the room (the admin's, or the system's)."""
    return entry_create(draft(room=room, author=author, user=user, body=body, client_id=client_id))


def message_delete(*, room: Room, seq: int, identity: Identity) -> Posted:
    """Delete a message as ``identity`` (the admin's moderator delete): a delete entry, broadcast and replayed."""
    return entry_create(change(room=room, identity=identity, kind=Kind.DELETE, target=seq))


async def amessage_create(
    *,
    room: Room,
    author: str,
    user: User | None = None,
    body: str,
    client_id: str | None = None,
    guest_id: str | None = None,
    reply_to: int | None = None,
) -> Posted:
    """The async twin of message_create for consumers: the same checks and store, batched with other posts."""
    return await groupcommit.post(
        draft(room=room, author=author, user=user, body=body, client_id=client_id, guest_id=guest_id, reply_to=reply_to)
    )


async def apost(d: Draft | Change) -> Posted:
    """Store a checked entry from a socket and broadcast it after the commit, batched with other posts; raise
    its ClientError if the message it changes does not allow it."""
    return await groupcommit.post(d)
