"""Admin for rooms and messages. New messages and deletes go through the service write path; the log is never
edited in place: a delete here is a moderator's delete entry, broadcast and replayed like one from the room."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .exceptions import ClientError
from .identity import Identity
from .models import Kind, Message, Room
from .protocol import clean_body
from .services import message_create, message_delete


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "last_seq", "last_activity", "created"]
    search_fields = ["name"]
    readonly_fields = ["last_seq", "last_activity", "created"]


class MessageAddForm(forms.ModelForm):
    class Meta:
        model = Message
        fields = ["room", "body"]

    def clean_body(self) -> str:
        try:
            return clean_body(self.cleaned_data["body"], settings.CHAT_MAX_MESSAGE_LENGTH)
        except ClientError as exc:
            raise forms.ValidationError(exc.detail) from None


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "seq", "author", "body", "created", "edited_at", "deleted_at"]
    list_filter = ["room"]
    search_fields = ["body", "author"]
    list_select_related = ["room"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        # Edits, deletes and reactions are entries of the log too, but the admin moderates messages.
        return super().get_queryset(request).filter(kind=Kind.MESSAGE)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = MessageAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The log is append-only: editing a stored message would show clients something they can never re-sync.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A delete is a moderator's delete entry (see delete_model); a tombstone cannot be deleted again.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.is_deleted)

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        user = request.user if request.user.is_authenticated else None
        name = user.get_username() if user else "admin"
        message_delete(room=obj.room, seq=obj.seq, identity=Identity(name=name, user=user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        for message in queryset.select_related("room").filter(deleted_at__isnull=True):
            self.delete_model(request, message)

    def save_model(self, request: HttpRequest, obj: Message, form: Any, change: bool) -> None:
        user = request.user if request.user.is_authenticated else None
        posted = message_create(
            room=obj.room, author=user.get_username() if user else "admin", user=user, body=obj.body
        )
        # The admin goes on to log and redirect using this object, so it becomes the stored row.
        obj.__dict__.update({f.attname: getattr(posted.message, f.attname) for f in Message._meta.concrete_fields})
        obj._state.adding = False
