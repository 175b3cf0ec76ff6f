"""Admin for rooms and messages. New messages go through the service write path; the log is never edited."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from .exceptions import ClientError
from .models import Message, Room
from .protocol import clean_body
from .services import message_create


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
    list_display = ["room", "seq", "author", "body", "created"]
    list_filter = ["room"]
    search_fields = ["body", "author"]
    list_select_related = ["room"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = MessageAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The log is append-only: editing a stored message would show clients something they can never re-sync.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Message, form: Any, change: bool) -> None:
        user = request.user if request.user.is_authenticated else None
        posted = message_create(
            room=obj.room, author=user.get_username() if user else "admin", user=user, body=obj.body
        )
        # The admin goes on to log and redirect using this object, so it becomes the stored row.
        obj.__dict__.update({f.attname: getattr(posted.message, f.attname) for f in Message._meta.concrete_fields})
        obj._state.adding = False
