"""Who is in a room: creating rooms, the rooms a person sees, members and their roles, invites, direct rooms.

Synchronous functions called by the HTTP API (chat.api) and the pages (chat.views); each refuses with a
ClientError, whose code chat.api turns into an HTTP status in one place. Who may do what is chat.access's to
say: every function here asks it (``rights``, ``visible_rooms``, ``may_appoint``, ``outranks``) and decides
nothing itself. A room a person may not read is answered exactly as a room that does not exist.

A kick is not here: it is a moderation entry of the room's log (chat.services.moderation), which ends a private
room's membership and closes the person's sockets on every process; ``forget`` only tidies up after one.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from . import access, presence, protocol, rooms, selectors, services
from .access import Rights, Standing
from .exceptions import ClientError
from .identity import Identity
from .models import Action, Invite, Kind, Membership, Message, Report, Role, Room, RoomKind
from .protocol import BAD_REQUEST, BAD_ROOM, DIRECT_ROOM, LAST_OWNER, NAME_TAKEN

# Error codes of the HTTP API beside chat.protocol's FORBIDDEN and NOT_FOUND.

# The roles the API gives; owners are made by creating a room.
APPOINTED: Final[tuple[str, ...]] = (Role.MEMBER, Role.MODERATOR)
# The most rooms a lobby lists, and reports a members panel shows.
LOBBY_ROOMS: Final = 100
REPORTS_LISTED: Final = 100
_ROLE_ORDER: dict[str, int] = {Role.OWNER: 0, Role.MODERATOR: 1, Role.MEMBER: 2}

NO_SUCH_ROOM = "No such room."


@dataclass(frozen=True, slots=True)
class ListedRoom:
    """A room as the lobby lists it for one person: ``role`` theirs (None: not a member), ``other`` the other
    person of a direct room."""

    name: str
    kind: str
    online: int
    last_activity: datetime | None
    unread: int
    mentions: int
    role: str | None
    other: str | None

    @property
    def url(self) -> str:
        return reverse("chat:room", args=[self.name])


@dataclass(frozen=True, slots=True)
class Member:
    username: str
    role: str
    removable: bool  # whether the person asking may remove them (a kick)


@dataclass(frozen=True, slots=True)
class Members:
    """A room's members as one person sees them, with what they may change. ``reports`` is None for those who do
    not moderate the room."""

    members: list[Member]
    manage: bool  # may invite and remove
    roles: list[str]  # the roles they may give
    reports: list[Report] | None


def room_create(identity: Identity, *, name: str, kind: str) -> Room:
    """A new public or private room; a signed-in creator becomes its owner, a guest's public room has none."""
    canonical = rooms.normalize_room_name(name)
    if canonical is None or rooms.is_reserved(canonical):
        detail = f"Room names are {rooms.ROOM_NAME_RULE}, not starting with '{rooms.DIRECT_PREFIX}'."
        raise ClientError(BAD_ROOM, detail)
    if kind not in (RoomKind.PUBLIC, RoomKind.PRIVATE):
        raise ClientError(BAD_ROOM, "A room is public or private.")
    if kind == RoomKind.PRIVATE and identity.user is None:
        raise ClientError(protocol.FORBIDDEN, "Sign in to create a private room.")
    try:
        with transaction.atomic():
            room = Room.objects.create(name=canonical, kind=kind)
            if identity.user is not None:
                Membership.objects.create(room=room, user=identity.user, role=Role.OWNER)
    except IntegrityError:
        raise ClientError(NAME_TAKEN, f"There is already a room called {canonical}.") from None
    return room


def room_list(identity: Identity | None) -> list[ListedRoom]:
    """The rooms a person sees (access.visible_rooms): those that mention them unread first, then the most
    recently active, each with how many people are online there and the person's unread and mention counts."""
    found = list(
        access.visible_rooms(identity).order_by(F("last_activity").desc(nulls_last=True), "name")[:LOBBY_ROOMS]
    )
    online = presence.online_counts()
    counts = selectors.unread_counts(found, identity) if identity is not None else {}
    roles: dict[int, str] = {}
    others: dict[int, str] = {}
    if identity is not None and identity.user is not None:
        mine = Membership.objects.filter(user=identity.user, room__in=found)
        roles = dict(mine.values_list("room_id", "role"))
        direct = [room for room in found if room.kind == RoomKind.DIRECT]
        theirs = Membership.objects.filter(room__in=direct).exclude(user=identity.user)
        others = dict(theirs.values_list("room_id", "user__username"))
    listed = [
        ListedRoom(
            name=room.name,
            kind=room.kind,
            online=online.get(room.pk, 0),
            last_activity=room.last_activity,
            unread=counts.get(room.pk, (0, 0))[0],
            mentions=counts.get(room.pk, (0, 0))[1],
            role=roles.get(room.pk),
            other=others.get(room.pk),
        )
        for room in found
    ]
    listed.sort(key=lambda room: room.mentions == 0)  # stable: activity order stays
    return listed


def readable_room(name: str, identity: Identity) -> tuple[Room, Rights]:
    """The room of that name and what ``identity`` may do there; not_found for no such room and for a room they
    may not read alike. Never makes a room (opening one by URL does: chat.services.room_for)."""
    canonical = rooms.normalize_room_name(name)
    room = Room.objects.filter(name=canonical).first() if canonical is not None else None
    if room is None:
        raise ClientError(protocol.NOT_FOUND, NO_SUCH_ROOM)
    rights = access.rights(identity, room)
    if not rights.read:
        raise ClientError(protocol.NOT_FOUND, NO_SUCH_ROOM)
    return room, rights


def check_changeable(room: Room) -> None:
    """Refuse member and invite changes to a direct room: it has its two people, for good."""
    if room.kind == RoomKind.DIRECT:
        raise ClientError(DIRECT_ROOM, "A direct room has exactly its two people: nobody joins, leaves or invites.")


def member_list(room: Room, identity: Identity, rights: Rights) -> Members:
    """The room's members, owners first; for those who moderate it, what they may change and its reports."""
    key = access.who(identity.user, identity.guest_id)
    mine = access.standing_of(room, identity.user, key)
    people = sorted(
        Membership.objects.filter(room=room).select_related("user"),
        key=lambda m: (_ROLE_ORDER.get(m.role, 3), m.user.username),
    )
    manage = rights.moderate and room.kind != RoomKind.DIRECT
    members = [
        Member(
            username=m.user.username,
            role=m.role,
            removable=manage
            and m.user != identity.user
            and access.outranks(identity.user, mine, m.user, Standing(role=m.role)),
        )
        for m in people
    ]
    roles = [
        role
        for role in APPOINTED
        if access.may_appoint(
            user=identity.user, kind=room.kind, standing=mine, role=role, other=None, theirs=access.NOBODY
        )
    ]
    reports = list(Report.objects.filter(room=room)[:REPORTS_LISTED]) if rights.moderate else None
    return Members(members=members, manage=manage, roles=roles, reports=reports)


def member_add(room: Room, identity: Identity, *, username: str, role: str) -> Membership:
    """Make a registered person a member or moderator of the room (or change their role), as the rule allows."""
    check_changeable(room)
    if role not in APPOINTED:
        raise ClientError(BAD_REQUEST, "Members are made members or moderators.")
    if not access.rights(identity, room).moderate:
        raise ClientError(protocol.FORBIDDEN, "Only the room's owners, moderators and staff add members.")
    user = User.objects.filter(username=protocol.clean_name(username, "username"), is_active=True).first()
    if user is None:
        raise ClientError(protocol.NOT_FOUND, f"Nobody is called {username}.")
    with transaction.atomic():
        key = access.who(identity.user, identity.guest_id)
        found = access.standings([(room.pk, identity.user, key), (room.pk, user, access.who(user, None))])
        if not access.may_appoint(
            user=identity.user,
            kind=room.kind,
            standing=found.get((room.pk, key), access.NOBODY),
            role=role,
            other=user,
            theirs=found.get((room.pk, access.who(user, None)), access.NOBODY),
        ):
            raise ClientError(protocol.FORBIDDEN, f"You may not make {username} a {role} here.")
        membership, _ = Membership.objects.update_or_create(room=room, user=user, defaults={"role": role})
    return membership


def is_self(identity: Identity, username: str) -> bool:
    return identity.user is not None and identity.user.get_username() == username


def member_leave(room: Room, identity: Identity) -> None:
    """End the person's own membership (no log entry: leaving is no moderation action); the last owner may not
    leave (a room keeps an owner)."""
    check_changeable(room)
    with transaction.atomic():
        # The owners' rows are locked, so two owners leaving at once cannot both be "not the last".
        owners = list(Membership.objects.select_for_update().filter(room=room, role=Role.OWNER))
        mine = Membership.objects.filter(room=room, user=identity.user).first()
        if mine is None:
            raise ClientError(protocol.NOT_FOUND, "You are not a member of this room.")
        if mine.role == Role.OWNER and len(owners) == 1:
            raise ClientError(LAST_OWNER, "You are the room's last owner: it cannot be left without one.")
        mine.delete()
    # Out of a private room, their open pages of it close (4403) on every process; a public one they still read.
    if not access.rights(identity, room).read:
        services.revoke(room, access.who(identity.user, None))


def forget(room: Room, username: str) -> None:
    """After a kick from a public room (which only disconnects), take the person off its member list too: the
    members API removes them. A kick from a private room has already ended the membership (chat.store)."""
    if room.kind == RoomKind.PUBLIC:
        Membership.objects.filter(room=room, user__username=username).delete()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_create(room: Room, identity: Identity) -> tuple[str, Invite]:
    """A new invite link's token (shown once; only its hash is stored) and the invite."""
    check_changeable(room)
    if not access.rights(identity, room).moderate:
        raise ClientError(protocol.FORBIDDEN, "Only the room's owners, moderators and staff invite.")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    invite = Invite.objects.create(
        room=room,
        token_hash=_token_hash(token),
        created_by=identity.user,
        created=now,
        expires_at=now + timedelta(seconds=settings.CHAT_INVITE_SECONDS),
    )
    return token, invite


def invite_revoke_all(room: Room, identity: Identity) -> int:
    """Revoke every open invite of the room; how many there were."""
    check_changeable(room)
    if not access.rights(identity, room).moderate:
        raise ClientError(protocol.FORBIDDEN, "Only the room's owners, moderators and staff revoke invites.")
    now = timezone.now()
    return Invite.objects.filter(room=room, revoked_at__isnull=True, expires_at__gt=now).update(revoked_at=now)


def invite_accept(token: str, identity: Identity) -> Room:
    """Make a signed-in person a member through an invite link (no change if they are one); not_found for a
    forged, expired or revoked token, and for a person kicked or banned from the room since it was made."""
    if identity.user is None:
        raise ClientError(protocol.FORBIDDEN, "Sign in to accept an invite.")
    gone = ClientError(protocol.NOT_FOUND, "No such invite.")
    invite = Invite.objects.select_related("room").filter(token_hash=_token_hash(token)).first()
    if invite is None or invite.revoked_at is not None or invite.expires_at <= timezone.now():
        raise gone
    with transaction.atomic():
        # Under the room's row lock, which the store takes for every entry: a kick or ban cannot commit between
        # the checks below and the membership they allow.
        room = Room.objects.select_for_update().get(pk=invite.room_id)
        if room.kind == RoomKind.DIRECT:
            raise gone
        # A removal outlives the links made before it: the log says whom the room shut out, and when.
        shut_out = Message.objects.filter(
            room=room,
            kind=Kind.MODERATION,
            action__in=[Action.KICK, Action.BAN],
            subject=identity.user.get_username(),
            created__gte=invite.created,
        ).exists()
        if shut_out or access.rights(identity, room).banned:
            raise gone
        # A link is as good as its maker's right to invite: one who no longer moderates the room invites nobody.
        maker = invite.created_by
        if maker is None or not access.rights(Identity(name=maker.get_username(), user=maker), room).moderate:
            raise gone
        Membership.objects.get_or_create(room=room, user=identity.user, defaults={"role": Role.MEMBER})
    return room


def direct_room(identity: Identity, username: str) -> Room:
    """The direct room of a signed-in person and another, made once with both as members."""
    if identity.user is None:
        raise ClientError(protocol.FORBIDDEN, "Sign in to send direct messages.")
    other = User.objects.filter(username=protocol.clean_name(username, "username"), is_active=True).first()
    if other is None or other.pk == identity.user.pk:
        raise ClientError(protocol.NOT_FOUND, f"Nobody else is called {username}.")
    # The name is unique per pair, so two people opening it at once make one room; get_or_create takes the other's.
    with transaction.atomic():
        room, _ = Room.objects.get_or_create(
            name=rooms.direct_room_name(identity.user.pk, other.pk), defaults={"kind": RoomKind.DIRECT}
        )
        if room.kind != RoomKind.DIRECT:
            raise ClientError(protocol.NOT_FOUND, NO_SUCH_ROOM)
        for user in (identity.user, other):
            Membership.objects.get_or_create(room=room, user=user, defaults={"role": Role.MEMBER})
    return room


def direct_partner(room: Room, identity: Identity) -> str | None:
    """The other person of a direct room, for its page's title."""
    if room.kind != RoomKind.DIRECT:
        return None
    theirs = Membership.objects.filter(room=room).exclude(user=identity.user)
    return theirs.values_list("user__username", flat=True).first()
