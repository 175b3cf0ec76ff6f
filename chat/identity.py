"""Who is posting: a logged-in user's username, or a guest name kept in the session.

The server alone decides a connection's name; no frame can choose it. Guest names always read as guests:
automatic ones are ``guest-NNNN`` and chosen nicknames are shown as ``NICK (guest)``, so neither can be mistaken
for a registered user (sign-up refuses names starting with ``guest-``; usernames cannot contain spaces).
"""

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.contrib.sessions.backends.base import SessionBase

from .exceptions import ClientError

GUEST_SESSION_KEY = "chat_guest_name"
# A guest's lasting id within their session: what makes a message theirs to edit, never the display name (two
# guests may pick the same nickname, one after the other).
GUEST_ID_SESSION_KEY = "chat_guest_id"
GUEST_PREFIX = "guest-"
# Authors the server itself posts as (the chat_post command); nobody may sign up or go by these.
SYSTEM_AUTHOR = "system"
RESERVED_NAMES = frozenset({SYSTEM_AUTHOR, "admin"})
NICKNAME_MIN_LENGTH = 2
NICKNAME_MAX_LENGTH = 32
# Valid both in Python's re and as an HTML ``pattern`` (JavaScript's ``v`` flag: a ``-`` in a class is escaped).
NICKNAME_PATTERN = rf"[A-Za-z0-9_.\-]{{{NICKNAME_MIN_LENGTH},{NICKNAME_MAX_LENGTH}}}"
# The rule in words, for error messages and the lobby's help text.
NICKNAME_RULE = f"{NICKNAME_MIN_LENGTH}-{NICKNAME_MAX_LENGTH} letters, digits, '.', '-' or '_'"
BAD_NICKNAME = f"Nicknames are {NICKNAME_RULE}."
_NICKNAME = re.compile(NICKNAME_PATTERN)


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    user: User | None
    guest_id: str | None = None

    @property
    def is_guest(self) -> bool:
        return self.user is None

    @property
    def is_staff(self) -> bool:
        return self.user is not None and self.user.is_staff


def new_guest_name() -> str:
    return f"{GUEST_PREFIX}{secrets.randbelow(9000) + 1000}"


def new_guest_id() -> str:
    return secrets.token_hex(12)


def _assigned(session: SessionBase, key: str, make: Callable[[], str]) -> str:
    """The session's value under ``key``, made and kept on first use."""
    value = session.get(key)
    if not isinstance(value, str):
        value = make()
        session[key] = value
    return value


def guest_id(session: SessionBase) -> str:
    """The session's guest id, assigned on first use (by the room page, before its socket opens)."""
    return _assigned(session, GUEST_ID_SESSION_KEY, new_guest_id)


def guest_name(session: SessionBase) -> str:
    """The session's guest name, assigned on first use."""
    return _assigned(session, GUEST_SESSION_KEY, new_guest_name)


def identify(user: AbstractBaseUser | AnonymousUser | None, session: SessionBase | None) -> Identity | None:
    """The identity to post as, or None when guests are not allowed and nobody is logged in."""
    if isinstance(user, User) and user.is_authenticated:
        return Identity(name=user.get_username(), user=user)
    if not settings.CHAT_ALLOW_GUESTS:
        return None
    if session is None:
        return Identity(name=new_guest_name(), user=None, guest_id=new_guest_id())
    return Identity(name=guest_name(session), user=None, guest_id=guest_id(session))


def set_nickname(session: SessionBase, nickname: str) -> str:
    """Give a guest a chosen nickname; returns the display name. Raises ClientError if it is not allowed."""
    nickname = nickname.strip()
    if not _NICKNAME.fullmatch(nickname):
        raise ClientError("bad_nickname", BAD_NICKNAME)
    if nickname.lower().startswith(GUEST_PREFIX):
        raise ClientError("bad_nickname", f"Nicknames may not start with '{GUEST_PREFIX}'.")
    if nickname.lower() in RESERVED_NAMES:
        raise ClientError("nickname_taken", "That name is reserved.")
    if get_user_model().objects.filter(username__iexact=nickname).exists():
        raise ClientError("nickname_taken", "That name belongs to a registered user.")
    name = f"{nickname} (guest)"
    session[GUEST_SESSION_KEY] = name
    return name
