"""Who may read, write and moderate a room: the one rule, asked by every path.

``decide`` is the rule itself: a pure function of who is asking, the room and what the database holds of them
there (their ``Standing``: role, ban, mute). ``rights`` loads the standing and decides; the store loads the
standings of a whole batch in one query each and decides per entry, under the room's lock (chat.store). The
socket asks at connect and again whenever a moderation entry names its person; every HTTP endpoint, the lobby,
the room page and the Mentions page ask through ``rights`` or ``visible_rooms``.

The rule, in words (docs/protocol.md, "Rooms and access"):

- A public room is open to everyone, guests included, except those banned from it.
- A private room is open to its members and to staff; a direct room to its two members alone.
- Writing needs reading, and no mute. Staff and the room's owners and moderators are never muted by slow mode.
- Owners, moderators and staff moderate a public or private room; nobody moderates a direct room.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone

from .identity import Identity
from .models import Action, Membership, Restriction, Role, Room, RoomKind

# Who outranks whom: a moderator acts on members and guests, an owner on moderators too, staff on anyone.
_RANK: dict[str | None, int] = {None: 0, Role.MEMBER: 1, Role.MODERATOR: 2, Role.OWNER: 3}
STAFF_RANK = 4


@dataclass(frozen=True, slots=True)
class Standing:
    """What the database holds of one person in one room. ``*_until`` is None for "until lifted"."""

    role: str | None = None
    banned: bool = False
    banned_until: datetime | None = None
    muted: bool = False
    muted_until: datetime | None = None


NOBODY = Standing()


@dataclass(frozen=True, slots=True)
class Rights:
    read: bool
    write: bool
    moderate: bool
    role: str | None = None
    banned: bool = False
    muted: bool = False
    muted_until: datetime | None = None


NONE = Rights(read=False, write=False, moderate=False)


def who(user: User | None, guest_id: str | None) -> str:
    """The identity key of a person: never the display name, which two guests may share."""
    return f"user:{user.pk}" if user is not None else f"guest:{guest_id}"


def decide(*, user: User | None, kind: str, standing: Standing) -> Rights:
    """The rule. ``user`` is None for a guest; ``kind`` is the room's (RoomKind)."""
    staff = user is not None and user.is_staff
    member = standing.role is not None
    if kind == RoomKind.DIRECT:
        read = member
        moderate = False
    elif kind == RoomKind.PRIVATE:
        read = user is not None and (member or staff) and not standing.banned
        moderate = read and (staff or standing.role in (Role.OWNER, Role.MODERATOR))
    else:
        read = not standing.banned or staff
        moderate = staff or (user is not None and standing.role in (Role.OWNER, Role.MODERATOR))
    muted = standing.muted and not moderate
    return Rights(
        read=read,
        write=read and not muted,
        moderate=read and moderate,
        role=standing.role,
        banned=standing.banned,
        muted=muted,
        muted_until=standing.muted_until if muted else None,
    )


def rank(user: User | None, standing: Standing) -> int:
    """How far up a person stands in a room: who may moderate whom (``outranks``)."""
    if user is not None and user.is_staff:
        return STAFF_RANK
    return _RANK.get(standing.role, 0)


def outranks(user: User | None, standing: Standing, other: User | None, theirs: Standing) -> bool:
    """Whether the first person stands above the second in a room: whom they may kick, ban, mute or appoint."""
    return rank(user, standing) > rank(other, theirs)


def may_appoint(
    *, user: User | None, kind: str, standing: Standing, role: str, other: User | None, theirs: Standing
) -> bool:
    """Whether a person may make ``other`` (who stands ``theirs``) a ``role`` (member or moderator) of a room: they
    moderate it and stand above both the role and the person's present standing. Owners appoint moderators and
    members, moderators only members, staff anyone; nobody appoints in a direct room (nobody moderates one)."""
    if not decide(user=user, kind=kind, standing=standing).moderate:
        return False
    return outranks(user, standing, None, Standing(role=role)) and outranks(user, standing, other, theirs)


def _fold(standing: Standing, restriction: Restriction, now: datetime) -> Standing:
    if not restriction.active(now):
        return standing
    if restriction.action == Action.BAN:
        return Standing(standing.role, True, restriction.until, standing.muted, standing.muted_until)
    return Standing(standing.role, standing.banned, standing.banned_until, True, restriction.until)


def standings(
    pairs: Iterable[tuple[int, User | None, str]], *, restricted: set[int] | None = None
) -> dict[tuple[int, str], Standing]:
    """The standings of (room pk, user, who key) triples, in two queries whatever their number. ``restricted``:
    the rooms that may hold bans or mutes, when the caller knows (the others' are not looked up)."""
    wanted = list(pairs)
    if not wanted:
        return {}
    now = timezone.now()
    found: dict[tuple[int, str], Standing] = {}
    members = Q()
    for room_pk, user, _ in wanted:
        if user is not None:
            members |= Q(room_id=room_pk, user_id=user.pk)
    if members:
        for room_pk, user_pk, role in Membership.objects.filter(members).values_list("room_id", "user_id", "role"):
            found[room_pk, f"user:{user_pk}"] = Standing(role=role)
    rooms = {room_pk for room_pk, _, _ in wanted}
    if restricted is not None:
        rooms &= restricted
    whos = {key for _, _, key in wanted}
    for restriction in Restriction.objects.filter(room_id__in=rooms, who__in=whos) if rooms else ():
        key = (restriction.room_id, restriction.who)
        found[key] = _fold(found.get(key, NOBODY), restriction, now)
    return found


def standing_of(room: Room, user: User | None, key: str) -> Standing:
    return standings([(room.pk, user, key)]).get((room.pk, key), NOBODY)


def rights(identity: Identity, room: Room) -> Rights:
    """What ``identity`` may do in ``room`` now, from the database."""
    key = who(identity.user, identity.guest_id)
    return decide(user=identity.user, kind=room.kind, standing=standing_of(room, identity.user, key))


def can_moderate(identity: Identity, room: Room) -> bool:
    """Whether ``identity`` may moderate ``room``: delete other people's messages, kick, ban, mute."""
    return rights(identity, room).moderate


def visible_rooms(identity: Identity | None) -> QuerySet[Room]:
    """The rooms a person may see listed: public ones (unless banned there), private ones they are a member of,
    their direct rooms. The lobby, the room list API and the Mentions page filter through it."""
    if identity is None:
        return Room.objects.none()
    banned = Restriction.objects.filter(
        Q(until__isnull=True) | Q(until__gt=timezone.now()),
        action=Action.BAN,
        who=who(identity.user, identity.guest_id),
    ).values("room_id")
    public = Q(kind=RoomKind.PUBLIC) & ~Q(pk__in=banned)
    if identity.user is None:
        return Room.objects.filter(public)
    mine = Membership.objects.filter(user=identity.user).values("room_id")
    return Room.objects.filter(public | (Q(pk__in=mine) & ~Q(pk__in=banned)))
