"""Pages: the lobby, a room, the Mentions page, invite links, direct messages, the guest nickname and sign-up
forms. The lobby keeps itself fresh through the room list API (chat.api)."""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import access, membership, protocol, selectors
from .exceptions import ClientError, Refused
from .forms import NicknameForm, RoomForm, SignUpForm
from .identity import BAD_NICKNAME, Identity, identify, set_nickname
from .models import Room, RoomKind
from .rooms import normalize_room_name
from .services import room_for

# How often an open lobby asks the room list API (chat.api) for fresh counts: a read on another device shows within
# this.
LOBBY_REFRESH_SECONDS = 2
# The most mentions the Mentions page lists.
MENTIONS_LISTED = 100


NO_ROOMS = "No rooms yet. Open one: it is created on the spot."
NO_DIRECTS = "No direct messages yet."


@dataclass(frozen=True, slots=True)
class LobbySection:
    """One list of the lobby (its rooms, its direct messages) and the ids its script finds it by."""

    key: str
    title: str
    list_id: str
    empty_id: str
    empty: str
    rooms: list[membership.ListedRoom]


def _to_login(request: HttpRequest) -> HttpResponse:
    return redirect_to_login(request.get_full_path())


def lobby(request: HttpRequest, room_form: RoomForm | None = None) -> HttpResponse:
    identity = identify(request.user, request.session)
    listed = membership.room_list(identity)
    rooms = [room for room in listed if room.kind != RoomKind.DIRECT]
    sections = [LobbySection("rooms", "Rooms", "room-list", "no-rooms", NO_ROOMS, rooms)]
    if identity is not None and not identity.is_guest:  # guests have no direct rooms
        directs = [room for room in listed if room.kind == RoomKind.DIRECT]
        sections.append(LobbySection("directs", "Direct messages", "dm-list", "no-dms", NO_DIRECTS, directs))
    return render(
        request,
        "chat/lobby.html",
        {
            "rooms": rooms,
            "sections": sections,
            "refresh_seconds": LOBBY_REFRESH_SECONDS,
            "room_form": room_form or RoomForm(),
            "nickname_form": NicknameForm(),
            "identity": identity,
            "allow_guests": settings.CHAT_ALLOW_GUESTS,
        },
    )


@never_cache
def mentions(request: HttpRequest) -> HttpResponse:
    """The messages that mention the person, newest first, in the rooms they can still read, each linking to it
    in its room."""
    identity = identify(request.user, request.session)
    if identity is None:
        return _to_login(request)
    found = selectors.mentions_of(name=identity.name, rooms=access.visible_rooms(identity), limit=MENTIONS_LISTED)
    for message in found:
        message["when"] = parse_datetime(message["sent_at"])  # for the template's date filter
    return render(request, "chat/mentions.html", {"identity": identity, "mentions": found})


@require_POST
def room_open(request: HttpRequest) -> HttpResponse:
    """The lobby's form: create a room (as POST /api/rooms/ does), or open the public room of that name if there
    is one already."""
    identity = identify(request.user, request.session)
    if identity is None:
        return _to_login(request)
    form = RoomForm(request.POST)
    if not form.is_valid():
        return lobby(request, room_form=form)
    name, kind = form.cleaned_data["name"], form.cleaned_data["kind"] or RoomKind.PUBLIC
    try:
        membership.room_create(identity, name=name, kind=kind)
    except ClientError as exc:
        if not (exc.code == membership.NAME_TAKEN and kind == RoomKind.PUBLIC):
            form.add_error("kind" if exc.code == protocol.FORBIDDEN else "name", exc.detail)
            return lobby(request, room_form=form)
    return redirect("chat:room", room_name=name)


@require_POST
def nickname(request: HttpRequest) -> HttpResponse:
    form = NicknameForm(request.POST)
    if request.user.is_authenticated or not settings.CHAT_ALLOW_GUESTS:
        messages.error(request, "Only guests choose a nickname.")
    elif form.is_valid():
        try:
            name = set_nickname(request.session, form.cleaned_data["nickname"])
        except ClientError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"You are now {name}.")
    else:
        messages.error(request, BAD_NICKNAME)
    return redirect("chat:lobby")


def room(request: HttpRequest, room_name: str) -> HttpResponse:
    """A room's page. One the person may not read is a 404, the same page as a room that does not exist."""
    name = normalize_room_name(room_name)
    if name is None:
        raise Http404("No such room")
    if name != room_name:
        return redirect("chat:room", room_name=name)
    identity = identify(request.user, request.session)
    if identity is None:
        return _to_login(request)
    # Made here if it is new, as its socket would a moment later: what the page offers depends on the room.
    try:
        found, rights = room_for(name, identity)
    except Refused:
        raise Http404("No such room") from None
    other = membership.direct_partner(found, identity)
    return render(
        request,
        "chat/room.html",
        {
            "room_name": name,
            "room_label": f"@{other}" if other else f"#{name}",
            "kind": found.kind,
            "other": other,
            "rights": rights,
            # The members panel: private rooms, and public ones for those who moderate them (reports, moderators).
            "members_panel": found.kind == RoomKind.PRIVATE or (found.kind == RoomKind.PUBLIC and rights.moderate),
            "identity": identity,
            "max_length": settings.CHAT_MAX_MESSAGE_LENGTH,
            "reactions": " ".join(settings.CHAT_REACTIONS),
            "edit_seconds": settings.CHAT_EDIT_SECONDS,
            # What the page offers; the server decides again on every frame (chat.access).
            "moderator": rights.moderate,
        },
    )


@require_GET
@never_cache
def invite(request: HttpRequest, token: str) -> HttpResponse:
    """An invite link: a signed-in person becomes a member and goes to the room; a guest logs in first and comes
    back. A forged, expired or revoked link, or one made before its person was kicked or banned, is a 404."""
    return _signed_in_to_room(request, lambda identity: membership.invite_accept(token, identity), "No such invite")


@require_GET
def direct_open(request: HttpRequest) -> HttpResponse:
    """The lobby's direct-message box (a GET form): on to /dm/NAME/."""
    username = request.GET.get("username", "").strip()
    if not username:
        return redirect("chat:lobby")
    try:
        return redirect("chat:direct", username=username)
    except NoReverseMatch:  # a "/" in it: nobody's username
        raise Http404("No such person") from None


@require_GET
def direct(request: HttpRequest, username: str) -> HttpResponse:
    """The direct room of the signed-in person and ``username``, made on first use; a 404 for nobody or yourself."""
    return _signed_in_to_room(request, lambda identity: membership.direct_room(identity, username), "No such person")


def _signed_in_to_room(request: HttpRequest, find: Callable[[Identity], Room], missing: str) -> HttpResponse:
    """To the room ``find`` gives a signed-in person (a guest logs in first and comes back); a 404 if it refuses."""
    identity = identify(request.user, request.session)
    if identity is None or identity.user is None:
        return _to_login(request)
    try:
        found = find(identity)
    except ClientError:
        raise Http404(missing) from None
    return redirect("chat:room", room_name=found.name)


def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("chat:lobby")
    return render(request, "registration/signup.html", {"form": form})
