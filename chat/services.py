"""The one write path: validate an entry, store it with the room's next seq, then broadcast it.

Messages, edits, deletes and reactions all go this way. The consumer posts through the async functions (which
share a transaction with other posts: chat.groupcommit); the admin and the ``chat_post`` command through the
sync ones. The broadcast happens only after the commit, so every seq a client can see is already in the log,
and a client that missed a broadcast finds the entry by seq.
"""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User

from . import access, groupcommit, metrics, protocol, rooms
from .broadcast import broadcast
from .events import message_event, revoke_event
from .exceptions import ClientError, Refused
from .identity import Identity
from .models import Action, Kind, Message, Report, Room
from .rooms import ROOM_NAME_RULE, normalize_room_name
from .selectors import message_payload
from .store import Change, Draft, Entry, Moderation, Posted, store_one

__all__ = [
    "Posted",
    "amessage_create",
    "apost",
    "change",
    "draft",
    "entry_create",
    "message_create",
    "message_delete",
    "moderation",
    "report",
    "revoke",
    "room_for",
    "room_get_or_create",
]


def room_get_or_create(name: str) -> Room:
    """The room of that name; a public one is made on first use (opening a room by URL). Direct rooms' names are
    reserved: they are made only by chat.membership, never by opening one."""
    canonical = normalize_room_name(name)
    if canonical is None:
        raise ClientError(protocol.BAD_ROOM, f"Room names are {ROOM_NAME_RULE}.")
    if rooms.is_reserved(canonical):
        room = Room.objects.filter(name=canonical).first()
        if room is None:
            raise ClientError(protocol.NOT_FOUND, "No such room.")
        return room
    room, _ = Room.objects.get_or_create(name=canonical)
    return room


def room_for(name: str, identity: Identity) -> tuple[Room, access.Rights]:
    """The room a socket or page opens, and what ``identity`` may do there (made first if it is a new public
    room); Refused with 4403 for a room they may not read, and for a direct room's name that is no room."""
    try:
        room = room_get_or_create(name)
    except ClientError as exc:
        # A direct room's name that is no room: refused as one that exists would be, or the two codes would tell
        # anyone who has a direct room with whom.
        raise Refused(protocol.CLOSE_FORBIDDEN, exc.detail) from None
    rights = access.rights(identity, room)
    if not rights.read:
        raise Refused(protocol.CLOSE_FORBIDDEN, f"{identity.name} may not read {room.name}")
    return room, rights


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
        edit_seconds=settings.CHAT_EDIT_SECONDS,
    )


def moderation(
    *,
    room: Room,
    identity: Identity,
    action: str,
    subject: str = "",
    seconds: int | None = None,
    client_id: str | None = None,
) -> Moderation:
    """A moderation action ready to store; whether ``identity`` may take it is the store's to decide, under the
    room's lock, against what the database holds then (chat.access)."""
    return Moderation(
        room=room,
        action=Action(action),
        subject=protocol.clean_name(subject) if subject else "",
        seconds=seconds,
        author=identity.name,
        user=identity.user,
        guest_id=identity.guest_id,
        client_id=protocol.clean_client_id(client_id),
    )


def revoke(room: Room, person: str) -> None:
    """Close the person's sockets to the room on every process (they left it): for synchronous callers."""
    async_to_sync(broadcast)(room.name, revoke_event(person))


def report(*, room: Room, identity: Identity, target: int, reason: str) -> Report:
    """Report a message to the room's moderators and staff: stored, never broadcast."""
    if not access.rights(identity, room).read:
        raise ClientError(protocol.FORBIDDEN, "You may not read this room.")
    if not Message.objects.filter(room=room, seq=target, kind=Kind.MESSAGE).exists():
        raise ClientError(protocol.NOT_FOUND, f"No message #{target} in this room.")
    return Report.objects.create(
        room=room, target_seq=target, reason=reason, by=identity.name, who=access.who(identity.user, identity.guest_id)
    )


def entry_create(d: Entry) -> Posted:
    """Store an entry and broadcast it to the room. For synchronous callers: the admin, management commands."""
    posted = store_one(d)
    if posted.created and posted.entry is not None:
        metrics.count_stored(posted.entry.kind)
        payload = message_payload(posted.entry, d.room.name, posted.quoted)
        async_to_sync(broadcast)(d.room.name, message_event(payload, revokes=posted.revokes))
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


async def apost(d: Entry) -> Posted:
    """Store a checked entry from a socket and broadcast it after the commit, batched with other posts; raise
    its ClientError if the message it changes does not allow it."""
    return await groupcommit.post(d)
