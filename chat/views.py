"""Pages: the lobby (and its room list as JSON, to keep it fresh), a room, the guest nickname and sign-up forms."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import access, presence, selectors
from .exceptions import ClientError
from .forms import NicknameForm, RoomForm, SignUpForm
from .identity import BAD_NICKNAME, Identity, identify, set_nickname
from .models import Room
from .protocol import iso_utc
from .rooms import normalize_room_name
from .services import room_get_or_create

LOBBY_ROOMS = 100
# How often an open lobby asks rooms_json for fresh counts: a read on another device shows within this.
LOBBY_REFRESH_SECONDS = 2
# The most mentions the Mentions page lists.
MENTIONS_LISTED = 100


def _lobby_rooms(identity: Identity | None) -> list[Room]:
    """The rooms the lobby lists: those that mention the person unread first, then the most recently active,
    each with ``online`` (how many people are there), and the person's ``unread`` and ``mentions`` counts."""
    rooms = list(Room.objects.order_by(F("last_activity").desc(nulls_last=True), "name")[:LOBBY_ROOMS])
    counts = presence.online_counts()
    unread = {}
    if identity is not None:
        unread = selectors.unread_counts(rooms, identity)
    for room in rooms:
        room.online = counts.get(room.pk, 0)  # type: ignore[attr-defined]
        room.unread, room.mentions = unread.get(room.pk, (0, 0))  # type: ignore[attr-defined]
    rooms.sort(key=lambda room: room.mentions == 0)  # type: ignore[attr-defined]  # stable: activity order stays
    return rooms


def lobby(request: HttpRequest, room_form: RoomForm | None = None) -> HttpResponse:
    identity = identify(request.user, request.session)
    return render(
        request,
        "chat/lobby.html",
        {
            "rooms": _lobby_rooms(identity),
            "refresh_seconds": LOBBY_REFRESH_SECONDS,
            "room_form": room_form or RoomForm(),
            "nickname_form": NicknameForm(),
            "identity": identity,
            "allow_guests": settings.CHAT_ALLOW_GUESTS,
        },
    )


@require_GET
@never_cache
def rooms_json(request: HttpRequest) -> JsonResponse:
    """The lobby's room list, for the lobby page to refresh itself without a reload."""
    rooms = [
        {
            "name": room.name,
            "url": reverse("chat:room", args=[room.name]),
            "online": room.online,  # type: ignore[attr-defined]
            "last_activity": iso_utc(room.last_activity) if room.last_activity else None,
            "unread": room.unread,  # type: ignore[attr-defined]
            "mentions": room.mentions,  # type: ignore[attr-defined]
        }
        for room in _lobby_rooms(identify(request.user, request.session))
    ]
    return JsonResponse({"rooms": rooms})


@never_cache
def mentions(request: HttpRequest) -> HttpResponse:
    """The messages that mention the person, newest first, across rooms, each linking to it in its room."""
    identity = identify(request.user, request.session)
    if identity is None:
        return redirect(f"{settings.LOGIN_URL}?next={request.path}")
    found = selectors.mentions_of(name=identity.name, limit=MENTIONS_LISTED)
    for message in found:
        message["when"] = parse_datetime(message["sent_at"])  # for the template's date filter
    return render(request, "chat/mentions.html", {"identity": identity, "mentions": found})


@require_POST
def room_open(request: HttpRequest) -> HttpResponse:
    form = RoomForm(request.POST)
    if not form.is_valid():
        return lobby(request, room_form=form)
    Room.objects.get_or_create(name=form.cleaned_data["name"])
    return redirect("chat:room", room_name=form.cleaned_data["name"])


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
    name = normalize_room_name(room_name)
    if name is None:
        raise Http404("No such room")
    if name != room_name:
        return redirect("chat:room", room_name=name)
    identity = identify(request.user, request.session)
    if identity is None:
        return redirect(f"{settings.LOGIN_URL}?next={request.path}")
    # Made here if it is new, as its socket would a moment later: what the page offers depends on the room.
    room = room_get_or_create(name)
    return render(
        request,
        "chat/room.html",
        {
            "room_name": name,
            "identity": identity,
            "max_length": settings.CHAT_MAX_MESSAGE_LENGTH,
            "reactions": " ".join(settings.CHAT_REACTIONS),
            "edit_seconds": settings.CHAT_EDIT_SECONDS,
            # What the page offers; the server decides again on every frame (chat.access).
            "moderator": access.can_moderate(identity, room),
        },
    )


def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("chat:lobby")
    return render(request, "registration/signup.html", {"form": form})
