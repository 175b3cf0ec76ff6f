"""Mentions: ``@name`` in a body names a person of the room, resolved when the body is stored.

A name is a signed-in user's username, or a guest's name in the room (``@bob`` for ``bob (guest)``, and
``@guest-1234``), matched case-insensitively as a whole word: an ``@`` inside a word (``ada@example.org``) is not
a mention. A guest counts as in the room when present or when among the authors of its newest entries
(GUEST_LOOKBACK): guests have no lasting identity to look up beyond that. Each mention is kept as the name
appears as an author (``grace``, ``bob (guest)``), which is what a reader's own name is compared with.
"""

import re
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db.models.functions import Lower

from .identity import GUEST_PREFIX
from .models import Message, Presence

# An @ at the start or after anything but a word character, then a name (what usernames and nicknames allow).
_MENTION = re.compile(r"(?<![\w@.+-])@([\w][\w.+-]*)")
# Sentence punctuation that a name never ends with in practice: "@grace." mentions grace.
_TRAILING = ".-+"
GUEST_SUFFIX = " (guest)"
# How many of a room's newest entries are searched for guest authors.
GUEST_LOOKBACK = 1000


def candidates(body: str) -> list[str]:
    """The names a body may mention, lowercased, in the order they first appear."""
    found: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        name = match.group(1).rstrip(_TRAILING).lower()
        if name:
            found.setdefault(name, None)
    return list(found)


def resolve(room_pk: int, names: Iterable[str]) -> dict[str, str]:
    """{lowercased candidate: the person's name as an author} for the candidates that name someone."""
    wanted = set(names)
    if not wanted:
        return {}
    users = get_user_model().objects.annotate(lower=Lower("username")).filter(lower__in=wanted)
    resolved = {lower: username for username, lower in users.values_list("username", "lower")}
    guests = {
        (name if name.startswith(GUEST_PREFIX) else f"{name}{GUEST_SUFFIX}"): name for name in wanted - resolved.keys()
    }
    if guests:
        present = Presence.objects.filter(room_id=room_pk).annotate(lower=Lower("name")).filter(lower__in=guests)
        oldest = list(
            Message.objects.filter(room_id=room_pk)
            .order_by("-seq")
            .values_list("seq", flat=True)[GUEST_LOOKBACK - 1 : GUEST_LOOKBACK]
        )
        authors = (
            Message.objects.filter(room_id=room_pk, seq__gte=oldest[0] if oldest else 0)
            .annotate(lower=Lower("author"))
            .filter(lower__in=guests)
            .distinct()
        )
        for author, lower in [*present.values_list("name", "lower"), *authors.values_list("author", "lower")]:
            resolved.setdefault(guests[lower], author)
    return resolved


def mentioned(body: str, resolved: dict[str, str]) -> list[str]:
    """The people ``body`` mentions, in order, given ``resolve``'s answer for its candidates."""
    return [resolved[name] for name in candidates(body) if name in resolved]
