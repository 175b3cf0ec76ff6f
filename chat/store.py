"""Storing log entries: drafts go into the log with their rooms' next seqs, in one transaction.

A draft is a new message (``Draft``) or a change to one (``Change``: an edit, a delete, a reaction). Each that
writes takes its room's next seq, and a change updates its message's state in the same transaction, so the
state and the log never disagree. A change checked against a state it may not change is answered with its
ClientError, alone: the rest of the batch is stored.

The hot statements are plain SQL because the ORM's query building cost more than the queries themselves
(docs/performance.md, "ingest"). Callers go through chat.services, which validates first and broadcasts after.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import access, mentions, protocol
from .access import who
from .exceptions import ClientError
from .models import Action, Kind, Membership, Mention, Message, Restriction, Room, RoomKind

# A message's state: written back (WRITE_STATE, in this order) for every message a batch changed.
STATE_FIELDS = ["body", "first_body", "edited_at", "deleted_at", "reactions", "state_seq", "mentions"]


@dataclass(frozen=True, slots=True)
class Draft:
    """A message checked and ready to store: body cleaned, client_id valid."""

    room: Room
    author: str
    user: User | None
    body: str
    client_id: str | None
    guest_id: str | None = None
    reply_to: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """An edit, delete or reaction of the message with seq ``target``, checked as far as it can be without it."""

    room: Room
    kind: Kind
    target: int
    author: str
    user: User | None
    guest_id: str | None
    client_id: str | None
    body: str = ""  # an edit's new body
    emoji: str = ""  # a reaction's
    on: bool = True  # a reaction added (True) or taken back
    edit_seconds: int = 0  # how long after sending a message may be edited; 0: no limit

    @property
    def who(self) -> str:
        return who(self.user, self.guest_id)


@dataclass(frozen=True, slots=True)
class Moderation:
    """A moderation action by ``author``: on the person called ``subject`` (a username, or a guest's name as
    they posted in the room), or on the room itself (slow mode, ``subject`` "")."""

    room: Room
    action: Action
    subject: str
    seconds: int | None
    author: str
    user: User | None
    guest_id: str | None
    client_id: str | None

    @property
    def who(self) -> str:
        return who(self.user, self.guest_id)


Entry = Draft | Change | Moderation


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of a draft: the entry stored (or, for a resend, stored before), and whether this call stored
    it. ``entry`` is None when a change wrote nothing (a reaction already so); ``seq`` is what its ack says."""

    entry: Message | None
    created: bool
    seq: int | None = field(default=None)
    quoted: Message | None = field(default=None)  # the message a new reply answers
    revokes: str | None = field(default=None)  # a kick or ban: the who key of the person it shuts out

    @property
    def message(self) -> Message:
        """The stored entry, for callers that only post messages (which always store or find one)."""
        if self.entry is None:
            raise TypeError("a message draft always has an entry")
        return self.entry

    @property
    def ack_seq(self) -> int | None:
        return self.entry.seq if self.entry is not None else self.seq


Outcome = Posted | ClientError


def _draft_who(d: "Entry") -> str:
    # The admin's and the commands' posts without a person (chat_post's "system") are the server's own: "".
    return "" if d.user is None and d.guest_id is None else who(d.user, d.guest_id)


def _entry_who(entry: Message) -> str:
    if entry.user_id is not None:
        return f"user:{entry.user_id}"
    # The system's and the admin's posts belong to nobody: "" is never an identity key.
    return f"guest:{entry.guest_id}" if entry.guest_id else ""


def _sql(template: str, **placeholders: str) -> str:
    # Only table names and runs of %s are interpolated: never input, which goes in as parameters.
    quote = connection.ops.quote_name
    return template.format(
        room=quote(Room._meta.db_table),
        message=quote(Message._meta.db_table),
        restriction=quote(Restriction._meta.db_table),
        **placeholders,
    )


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


# Locks the rooms' rows (PostgreSQL; SQLite's IMMEDIATE transactions lock the whole database) until commit, so
# seqs are handed out and committed in one order, gapless, and the messages a change checks cannot change under
# it. In pk order, so that two processes' batches cannot deadlock.
# With each room: its kind and slow mode, and whether any ban or mute was ever left in it, so that the batch looks
# up people's standings only where they can matter (chat.access: in a public room with no restrictions and no slow
# mode, only deletes and moderation depend on anyone's role).
LOCK_ROOMS = (
    "SELECT id, last_seq, kind, slow_mode_seconds,"
    " EXISTS (SELECT 1 FROM {restriction} WHERE {restriction}.room_id = {room}.id)"
    " FROM {room} WHERE id IN ({rooms}) ORDER BY id{for_update}"
)
TAKE_SEQS = "UPDATE {room} SET last_seq = CASE id {cases} END, last_activity = %s WHERE id IN ({rooms})"
# Pairs spelled out as ORs: both databases then search the (room, client_id) index for each, where row-value IN
# lists or IN x IN scanned the table (EXPLAIN on SQLite 3.40 and PostgreSQL 15).
FIND_CLIENT_IDS = "SELECT id, room_id, client_id FROM {message} WHERE {pairs}"
LOAD_MESSAGES = "SELECT * FROM {message} WHERE kind = %s AND ({pairs})"
WRITE_STATE = (
    "UPDATE {message} SET body = %s, first_body = %s, edited_at = %s, deleted_at = %s, reactions = %s,"
    " state_seq = %s, mentions = %s WHERE id = %s"
)
ERASE_EDITS = (
    "UPDATE {message} SET body = '', mentions = NULL WHERE room_id = %s AND kind = %s AND target_seq IN ({seqs})"
)
INSERT = (
    "INSERT INTO {message} (room_id, seq, kind, author, user_id, guest_id, body, client_id, created, target_seq,"
    " emoji, added, reply_to_seq, mentions, action, subject, seconds) VALUES {rows} RETURNING id, room_id, seq"
)


def _already_stored(cursor: Any, drafts: Sequence[Entry]) -> dict[tuple[int, str], Message]:
    """The logged entries that drafts repeat by (room, client_id): resends."""
    wanted = {(d.room.pk, d.client_id) for d in drafts if d.client_id is not None}
    if not wanted:
        return {}
    pairs = sorted(wanted)
    condition = " OR ".join(["(room_id = %s AND client_id = %s)"] * len(pairs))
    cursor.execute(_sql(FIND_CLIENT_IDS, pairs=condition), [value for pair in pairs for value in pair])
    found = {(room, client): pk for pk, room, client in cursor.fetchall()}
    if not found:
        return {}
    originals = Message.objects.in_bulk(found.values())  # resends are rare: the ORM is fine here
    return {key: originals[pk] for key, pk in found.items()}


@dataclass(slots=True)
class _RoomNow:
    """A locked room's kind and slow mode as the database has them (the Room a socket holds may be older)."""

    kind: str
    slow_mode_seconds: int
    restricted: bool = False  # any ban or mute row of the room, in force or not
    slow_mode_changed: bool = False


def _lock_rooms(cursor: Any, rooms: list[int]) -> tuple[dict[int, int], dict[int, _RoomNow]]:
    """Lock the rooms (see LOCK_ROOMS); their last seqs, kinds and slow modes."""
    for_update = " FOR UPDATE" if connection.features.has_select_for_update else ""
    cursor.execute(_sql(LOCK_ROOMS, rooms=_marks(len(rooms)), for_update=for_update), rooms)
    rows = cursor.fetchall()
    return {row[0]: row[1] for row in rows}, {pk: _RoomNow(kind, slow, bool(any_)) for pk, _, kind, slow, any_ in rows}


def _standings(
    drafts: Sequence[Entry], subjects: dict[tuple[int, str], "_Subject"], rooms: dict[int, _RoomNow]
) -> dict[tuple[int, str], access.Standing]:
    """What the database holds of each drafting person whose standing can matter, and of each person moderated,
    in their room (access.standings), read under the lock. In a public room without bans, mutes or slow mode
    everyone reads and writes: only a delete (of someone else's message) or a moderation action asks a role."""
    pairs: dict[tuple[int, str], User | None] = {}
    for d in drafts:
        room = rooms[d.room.pk]
        plain = room.kind == RoomKind.PUBLIC and not room.restricted and not room.slow_mode_seconds
        if plain and not isinstance(d, Moderation) and not (isinstance(d, Change) and d.kind == Kind.DELETE):
            continue
        pairs[d.room.pk, _draft_who(d)] = d.user
    pairs |= {(room_pk, subject.who): subject.user for (room_pk, _), subject in subjects.items()}
    restricted = {pk for pk, room in rooms.items() if room.restricted}
    return access.standings(
        ((room_pk, user, key) for (room_pk, key), user in pairs.items() if key), restricted=restricted
    )


@dataclass(frozen=True, slots=True)
class _Subject:
    """The person a moderation entry names: a user (by username), or a guest who posted in the room by that name."""

    name: str
    who: str
    user: User | None


def _resolve_subjects(drafts: Sequence[Entry]) -> dict[tuple[int, str], _Subject]:
    wanted = {(d.room.pk, d.subject) for d in drafts if isinstance(d, Moderation) and d.subject}
    found: dict[tuple[int, str], _Subject] = {}
    for room_pk, name in wanted:
        user = User.objects.filter(username=name).first()
        if user is not None:
            found[room_pk, name] = _Subject(name, who(user, None), user)
            continue
        guest = (
            Message.objects.filter(room_id=room_pk, author=name, user__isnull=True, guest_id__isnull=False)
            .order_by("-seq")
            .values_list("guest_id", flat=True)
            .first()
        )
        if guest is not None:
            found[room_pk, name] = _Subject(name, who(None, guest), None)
    return found


def _load_messages(drafts: Sequence[Entry]) -> dict[tuple[int, int], Message]:
    """The messages that changes target and replies quote, by (room, seq): read after the rooms are locked."""
    wanted: dict[int, set[int]] = {}
    for d in drafts:
        if isinstance(d, Moderation):
            continue
        seq = d.target if isinstance(d, Change) else d.reply_to
        if seq is not None:
            wanted.setdefault(d.room.pk, set()).add(seq)
    if not wanted:
        return {}
    pairs = " OR ".join(f"(room_id = %s AND seq IN ({_marks(len(seqs))}))" for seqs in wanted.values())
    params: list[Any] = [Kind.MESSAGE]
    for room_pk, seqs in wanted.items():
        params += [room_pk, *sorted(seqs)]
    # raw(), not filter(): building that Q took most of a change's time; raw() still converts the columns.
    found = Message.objects.raw(_sql(LOAD_MESSAGES, pairs=pairs), params)
    return {(m.room_id, m.seq): m for m in found}


def _resolve_mentions(drafts: Sequence[Entry]) -> dict[int, dict[str, str]]:
    """Who the bodies of new messages and edits may mention, per room (chat.mentions), in one lookup a room."""
    wanted: dict[int, set[str]] = {}
    for d in drafts:
        if isinstance(d, Draft) or (isinstance(d, Change) and d.kind == Kind.EDIT):
            found = mentions.candidates(d.body) if "@" in d.body else []
            if found:
                wanted.setdefault(d.room.pk, set()).update(found)
    return {room_pk: mentions.resolve(room_pk, names) for room_pk, names in wanted.items()}


_MENTIONS_JSON = Message._meta.get_field("mentions")


_ENTRY_FIELDS = [field.attname for field in Message._meta.concrete_fields]
_NEW_ENTRY: dict[str, Any] = {name: None for name in _ENTRY_FIELDS} | {
    "kind": Kind.MESSAGE,
    "body": "",
    "emoji": "",
    "action": "",
    "subject": "",
}
_ROOM = Message._meta.get_field("room")
_USER = Message._meta.get_field("user")


class _Batch:
    """One transaction's drafts applied in arrival order to the rooms' seqs and their messages' states."""

    def __init__(
        self,
        last_seqs: dict[int, int],
        messages: dict[tuple[int, int], Message],
        now: datetime,
        resolved: dict[int, dict[str, str]] | None = None,
        rooms: dict[int, _RoomNow] | None = None,
        standings: dict[tuple[int, str], access.Standing] | None = None,
        subjects: dict[tuple[int, str], _Subject] | None = None,
    ) -> None:
        self.last_seqs = last_seqs
        self.messages = messages
        self.now = now
        self.resolved = resolved or {}
        self.rooms = rooms or {}
        self.standings = standings or {}
        self.subjects = subjects or {}
        # What moderation entries of this batch change besides the log: (room pk, who, action) -> the restriction
        # now (None: lifted), and the memberships kicks end.
        self.restrictions: dict[tuple[int, str, str], Restriction | None] = {}
        self.removed: set[tuple[int, int]] = set()  # (room pk, user pk)
        # id(message) -> {name: its Mention row}, for the messages this batch mentions people in or changes
        self.mention_rows: dict[int, dict[str, Mention]] = {}
        self.mentioned: dict[int, Message] = {}  # id(message) -> message, for mention_rows
        self.new: list[Message] = []  # entries to insert, in seq order per room
        self.changed: dict[int, Message] = {}  # id(message) -> a message whose state this batch changed
        self.erased: dict[int, set[int]] = {}  # room pk -> seqs of messages deleted here: their edits lose bodies
        self.edits: dict[tuple[int, int], list[Message]] = {}  # (room, target) -> edit entries new in this batch

    def take_seq(self, room_pk: int) -> int:
        self.last_seqs[room_pk] += 1
        return self.last_seqs[room_pk]

    def rights(self, d: Entry) -> access.Rights:
        """The rule (chat.access.decide) on what the database holds now, as changed by this batch so far."""
        key = _draft_who(d)
        if not key:
            return access.Rights(read=True, write=True, moderate=True)
        room = self.rooms.get(d.room.pk)
        kind = room.kind if room is not None else d.room.kind
        return access.decide(user=d.user, kind=kind, standing=self.standings.get((d.room.pk, key), access.NOBODY))

    def _check_write(self, d: Draft | Change, rights: access.Rights) -> None:
        if not rights.read:
            raise ClientError(protocol.FORBIDDEN, "You may not write in this room.")
        if rights.muted:
            until = rights.muted_until
            detail = f"You are muted here until {protocol.iso_utc(until)}." if until else "You are muted here."
            raise ClientError(protocol.MUTED, detail, until=protocol.iso_utc(until) if until is not None else None)
        room = self.rooms.get(d.room.pk)
        if isinstance(d, Draft) and room is not None and room.slow_mode_seconds and not rights.moderate:
            last = self._last_message_at(d)
            if last is not None:
                wait = room.slow_mode_seconds - (self.now - last).total_seconds()
                if wait > 0:
                    retry_after = max(1, int(wait + 0.999))
                    raise ClientError(
                        protocol.SLOW_MODE,
                        f"Slow mode: one message every {room.slow_mode_seconds} s; wait {retry_after} s.",
                        retry_after=retry_after,
                    )

    def _last_message_at(self, d: Draft) -> datetime | None:
        key = _draft_who(d)
        for entry in reversed(self.new):
            if entry.kind == Kind.MESSAGE and entry.room_id == d.room.pk and _entry_who(entry) == key:
                return entry.created
        mine = Q(user=d.user) if d.user is not None else Q(user__isnull=True, guest_id=d.guest_id)
        return (
            Message.objects.filter(mine, room_id=d.room.pk, kind=Kind.MESSAGE)
            .order_by("-seq")
            .values_list("created", flat=True)
            .first()
        )

    def apply(self, d: Entry) -> Posted:
        rights = self.rights(d)
        if isinstance(d, Moderation):
            return self._moderate(d, rights)
        self._check_write(d, rights)
        if isinstance(d, Draft):
            return self._message(d)
        target = self.messages.get((d.room.pk, d.target))
        if target is None:
            raise ClientError(protocol.NOT_FOUND, f"No message #{d.target} in this room.")
        if d.kind == Kind.EDIT:
            return self._edit(d, target)
        if d.kind == Kind.DELETE:
            return self._delete(d, target, moderator=rights.moderate)
        return self._react(d, target)

    def _entry(self, d: Entry, **fields: Any) -> Message:
        values = {
            **_NEW_ENTRY,
            "room_id": d.room.pk,
            "seq": self.take_seq(d.room.pk),
            "author": d.author,
            "user_id": d.user.pk if d.user is not None else None,
            "guest_id": d.guest_id if d.user is None else None,
            "client_id": d.client_id,
            "created": self.now,
            **fields,
        }
        # Built as the ORM builds a row it read: Model.__init__ with keywords and defaults cost more per message
        # than storing it (cProfile of a 100-message batch).
        entry = Message.from_db(connection.alias, _ENTRY_FIELDS, [values[name] for name in _ENTRY_FIELDS])
        _ROOM.set_cached_value(entry, d.room)
        if d.user is not None:
            _USER.set_cached_value(entry, d.user)
        self.new.append(entry)
        return entry

    def _message(self, d: Draft) -> Posted:
        quoted = None
        if d.reply_to is not None:
            quoted = self.messages.get((d.room.pk, d.reply_to))
            if quoted is None:
                raise ClientError(protocol.NOT_FOUND, f"No message #{d.reply_to} in this room to reply to.")
            if quoted.is_deleted:
                raise ClientError(protocol.GONE, "That message was deleted.")
        entry = self._entry(d, body=d.body, reply_to_seq=d.reply_to, mentions=self._mentions(d) or None)
        self.messages[d.room.pk, entry.seq] = entry
        if entry.mentions:
            self._mention(entry, entry.mentions, since=entry.seq)
        return Posted(entry=entry, created=True, quoted=quoted if d.reply_to is not None else None)

    def _fold(self, target: Message, entry: Message) -> None:
        target.state_seq = entry.seq
        self.changed[id(target)] = target

    def _edit(self, d: Change, target: Message) -> Posted:
        if target.is_deleted:
            raise ClientError(protocol.GONE, "That message was deleted.")
        if _entry_who(target) != d.who:
            raise ClientError(protocol.FORBIDDEN, "Only its author can edit a message.")
        if d.edit_seconds and self.now - target.created > timedelta(seconds=d.edit_seconds):
            raise ClientError(protocol.TOO_LATE, f"Messages can be edited for {d.edit_seconds} seconds.")
        named = self._mentions(d)
        entry = self._entry(d, kind=Kind.EDIT, body=d.body, target_seq=target.seq, mentions=named or None)
        self.edits.setdefault((d.room.pk, target.seq), []).append(entry)
        if target.first_body is None:
            target.first_body = target.body
        target.body = d.body
        target.edited_at = self.now
        new_mentions: list[str] = []
        if named or target.mentions:  # else nobody was or is mentioned: no row to read or change
            rows = self._mention(target, named, since=entry.seq)
            new_mentions = [name for name, row in rows.items() if row.first_seq == entry.seq]
        entry.new_mentions = new_mentions  # type: ignore[attr-defined]
        target.mentions = named or None
        self._fold(target, entry)
        return Posted(entry=entry, created=True)

    def _delete(self, d: Change, target: Message, *, moderator: bool) -> Posted:
        if _entry_who(target) != d.who and not moderator:
            raise ClientError(protocol.FORBIDDEN, "Only its author or a moderator can delete a message.")
        if target.is_deleted:
            return Posted(entry=None, created=False, seq=self._delete_seq(target))
        entry = self._entry(d, kind=Kind.DELETE, target_seq=target.seq)
        # Erased, not hidden: the body, the first version and every edit's body leave the database.
        target.body = ""
        target.first_body = None
        target.reactions = None
        if target.mentions:
            self._mention(target, [], since=entry.seq)  # a deleted message mentions nobody any more
        target.mentions = None
        target.deleted_at = self.now
        for edit in self.edits.get((d.room.pk, target.seq), []):
            edit.body = ""
            edit.mentions = None
        self.erased.setdefault(d.room.pk, set()).add(target.seq)
        self._fold(target, entry)
        return Posted(entry=entry, created=True)

    def _moderate(self, d: Moderation, rights: access.Rights) -> Posted:
        if not rights.moderate:
            raise ClientError(protocol.FORBIDDEN, "Only the room's owners, moderators and staff moderate it.")
        room = self.rooms[d.room.pk]
        if d.action == Action.SLOW_MODE:
            seconds = d.seconds or 0
            if seconds == room.slow_mode_seconds:
                return Posted(entry=None, created=False)
            room.slow_mode_seconds = seconds
            room.slow_mode_changed = True
            return Posted(entry=self._entry(d, kind=Kind.MODERATION, action=d.action, seconds=seconds), created=True)
        subject = self.subjects.get((d.room.pk, d.subject))
        if subject is None:
            raise ClientError(protocol.NOT_FOUND, f"Nobody called {d.subject} has been in this room.")
        if subject.who == _draft_who(d):
            raise ClientError(protocol.FORBIDDEN, "You cannot moderate yourself.")
        key = (d.room.pk, subject.who)
        standing = self.standings.get(key, access.NOBODY)
        mine = self.standings.get((d.room.pk, _draft_who(d)), access.NOBODY)
        if not access.outranks(d.user, mine, subject.user, standing):
            raise ClientError(protocol.FORBIDDEN, f"{subject.name} is not yours to moderate.")
        revokes = None
        until = self.now + timedelta(seconds=d.seconds) if d.seconds else None
        if d.action == Action.KICK:
            revokes = subject.who
            if room.kind != RoomKind.PUBLIC:
                if standing.role is None or subject.user is None:
                    raise ClientError(protocol.NOT_FOUND, f"{subject.name} is not a member of this room.")
                self.removed.add((d.room.pk, subject.user.pk))
                standing = access.Standing(None, standing.banned, standing.banned_until, standing.muted)
        elif d.action == Action.MUTE and access.decide(user=subject.user, kind=room.kind, standing=standing).moderate:
            raise ClientError(protocol.FORBIDDEN, f"{subject.name} moderates this room: a mute would not hold them.")
        elif d.action in (Action.BAN, Action.MUTE):
            self.restrictions[d.room.pk, subject.who, d.action] = Restriction(
                room_id=d.room.pk, action=d.action, who=subject.who, name=subject.name, until=until, by=d.author
            )
            if d.action == Action.BAN:
                revokes = subject.who
                standing = access.Standing(standing.role, True, until, standing.muted, standing.muted_until)
            else:
                standing = access.Standing(standing.role, standing.banned, standing.banned_until, True, until)
        else:  # unban, unmute
            lifted = Action.BAN if d.action == Action.UNBAN else Action.MUTE
            if not (standing.banned if lifted == Action.BAN else standing.muted):
                return Posted(entry=None, created=False)  # already so
            self.restrictions[d.room.pk, subject.who, lifted] = None
            if lifted == Action.BAN:
                standing = access.Standing(standing.role, False, None, standing.muted, standing.muted_until)
            else:
                standing = access.Standing(standing.role, standing.banned, standing.banned_until)
        self.standings[key] = standing
        entry = self._entry(
            d, kind=Kind.MODERATION, action=d.action, subject=subject.name, seconds=d.seconds if until else None
        )
        return Posted(entry=entry, created=True, revokes=revokes)

    def _mentions(self, d: Draft | Change) -> list[str]:
        return mentions.mentioned(d.body, self.resolved.get(d.room.pk, {})) if "@" in d.body else []

    def _mention(self, message: Message, names: list[str], *, since: int) -> dict[str, Mention]:
        """Set who ``message`` mentions now: a row for each person mentioned the first time (by the entry
        ``since``), the others' rows on or off. Its author is never counted as mentioned."""
        rows = self.mention_rows.get(id(message))
        if rows is None:
            known = Mention.objects.filter(message_id=message.pk) if message.pk is not None else []
            rows = self.mention_rows[id(message)] = {row.name: row for row in known}
            self.mentioned[id(message)] = message
        now = set(names) - {message.author}
        for name in now - rows.keys():
            rows[name] = Mention(room_id=message.room_id, seq=message.seq, name=name, active=True, first_seq=since)
        for name, row in rows.items():
            row.active = name in now
        return rows

    def _delete_seq(self, target: Message) -> int | None:
        for entry in self.new:
            if entry.kind == Kind.DELETE and entry.room_id == target.room_id and entry.target_seq == target.seq:
                return entry.seq
        return (
            Message.objects.filter(room_id=target.room_id, kind=Kind.DELETE, target_seq=target.seq)
            .values_list("seq", flat=True)
            .first()
        )

    def _react(self, d: Change, target: Message) -> Posted:
        if target.is_deleted:
            raise ClientError(protocol.GONE, "That message was deleted.")
        reactions: dict[str, list[list[Any]]] = target.reactions or {}
        people = reactions.get(d.emoji, [])
        mine = next((person for person in people if person[0] == d.who), None)
        if d.on and mine is not None:
            return Posted(entry=None, created=False, seq=mine[2])  # already so, since that entry
        if not d.on and mine is None:
            return Posted(entry=None, created=False, seq=self._taken_back_seq(d, target))
        entry = self._entry(d, kind=Kind.REACTION, target_seq=target.seq, emoji=d.emoji, added=d.on)
        if d.on:
            people = [*people, [d.who, d.author, entry.seq]]
        else:
            people = [person for person in people if person[0] != d.who]
        reactions = {emoji: names for emoji, names in {**reactions, d.emoji: people}.items() if names}
        target.reactions = reactions or None
        self._fold(target, entry)
        return Posted(entry=entry, created=True)

    def _taken_back_seq(self, d: Change, target: Message) -> int | None:
        """The seq of the entry that last took this reaction back, or None if none ever did."""
        for entry in reversed(self.new):
            if (
                entry.kind == Kind.REACTION
                and entry.room_id == target.room_id
                and entry.target_seq == target.seq
                and entry.emoji == d.emoji
                and _entry_who(entry) == d.who
            ):
                return entry.seq if not entry.added else None
        mine = Q(user=d.user) if d.user is not None else Q(user__isnull=True, guest_id=d.guest_id)
        last = (
            Message.objects.filter(mine, room_id=target.room_id, kind=Kind.REACTION, target_seq=target.seq)
            .filter(emoji=d.emoji)
            .order_by("-seq")
            .values_list("seq", "added")
            .first()
        )
        return last[0] if last is not None and not last[1] else None

    def write(self, cursor: Any, first_seqs: dict[int, int]) -> None:
        """Insert the new entries, write back the changed states, erase deleted messages' edits, take the seqs."""
        if self.new:
            created = connection.ops.adapt_datetimefield_value(self.now)
            rows = [
                (
                    e.room_id,
                    e.seq,
                    e.kind,
                    e.author,
                    e.user_id,
                    e.guest_id,
                    e.body,
                    e.client_id,
                    created,
                    e.target_seq,
                    e.emoji,
                    e.added,
                    e.reply_to_seq,
                    _MENTIONS_JSON.get_db_prep_save(e.mentions, connection),
                    e.action,
                    e.subject,
                    e.seconds,
                )
                for e in self.new
            ]
            width = len(rows[0])
            cursor.execute(
                _sql(INSERT, rows=", ".join([f"({_marks(width)})"] * len(rows))),
                [value for row in rows for value in row],
            )
            by_seq = {(e.room_id, e.seq): e for e in self.new}
            for pk, room_pk, seq in cursor.fetchall():  # RETURNING's row order is not promised, so match by key
                by_seq[room_pk, seq].pk = pk
        if self.changed:
            by_name = {field.name: field for field in Message._meta.concrete_fields}
            fields = [by_name[name] for name in STATE_FIELDS]
            cursor.executemany(
                _sql(WRITE_STATE),
                [
                    [field.get_db_prep_save(getattr(m, field.attname), connection) for field in fields] + [m.pk]
                    for m in self.changed.values()
                ],
            )
        self._write_mentions()
        self._write_moderation()
        for room_pk, seqs in self.erased.items():
            cursor.execute(_sql(ERASE_EDITS, seqs=_marks(len(seqs))), [room_pk, Kind.EDIT, *sorted(seqs)])
        advanced = {room: seq for room, seq in self.last_seqs.items() if seq != first_seqs[room]}
        if advanced:
            rooms = sorted(advanced)
            cases = " ".join(["WHEN %s THEN %s"] * len(rooms))
            params = [value for room in rooms for value in (room, advanced[room])]
            created = connection.ops.adapt_datetimefield_value(self.now)
            cursor.execute(_sql(TAKE_SEQS, cases=cases, rooms=_marks(len(rooms))), [*params, created, *rooms])

    def _write_moderation(self) -> None:
        # Rare: the ORM.
        for (room_pk, key, action), restriction in self.restrictions.items():
            Restriction.objects.filter(room_id=room_pk, who=key, action=action).delete()
            if restriction is not None:
                restriction.created = self.now
                restriction.save()
        for room_pk, user_pk in self.removed:
            Membership.objects.filter(room_id=room_pk, user_id=user_pk).delete()
        for room_pk, room in self.rooms.items():
            if room.slow_mode_changed:
                Room.objects.filter(pk=room_pk).update(slow_mode_seconds=room.slow_mode_seconds)

    def _write_mentions(self) -> None:
        # Rare next to messages (only bodies with a resolved @name, and changes of such messages): the ORM.
        new: list[Mention] = []
        for key, rows in self.mention_rows.items():
            message = self.mentioned[key]
            for row in rows.values():
                row.message_id = message.pk
                if row.pk is None:
                    new.append(row)
            if any(row.pk is not None for row in rows.values()):
                on = [row.pk for row in rows.values() if row.pk is not None and row.active]
                off = [row.pk for row in rows.values() if row.pk is not None and not row.active]
                if on:
                    Mention.objects.filter(pk__in=on).update(active=True)
                if off:
                    Mention.objects.filter(pk__in=off).update(active=False)
        if new:
            Mention.objects.bulk_create(new)


def _store(drafts: Sequence[Entry]) -> list[Outcome]:
    """Store drafts inside the caller's transaction, in arrival order."""
    with connection.cursor() as cursor:
        last_seqs, rooms = _lock_rooms(cursor, sorted({d.room.pk for d in drafts}))
        stored = _already_stored(cursor, drafts)
        subjects = _resolve_subjects(drafts)
        batch = _Batch(
            dict(last_seqs),
            _load_messages(drafts),
            timezone.now(),
            _resolve_mentions(drafts),
            rooms=rooms,
            standings=_standings(drafts, subjects, rooms),
            subjects=subjects,
        )
        outcomes: list[Outcome] = []
        first: dict[tuple[int, str], Outcome] = {}  # (room, client_id) -> the outcome of its first draft here
        for d in drafts:
            key = (d.room.pk, d.client_id) if d.client_id is not None else None
            if key is not None and key in stored:
                outcomes.append(Posted(entry=stored[key], created=False))
                continue
            if key is not None and key in first:
                earlier = first[key]
                outcomes.append(
                    earlier if isinstance(earlier, ClientError) else Posted(earlier.entry, False, earlier.seq)
                )
                continue
            try:
                outcome: Outcome = batch.apply(d)
            except ClientError as exc:
                outcome = exc
            outcomes.append(outcome)
            if key is not None:
                first[key] = outcome
        batch.write(cursor, last_seqs)
    return outcomes


def store_all(drafts: Sequence[Entry]) -> list[Outcome]:
    """Store drafts in one transaction; a resent client_id answers the entry already stored. A draft its rules
    refuse is answered with its ClientError, and nothing of it is stored."""
    try:
        with transaction.atomic():
            return _store(drafts)
    except IntegrityError:
        # Another writer stored one of these client_ids after the lookup. The transaction rolled back, seqs
        # included; one by one, the lookup finds it.
        if len(drafts) > 1:
            return [outcome for draft in drafts for outcome in store_all([draft])]
        (draft,) = drafts
        if draft.client_id is None:
            raise
        existing = Message.objects.filter(room_id=draft.room.pk, client_id=draft.client_id).first()
        if existing is None:
            raise
        return [Posted(entry=existing, created=False)]


def store_one(draft: Entry) -> Posted:
    """Store one draft on its own; raise its ClientError if its rules refuse it."""
    (outcome,) = store_all([draft])
    if isinstance(outcome, ClientError):
        raise outcome
    return outcome
