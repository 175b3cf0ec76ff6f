"""The HTTP API (django-ninja; OpenAPI at /api/docs): rooms, members and invites. docs/api.md describes it.

Thin: each view parses, calls chat.membership (or chat.services for a kick, a log entry) and answers. Every
refusal is a ClientError, turned into ``{"error": CODE, "detail": TEXT}`` with its status in one place
(``STATUS``, ``client_error``); ninja's own refusals (a bad body, no identity) are answered the same way.

Views are async, with the ORM behind ``sync_to_async`` (the membership functions) or the socket path's group
commit (a kick). Authentication is a list: every class in ``AUTH`` answers an Identity (chat.identity) or None,
and the first that answers wins; the session is the one there is today (guests included).
"""

from datetime import datetime
from typing import Any, Final, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import APIKeyCookie
from ninja.utils import check_csrf

from . import membership, protocol, services
from .exceptions import ClientError
from .identity import Identity, identify
from .models import Action, Role
from .protocol import CSRF_FAILED, LOGIN_REQUIRED

# The one map from an error code to its HTTP status; a code not here is a 400.
STATUS: Final[dict[str, int]] = {
    protocol.BAD_REQUEST: 400,
    protocol.BAD_FRAME: 400,
    protocol.BAD_ROOM: 400,
    protocol.LAST_OWNER: 400,
    protocol.DIRECT_ROOM: 400,
    LOGIN_REQUIRED: 401,
    protocol.FORBIDDEN: 403,
    CSRF_FAILED: 403,
    protocol.NOT_FOUND: 404,
    protocol.NAME_TAKEN: 409,
    protocol.UNAVAILABLE: 503,
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class SessionAuth(APIKeyCookie):
    """The Django session, for signed-in people and guests alike: a request without a session cookie is a new
    guest (when CHAT_ALLOW_GUESTS). Unsafe methods must pass Django's CSRF check first (the X-CSRFToken header)."""

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> Identity | None:
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise ClientError(CSRF_FAILED, "CSRF check failed: send the csrftoken cookie's value as X-CSRFToken.")
        return self.authenticate(request, request.COOKIES.get(self.param_name))

    def authenticate(self, request: HttpRequest, key: str | None) -> Identity | None:
        return identify(request.user, request.session)


# Bearer tokens (issue 15) go before the session: a request without one falls through to it.
AUTH: list[Any] = [SessionAuth()]

api = NinjaAPI(
    title="chatsite",
    version="1",
    description="Rooms, members and invites. See docs/api.md.",
    urls_namespace="api",
    auth=AUTH,
)


def _answer(request: HttpRequest, code: str, detail: str, status: int | None = None) -> HttpResponse:
    return api.create_response(request, {"error": code, "detail": detail}, status=status or STATUS.get(code, 400))


@api.exception_handler(ClientError)
def client_error(request: HttpRequest, exc: ClientError) -> HttpResponse:
    return _answer(request, exc.code, exc.detail)


@api.exception_handler(ValidationError)
def bad_request(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    detail = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors)
    return _answer(request, protocol.BAD_REQUEST, detail)


@api.exception_handler(AuthenticationError)
def login_required(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _answer(request, LOGIN_REQUIRED, "Log in first: guests are not allowed here.")


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _answer(request, protocol.NOT_FOUND, membership.NO_SUCH_ROOM)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _answer(request, "error", str(exc), exc.status_code)


def _identity(request: HttpRequest) -> Identity:
    identity: Identity = request.auth  # type: ignore[attr-defined]  # set by the AUTH class that answered
    return identity


class Error(Schema):
    error: str = Field(examples=["not_found"])
    detail: str


class RoomIn(Schema):
    name: str = Field(examples=["team"])
    kind: Literal["public", "private"] = "public"


class RoomCreated(Schema):
    name: str
    kind: str
    role: str | None = Field(description='"owner" for a signed-in creator; null for a guest\'s public room.')


class RoomOut(Schema):
    name: str
    url: str
    online: int
    last_activity: str | None
    unread: int
    mentions: int
    kind: Literal["public", "private", "direct"]
    role: str | None = Field(description="The requester's role; null when not a member.")
    with_: str | None = Field(alias="with", description="A direct room's other person; null for other rooms.")


class RoomsOut(Schema):
    rooms: list[RoomOut]


class MemberIn(Schema):
    username: str
    role: Literal["member", "moderator"] = "member"


class MemberOut(Schema):
    username: str
    role: str
    removable: bool = Field(description="Whether the requester may remove them.")


class ReportOut(Schema):
    target: int = Field(description="The seq of the reported message.")
    reason: str
    by: str
    created: datetime


class MembersOut(Schema):
    room: str
    kind: str
    role: str | None = Field(description="The requester's role; null when not a member.")
    manage: bool = Field(description="Whether the requester may invite and remove.")
    roles: list[str] = Field(description="The roles the requester may give.")
    members: list[MemberOut]
    reports: list[ReportOut] | None = Field(description="The room's reports; null for those who do not moderate.")


class MemberAdded(Schema):
    username: str
    role: str


class InviteOut(Schema):
    url: str = Field(examples=["/invite/TOKEN/"])
    expires_at: datetime


READ_ERRORS: Final = {401: Error, 404: Error}
WRITE_ERRORS: Final = {400: Error, 401: Error, 403: Error, 404: Error}


@api.get("/rooms/", response={200: RoomsOut, 401: Error}, url_name="rooms", by_alias=True)
async def rooms_list(request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
    """The rooms the requester can see: public ones, private ones they are a member of, their direct rooms."""
    add_never_cache_headers(response)  # the lobby polls it: always fresh
    listed = await sync_to_async(membership.room_list)(_identity(request))
    return {
        "rooms": [
            {
                "name": room.name,
                "url": room.url,
                "online": room.online,
                "last_activity": protocol.iso_utc(room.last_activity) if room.last_activity else None,
                "unread": room.unread,
                "mentions": room.mentions,
                "kind": room.kind,
                "role": room.role,
                "with": room.other,
            }
            for room in listed
        ]
    }


@api.post("/rooms/", response={201: RoomCreated, 409: Error, **WRITE_ERRORS}, url_name="rooms_create")
async def room_create(request: HttpRequest, body: RoomIn) -> tuple[int, RoomCreated]:
    """Create a public or private room; a signed-in creator becomes its owner. Guests may create public rooms."""
    identity = _identity(request)
    room = await sync_to_async(membership.room_create)(identity, name=body.name, kind=body.kind)
    return 201, RoomCreated(name=room.name, kind=room.kind, role=Role.OWNER if identity.user is not None else None)


@api.get("/rooms/{room}/members/", response={200: MembersOut, **READ_ERRORS}, url_name="members")
async def members_list(request: HttpRequest, room: str) -> MembersOut:
    """The room's members (anyone who may read it), and for its moderators what they may change and its reports."""
    identity = _identity(request)

    def read() -> MembersOut:
        found, rights = membership.readable_room(room, identity)
        listed = membership.member_list(found, identity, rights)
        reports = listed.reports
        return MembersOut(
            room=found.name,
            kind=found.kind,
            role=rights.role,
            manage=listed.manage,
            roles=listed.roles,
            members=[MemberOut(username=m.username, role=m.role, removable=m.removable) for m in listed.members],
            reports=None
            if reports is None
            else [ReportOut(target=r.target_seq, reason=r.reason, by=r.by, created=r.created) for r in reports],
        )

    return await sync_to_async(read)()


@api.post("/rooms/{room}/members/", response={201: MemberAdded, **WRITE_ERRORS}, url_name="members_add")
async def member_add(request: HttpRequest, room: str, body: MemberIn) -> tuple[int, MemberAdded]:
    """Add a registered person as a member or moderator, or change their role: owners give either, moderators
    only member."""
    identity = _identity(request)

    def add() -> MemberAdded:
        found, _ = membership.readable_room(room, identity)
        added = membership.member_add(found, identity, username=body.username, role=body.role)
        return MemberAdded(username=body.username, role=added.role)

    return 201, await sync_to_async(add)()


@api.delete("/rooms/{room}/members/{username}/", response={204: None, **WRITE_ERRORS}, url_name="member")
async def member_remove(request: HttpRequest, room: str, username: str) -> tuple[int, None]:
    """Remove someone (a kick: a moderation entry of the log, which closes their sockets), or, for your own
    name, leave."""
    identity = _identity(request)
    found, _ = await sync_to_async(membership.readable_room)(room, identity)
    membership.check_changeable(found)
    if membership.is_self(identity, username):
        await sync_to_async(membership.member_leave)(found, identity)
        return 204, None
    await services.apost(services.moderation(room=found, identity=identity, action=Action.KICK, subject=username))
    await sync_to_async(membership.forget)(found, username)
    return 204, None


@api.post("/rooms/{room}/invites/", response={201: InviteOut, **WRITE_ERRORS}, url_name="invites")
async def invite_create(request: HttpRequest, room: str) -> tuple[int, InviteOut]:
    """A new invite link (owners, moderators, staff), valid for CHAT_INVITE_SECONDS; shown this once."""
    identity = _identity(request)

    def create() -> InviteOut:
        found, _ = membership.readable_room(room, identity)
        token, invite = membership.invite_create(found, identity)
        return InviteOut(url=reverse("chat:invite", args=[token]), expires_at=invite.expires_at)

    return 201, await sync_to_async(create)()


@api.delete("/rooms/{room}/invites/", response={204: None, **WRITE_ERRORS}, url_name="invites_revoke")
async def invites_revoke(request: HttpRequest, room: str) -> tuple[int, None]:
    """Revoke every open invite link of the room (owners, moderators, staff)."""
    identity = _identity(request)

    def revoke() -> None:
        found, _ = membership.readable_room(room, identity)
        membership.invite_revoke_all(found, identity)

    await sync_to_async(revoke)()
    return 204, None
