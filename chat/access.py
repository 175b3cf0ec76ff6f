"""Who may do what in a room: asked by every path that changes one (the socket, the admin, the commands).

One place, so that private rooms and room roles ("Private rooms, direct messages...") extend one rule.
"""

from .identity import Identity
from .models import Room


def can_moderate(identity: Identity, room: Room) -> bool:
    """Whether ``identity`` may delete other people's messages in ``room``: staff, in every room."""
    return identity.is_staff
