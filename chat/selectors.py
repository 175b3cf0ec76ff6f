"""Reading a room's log: what a connecting, resuming, paging or catching-up client is sent. Oldest first.

Every kind of entry is read the same way, by seq; a message's frame carries its state as it is now.
"""

from collections.abc import Iterable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from . import access, protocol
from .exceptions import ClientError
from .identity import Identity
from .models import Kind, Mention, Message, ReadMarker, Room, RoomKind
from .store import who

# The most entries one catch-up read sends; a socket far behind reads several, each once the last has drained.
CATCH_UP_PAGE = 100
# How much of a replied-to message a reply's frame quotes.
QUOTE_LENGTH = 140


def reactions_payload(reactions: dict[str, list[list[Any]]] | None) -> dict[str, list[str]]:
    """{emoji: [names in the order they reacted]} from a message's stored reactions."""
    return {emoji: [person[1] for person in people] for emoji, people in (reactions or {}).items()}


def quote(message: Message | None) -> dict[str, Any] | None:
    """What a reply shows of the message it answers: its author and the start of its body, or that it is gone."""
    if message is None:
        return None
    return {"author": message.author, "body": message.body[:QUOTE_LENGTH], "deleted": message.is_deleted}


def message_payload(message: Message, room_name: str, quoted: Message | None = None) -> dict[str, Any]:
    """The frame of a stored entry, of any kind. A message's carries its state; ``quoted`` is the message it
    replies to, if any."""
    if message.kind == Kind.EDIT:
        erased = not message.body  # its message was deleted since: nobody is mentioned any more
        return protocol.edit(
            room=room_name,
            seq=message.seq,
            target=message.target_seq or 0,
            body=message.body,
            by=message.author,
            edited_at=message.created,
            mentions=[] if erased else message.mentions or [],
            new_mentions=[] if erased else getattr(message, "new_mentions", None) or [],
        )
    if message.kind == Kind.DELETE:
        return protocol.delete(
            room=room_name,
            seq=message.seq,
            target=message.target_seq or 0,
            by=message.author,
            deleted_at=message.created,
        )
    if message.kind == Kind.MODERATION:
        return protocol.moderation(
            room=room_name,
            seq=message.seq,
            action=message.action,
            user=message.subject or None,
            by=message.author,
            seconds=message.seconds,
            at=message.created,
        )
    if message.kind == Kind.REACTION:
        return protocol.reaction(
            room=room_name,
            seq=message.seq,
            target=message.target_seq or 0,
            emoji=message.emoji,
            user=message.author,
            on=bool(message.added),
        )
    payload = protocol.message(
        room=room_name,
        seq=message.seq,
        author=message.author,
        body=message.body,
        sent_at=message.created,
        client_id=message.client_id,
        reply_to=message.reply_to_seq,
        edited_at=message.edited_at,
        deleted=message.is_deleted,
        reactions=reactions_payload(message.reactions),
        state_seq=message.state_seq,
        mentions=message.mentions,
    )
    if message.reply_to_seq is not None:
        payload["quote"] = quote(quoted)
    return payload


def payloads(entries: Iterable[Message], room: Room) -> list[dict[str, Any]]:
    """The frames of entries of one room, with the messages their replies quote read in one query."""
    entries = list(entries)
    _add_new_mentions(entries, room)
    quoted_seqs = {e.reply_to_seq for e in entries if e.reply_to_seq is not None}
    quoted: dict[int, Message] = {}
    if quoted_seqs:
        quoted = {m.seq: m for m in Message.objects.filter(room=room, kind=Kind.MESSAGE, seq__in=quoted_seqs)}
    return [
        message_payload(e, room.name, quoted.get(e.reply_to_seq) if e.reply_to_seq is not None else None)
        for e in entries
    ]


def _add_new_mentions(entries: list[Message], room: Room) -> None:
    """Give each edit that mentions someone ``new_mentions``: who it mentioned first (chat.store keeps it on the
    entries it stores; read back here for the rest)."""
    edits = {e.seq: e for e in entries if e.kind == Kind.EDIT and e.mentions and not hasattr(e, "new_mentions")}
    if not edits:
        return
    for edit in edits.values():
        edit.new_mentions = []  # type: ignore[attr-defined]
    for seq, name in Mention.objects.filter(room=room, first_seq__in=edits).values_list("first_seq", "name"):
        edits[seq].new_mentions.append(name)  # type: ignore[attr-defined]


def _room_last_seq(room: Room) -> int:
    return Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)


@database_sync_to_async
def backlog(room: Room, *, after: int | None) -> tuple[list[dict[str, Any]], int]:
    """The entries a connecting client needs and the room's last seq, read in one transaction.

    Without ``after``: every entry from the CHAT_BACKLOG_LIMIT-th newest message on (the limit counts messages,
    so a burst of reactions does not push them out). With ``after``: the entries after it. Either way at most the
    newest CHAT_RESUME_LIMIT entries; the client pages the older rest with history requests.
    """
    with transaction.atomic():
        last_seq = _room_last_seq(room)
        query = Message.objects.filter(room=room)
        if after is not None:
            query = query.filter(seq__gt=after)
        else:
            # The seq of the CHAT_BACKLOG_LIMIT-th newest message, in the same query (0 when there are fewer).
            limit = settings.CHAT_BACKLOG_LIMIT
            messages = Message.objects.filter(room=room, kind=Kind.MESSAGE).order_by("-seq").values("seq")
            query = query.filter(seq__gte=Coalesce(Subquery(messages[limit - 1 : limit]), 0))
        newest = list(query.order_by("-seq")[: settings.CHAT_RESUME_LIMIT])
        return payloads(reversed(newest), room), last_seq


@database_sync_to_async
def catch_up(room: Room, *, after: int) -> tuple[list[dict[str, Any]], int, bool]:
    """The next page of what a socket that fell behind missed after seq ``after``; the room's last seq; whether
    the page reaches it.

    All of it, however far behind: on its own connection a socket gets no gap. (One behind for too long is closed
    instead, and resumes like any reconnect.)
    """
    with transaction.atomic():
        last_seq = _room_last_seq(room)
        page = list(Message.objects.filter(room=room, seq__gt=after).order_by("seq")[:CATCH_UP_PAGE])
        frames = payloads(page, room)
    complete = not page or page[-1].seq >= last_seq
    return frames, last_seq, complete


@database_sync_to_async
def history(room: Room, *, before: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The ``limit`` entries just before seq ``before``, oldest first, and whether older ones exist."""
    newest = list(Message.objects.filter(room=room, seq__lt=before).order_by("-seq")[: limit + 1])
    has_more = len(newest) > limit
    return payloads(reversed(newest[:limit]), room), has_more


@database_sync_to_async
def versions(room: Room, *, target: int) -> list[dict[str, Any]]:
    """The bodies message ``target`` had, oldest first, each with when it was written; ClientError if there is
    no such message or it was deleted (its versions were erased with it)."""
    message = Message.objects.filter(room=room, kind=Kind.MESSAGE, seq=target).first()
    if message is None:
        raise ClientError(protocol.NOT_FOUND, f"No message #{target} in this room.")
    if message.is_deleted:
        raise ClientError(protocol.GONE, "That message was deleted.")
    first = message.body if message.first_body is None else message.first_body
    found = [{"body": first, "at": protocol.iso_utc(message.created)}]
    edits = Message.objects.filter(room=room, kind=Kind.EDIT, target_seq=target).order_by("seq")
    found += [{"body": edit.body, "at": protocol.iso_utc(edit.created)} for edit in edits]
    return found


@database_sync_to_async
def last_seq(room: Room) -> int:
    return _room_last_seq(room)


@database_sync_to_async
def pong(room: Room, identity: Identity) -> tuple[int, "access.Rights | None"]:
    """A ping's answer: the room's last seq, and for a private or direct room what the person may do there now.
    A socket's access is asked again on each ping there, so that one whose kick, ban or leave event the channel
    layer lost is closed within a ping interval (~25 s) even if nothing else reveals it."""
    rights = access.rights(identity, room) if room.kind != RoomKind.PUBLIC else None
    return _room_last_seq(room), rights


def unread_counts(rooms: Iterable[Room], identity: Identity) -> dict[int, tuple[int, int]]:
    """{room pk: (unread, mentions)} for one person: the messages after their read marker that others wrote and
    that are not deleted, and how many of those mention them (by their name as an author). Three queries, whatever
    the number of rooms."""
    rooms = list(rooms)
    if not rooms:
        return {}
    marker_key = who(identity.user, identity.guest_id)
    marks = dict(ReadMarker.objects.filter(who=marker_key, room__in=rooms).values_list("room_id", "seq"))
    after = Q()
    for room in rooms:
        after |= Q(room_id=room.pk, seq__gt=marks.get(room.pk, 0))
    mine = Q(user=identity.user) if identity.user is not None else Q(user__isnull=True, guest_id=identity.guest_id)
    unread = dict(
        Message.objects.filter(after, kind=Kind.MESSAGE, deleted_at__isnull=True)
        .exclude(mine)
        .values("room_id")
        .annotate(count=Count("id"))
        .values_list("room_id", "count")
    )
    mentions = dict(
        Mention.objects.filter(after, name=identity.name, active=True)
        .values("room_id")
        .annotate(count=Count("id"))
        .values_list("room_id", "count")
    )
    return {room.pk: (unread.get(room.pk, 0), mentions.get(room.pk, 0)) for room in rooms}


def mentions_of(*, name: str, rooms: QuerySet[Room], limit: int) -> list[dict[str, Any]]:
    """The messages that mention ``name`` now, newest first, across ``rooms`` (those the person may read,
    chat.access.visible_rooms): for the Mentions page."""
    rows = (
        Mention.objects.filter(name=name, active=True, room__in=rooms)
        .select_related("message", "room")
        .order_by("-message__created", "-seq")[:limit]
    )
    return [message_payload(row.message, row.room.name) for row in rows]
