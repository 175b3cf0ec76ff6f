"""The room's log: rooms and their entries, each with a gapless per-room seq.

Every change to a room is an entry: a message, or an edit, delete or reaction of one. A message's entry also holds
its current state (body, edited and deleted times, reactions), updated in the transaction of each entry that
changes it, so that reading a message never means folding the log.
"""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .rooms import ROOM_NAME_MAX_LENGTH


class RoomKind(models.TextChoices):
    PUBLIC = "public"  # anyone may open it by name
    PRIVATE = "private"  # its members only
    DIRECT = "direct"  # exactly two people, both members; one room per pair


class Room(models.Model):
    name = models.CharField(max_length=ROOM_NAME_MAX_LENGTH, unique=True, help_text="Lowercase; see chat.rooms.")
    kind = models.CharField(max_length=8, choices=RoomKind.choices, default=RoomKind.PUBLIC, db_default=RoomKind.PUBLIC)
    # At most one message per this many seconds per person (moderators exempt); 0: off. Set by slow_mode entries.
    slow_mode_seconds = models.PositiveIntegerField(default=0, db_default=0)
    created = models.DateTimeField(auto_now_add=True)
    # The seq of the newest message. Incremented under the room's row lock, so it is gapless in commit order.
    last_seq = models.PositiveBigIntegerField(default=0)
    last_activity = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Kind(models.TextChoices):
    MESSAGE = "message"
    EDIT = "edit"
    DELETE = "delete"
    REACTION = "reaction"
    MODERATION = "moderation"


class Message(models.Model):
    """One entry of a room's log. ``kind`` says which; an edit, delete or reaction names its message by
    ``target_seq``. Author fields say who wrote the entry (for a delete, who deleted)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MESSAGE, db_default=Kind.MESSAGE)
    author = models.CharField(max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Who a guest author is (chat.identity.guest_id): display names can repeat, so they never prove ownership.
    guest_id = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    # A message's current body; an edit's new body. Erased ("") when the message is deleted, in both.
    body = models.TextField()
    # NULL, not "", for "none given": the partial unique constraint below must not see all of them as one id.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created = models.DateTimeField(default=timezone.now)
    # Edits, deletes and reactions: the seq of their message; a reaction's emoji, and whether it adds it (or
    # takes it back).
    target_seq = models.PositiveBigIntegerField(null=True, blank=True)
    emoji = models.CharField(max_length=16, blank=True, default="")
    added = models.BooleanField(null=True, blank=True)
    # A message's state: what it replies to, its body before the first edit (for "earlier versions"), when it was
    # last edited and deleted, its reactions ({emoji: [[who, name, seq], ...]} in the order they reacted), and
    # the seq of the last entry folded into it (NULL: none, its own seq).
    reply_to_seq = models.PositiveBigIntegerField(null=True, blank=True)
    first_body = models.TextField(null=True, blank=True)  # noqa: DJ001
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    reactions = models.JSONField(null=True, blank=True)
    state_seq = models.PositiveBigIntegerField(null=True, blank=True)
    # The names a message's current body mentions (chat.mentions), as they appear as authors; NULL: none.
    mentions = models.JSONField(null=True, blank=True)
    # A moderation entry's action (chat.models.Action), the name it concerns ("" for slow mode) and its seconds.
    action = models.CharField(max_length=10, blank=True, default="", db_default="")
    subject = models.CharField(max_length=150, blank=True, default="", db_default="")
    seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["room", "seq"]
        indexes = [
            # A fresh join's backlog starts at the CHAT_BACKLOG_LIMIT-th newest message, whatever lies between.
            models.Index(fields=["room", "seq"], condition=Q(kind="message"), name="chat_message_room_messages"),
            # A delete erases its message's edits; a reaction looks up who reacted.
            models.Index(
                fields=["room", "target_seq"], condition=Q(target_seq__isnull=False), name="chat_message_room_target"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_room_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_message_room_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room.name}#{self.seq} {self.kind} {self.author}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class ModerationEntry(Message):
    """The log's moderation entries, for the admin to list apart from messages."""

    class Meta:
        proxy = True
        verbose_name_plural = "moderation entries"


class Presence(models.Model):
    """One open WebSocket in a room. Kept in the database so that every server process sees the same list."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    # The socket's id in its process (FanoutConsumer.connection_id): sockets have no layer channel of their own.
    connection_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=150)
    connected = models.DateTimeField(auto_now_add=True)
    # Refreshed by the connection's pings; rows older than CHAT_PRESENCE_TTL_SECONDS belong to dead processes.
    seen = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["room", "name"])]

    def __str__(self) -> str:
        return f"{self.name} in {self.room.name}"


class Mention(models.Model):
    """A person a message mentions or mentioned, for counting unread mentions: one row per message and name,
    made the first time an entry mentions them (so that a later edit does not notify them again). ``active``:
    the message's current body mentions them and it is not deleted."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mention_rows")
    seq = models.PositiveBigIntegerField()  # the message's, so that counting after a marker needs no join
    name = models.CharField(max_length=150)
    active = models.BooleanField(default=True)
    first_seq = models.PositiveBigIntegerField()  # the entry that first mentioned them: the message or an edit

    class Meta:
        indexes = [models.Index(fields=["name", "room", "seq"], condition=Q(active=True), name="chat_mention_active")]
        constraints = [models.UniqueConstraint(fields=["message", "name"], name="chat_mention_message_name_unique")]

    def __str__(self) -> str:
        return f"@{self.name} in {self.room_id}#{self.seq}"


class ReadMarker(models.Model):
    """How far one person has read a room: every entry up to ``seq``. ``who`` is chat.store.who's key
    (``user:ID`` or ``guest:ID``), never a display name. Moves only forward, never past the room's last seq."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    who = models.CharField(max_length=64)
    seq = models.PositiveBigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["who", "room"], name="chat_readmarker_who_room_unique")]

    def __str__(self) -> str:
        return f"{self.who} read {self.room_id} to #{self.seq}"


class Role(models.TextChoices):
    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"


class Membership(models.Model):
    """A registered person's place in a room: what makes a private or direct room readable to them, and their
    role (owners and moderators moderate the room). Guests have no lasting identity, so no membership."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="chat_membership_room_user_unique")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.room}"


class Action(models.TextChoices):
    """What a moderation entry does."""

    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"
    SLOW_MODE = "slow_mode"


class Restriction(models.Model):
    """A ban or mute of one person in one room, until ``until`` (NULL: until lifted). In the database, so that it
    holds on every process and across restarts. ``who`` is chat.store.who's key; ``name`` what they were called."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="restrictions")
    action = models.CharField(max_length=10, choices=[(Action.BAN, "ban"), (Action.MUTE, "mute")])
    who = models.CharField(max_length=64)
    name = models.CharField(max_length=150)
    until = models.DateTimeField(null=True, blank=True)
    by = models.CharField(max_length=150)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "who", "action"], name="chat_restriction_room_who_action_unique")
        ]

    def __str__(self) -> str:
        return f"{self.action} of {self.name} in {self.room}"

    def active(self, now: datetime | None = None) -> bool:
        return self.until is None or self.until > (now or timezone.now())


class Invite(models.Model):
    """A link that makes a signed-in person a member of a room. Only the token's hash is stored."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="invites")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invite to {self.room} until {self.expires_at:%Y-%m-%d %H:%M}"


class Report(models.Model):
    """A message reported to the room's moderators and staff. Not broadcast: only they see it."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="reports")
    target_seq = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=500, blank=True)
    by = models.CharField(max_length=150)
    who = models.CharField(max_length=64)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"report of {self.room}#{self.target_seq} by {self.by}"
