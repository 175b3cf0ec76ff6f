"""Room names: the one place that says what a valid name is and which channel-layer group it maps to."""

import re

ROOM_NAME_MAX_LENGTH = 64
# One pattern for Python's re and for the lobby input's HTML ``pattern`` attribute, which browsers compile as
# ``^(?:...)$`` with JavaScript's ``v`` flag: there a ``-`` in a character class must be escaped.
ROOM_NAME_PATTERN = rf"[A-Za-z0-9_\-]{{1,{ROOM_NAME_MAX_LENGTH}}}"
# The rule in words, for error messages and the lobby's help text.
ROOM_NAME_RULE = f"1-{ROOM_NAME_MAX_LENGTH} letters, digits, '-' or '_'"
_ROOM_NAME = re.compile(ROOM_NAME_PATTERN)


def normalize_room_name(raw: object) -> str | None:
    """Return the canonical (lowercase) room name, or None if ``raw`` is not a valid one."""
    if not isinstance(raw, str) or not _ROOM_NAME.fullmatch(raw):
        return None
    return raw.lower()


# Direct rooms are named after their two people's user ids (``dm-3-7``); nobody may open or create such a name.
DIRECT_PREFIX = "dm-"


def direct_room_name(user_pk: int, other_pk: int) -> str:
    low, high = sorted((user_pk, other_pk))
    return f"{DIRECT_PREFIX}{low}-{high}"


def is_reserved(name: str) -> bool:
    """Whether a (canonical) name is kept for direct rooms."""
    return name.startswith(DIRECT_PREFIX)


def group_name(room_name: str) -> str:
    """The channel-layer group of a room; only ever called with a name that passed normalize_room_name."""
    return f"chat.{room_name}"
