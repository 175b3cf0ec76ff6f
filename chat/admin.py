"""Admin for rooms and messages. New messages and deletes go through the service write path; the log is never
edited in place: a delete here is a moderator's delete entry, broadcast and replayed like one from the room."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib import messages as flash
from django.db.models import QuerySet
from django.http import HttpRequest

from . import access
from .exceptions import ClientError
from .identity import Identity
from .models import Action, Kind, Membership, Message, ModerationEntry, Report, Restriction, Room, RoomKind
from .protocol import clean_body
from .services import entry_create, message_create, message_delete, moderation, revoke


def _staff(request: HttpRequest) -> Identity:
    user = request.user if request.user.is_authenticated else None
    return Identity(name=user.get_username() if user else "admin", user=user)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only the write path makes and changes (so that every socket hears of them): listed, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    """The room's members and roles. Who is a member changes on the Memberships page, where removing one is a
    kick (an entry of the log that closes their sockets); here only roles change."""

    model = Membership
    extra = 0
    fields = ["user", "role"]
    readonly_fields = ["user"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "last_seq", "slow_mode_seconds", "last_activity", "created"]
    list_filter = ["kind"]
    search_fields = ["name"]
    # Slow mode changes only through a moderation entry, which every socket hears of.
    readonly_fields = ["last_seq", "last_activity", "created", "slow_mode_seconds"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Open sockets know a room by its name and were let in by its kind: renaming a private room would let
        # whoever opens its old name join its group, and making a public room private would leave everyone in it.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "name", "kind"] if obj is not None else fields


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["room", "user", "role", "joined"]
    list_filter = ["role", "room__kind"]
    search_fields = ["room__name", "user__username"]
    autocomplete_fields = ["user"]
    list_select_related = ["room", "user"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Moving a membership to another person or room would remove someone without a kick: only roles change.
        return ["room", "user"] if obj is not None else []

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        # A kick through the write path: logged, broadcast, and it closes the person's sockets on every process.
        try:
            entry_create(
                moderation(room=obj.room, identity=_staff(request), action=Action.KICK, subject=obj.user.username)
            )
        except ClientError as exc:  # staff kicking staff, say: the membership goes, without an entry
            self.message_user(request, f"{obj}: not kicked ({exc.detail}); removed only", flash.WARNING)
        Membership.objects.filter(pk=obj.pk).delete()  # a public room's member is only disconnected by a kick
        identity = Identity(name=obj.user.get_username(), user=obj.user)
        if not access.rights(identity, obj.room).read:
            revoke(obj.room, access.who(obj.user, None))  # their open pages close, as after a kick

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("room", "user"):
            self.delete_model(request, membership)


@admin.register(Restriction)
class RestrictionAdmin(ReadOnlyAdmin):
    list_display = ["room", "action", "name", "until", "by", "created"]
    list_filter = ["action"]
    search_fields = ["room__name", "name"]
    list_select_related = ["room"]
    actions = ["lift"]

    # Bans and mutes are made and lifted by moderation entries (the room's frames, or "lift" here), never edited.

    @admin.action(description="Lift the selected bans and mutes (an unban or unmute entry in each room)")
    def lift(self, request: HttpRequest, queryset: QuerySet[Restriction]) -> None:
        for restriction in queryset.select_related("room"):
            action = Action.UNBAN if restriction.action == Action.BAN else Action.UNMUTE
            try:
                entry_create(
                    moderation(room=restriction.room, identity=_staff(request), action=action, subject=restriction.name)
                )
            except ClientError as exc:
                self.message_user(request, f"{restriction}: {exc.detail}", flash.ERROR)


@admin.register(ModerationEntry)
class ModerationEntryAdmin(ReadOnlyAdmin):
    """The log is append-only."""

    list_display = ["room", "seq", "action", "subject", "author", "seconds", "created"]
    list_filter = ["action", "room"]
    search_fields = ["subject", "author", "room__name"]
    list_select_related = ["room"]
    fields = readonly_fields = ("room", "seq", "action", "subject", "author", "seconds", "created")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModerationEntry]:
        return super().get_queryset(request).filter(kind=Kind.MODERATION)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["room", "target_seq", "by", "reason", "created"]
    list_filter = ["room"]
    search_fields = ["reason", "by", "room__name"]
    list_select_related = ["room"]
    readonly_fields = ["room", "target_seq", "by", "who", "reason", "created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class MessageAddForm(forms.ModelForm):
    class Meta:
        model = Message
        fields = ["room", "body"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Nobody but its two people posts in a direct room.
        self.fields["room"].queryset = Room.objects.exclude(kind=RoomKind.DIRECT)  # type: ignore[attr-defined]

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
        # Edits, deletes and reactions are entries of the log too, but the admin moderates messages. A direct
        # room is its two people's only (chat.access): not even staff moderate it.
        return super().get_queryset(request).filter(kind=Kind.MESSAGE).exclude(room__kind=RoomKind.DIRECT)

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
        try:
            message_delete(room=obj.room, seq=obj.seq, identity=_staff(request))
        except ClientError as exc:
            self.message_user(request, f"{obj}: {exc.detail}", flash.ERROR)

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
