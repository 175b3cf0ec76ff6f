"""The channel-layer events of a room's group, and their builders: defined once, for the write path, presence and
the fan-out alike.

Each event carries its frame already encoded in ``text``, so a broadcast encodes JSON once, not once per recipient.
A consumer handles them by Channels' naming rule: ``chat.message`` is ``chat_message``.
"""

from typing import Any

from . import protocol

MESSAGE_EVENT = "chat.message"  # a stored message, with its "seq"
MESSAGES_EVENT = "chat.messages"  # several stored messages of one commit, oldest first: "events", each a MESSAGE_EVENT
PRESENCE_EVENT = "chat.presence"  # a join, leave or typing of "user"
READ_EVENT = "chat.read"  # a read marker that moved: only for the sockets of "person" (chat.store.who's key)
REVOKE_EVENT = "chat.revoke"  # "person" may no longer read the room (they left it): their sockets close


def message_event(payload: dict[str, Any], *, revokes: str | None = None) -> dict[str, Any]:
    """The event of one stored entry, from its frame (protocol.message). A kick or ban ``revokes`` one person's
    access (chat.store.who's key): their sockets close on it instead of sending it."""
    event = {"type": MESSAGE_EVENT, "seq": payload["seq"], "text": protocol.encode(payload)}
    if revokes is not None:
        event["revokes"] = revokes
    return event


def messages_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    """One room's messages of one commit as a single event: it arrives whole, so nothing lands between them."""
    return events[0] if len(events) == 1 else {"type": MESSAGES_EVENT, "events": events}


def presence_event(kind: protocol.PresenceKind, user: str) -> dict[str, Any]:
    """A join, leave or typing of ``user``."""
    return {"type": PRESENCE_EVENT, "user": user, "text": protocol.encode(protocol.presence(kind, user=user))}


def revoke_event(person: str) -> dict[str, Any]:
    """The person lost the room: their sockets close with 4403. Sent alone when they left it; the fan-out makes one
    from a kick's or ban's entry event (message_event's ``revokes``) before handing that entry out."""
    return {"type": REVOKE_EVENT, "person": person}


def read_event(room: str, person: str, seq: int) -> dict[str, Any]:
    """The person's marker in the room moved to ``seq``: for every socket of theirs in the room."""
    return {
        "type": READ_EVENT,
        "person": person,
        "marker": seq,  # so that a socket that skips the frame can send the newest it was told once caught up
        "text": protocol.encode(protocol.read(room=room, seq=seq)),
    }
