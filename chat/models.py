"""The message log: rooms and their messages, each with a gapless per-room seq."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .rooms import ROOM_NAME_MAX_LENGTH


class Room(models.Model):
    name = models.CharField(max_length=ROOM_NAME_MAX_LENGTH, unique=True, help_text="Lowercase; see chat.rooms.")
    created = models.DateTimeField(auto_now_add=True)
    # The seq of the newest message. Incremented under the room's row lock, so it is gapless in commit order.
    last_seq = models.PositiveBigIntegerField(default=0)
    last_activity = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    author = models.CharField(max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.TextField()
    # NULL, not "", for "none given": the partial unique constraint below must not see all of them as one id.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_room_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_message_room_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room.name}#{self.seq} {self.author}"


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
