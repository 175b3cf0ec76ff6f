"""The wire protocol: frame and error types, parsing of client frames, encoding of server frames.

Every frame is a JSON object with a ``type``. See docs/protocol.md. Parsing turns untrusted text into one of the
typed client frames below or raises ClientError; it never raises anything else.
"""

import json
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from .exceptions import ClientError

# Client frame types.
MESSAGE: Final = "message"
TYPING: Final = "typing"
PING: Final = "ping"
HISTORY: Final = "history"
EDIT: Final = "edit"
DELETE: Final = "delete"
REACT: Final = "react"
VERSIONS: Final = "versions"
READ: Final = "read"
MODERATE: Final = "moderate"
REPORT: Final = "report"
# Server frame types of log entries other than messages (a message entry's frame is MESSAGE).
REACTION: Final = "reaction"
MODERATION: Final = "moderation"

# What a moderate frame may do, and which of those name a person.
MODERATION_ACTIONS: Final = ("kick", "ban", "unban", "mute", "unmute", "slow_mode")
PERSON_ACTIONS: Final = ("kick", "ban", "unban", "mute", "unmute")
MAX_REPORT_REASON: Final = 500
# The longest ban, mute or slow mode a frame may ask for: a year. Longer is "until lifted" (no seconds).
MAX_MODERATION_SECONDS: Final = 365 * 24 * 3600

# Error codes.
BAD_JSON: Final = "bad_json"
BAD_FRAME: Final = "bad_frame"
UNKNOWN_TYPE: Final = "unknown_type"
EMPTY: Final = "empty"
TOO_LONG: Final = "too_long"
BAD_TEXT: Final = "bad_text"
RATE_LIMITED: Final = "rate_limited"
UNAVAILABLE: Final = "unavailable"
NOT_FOUND: Final = "not_found"
FORBIDDEN: Final = "forbidden"
TOO_LATE: Final = "too_late"
GONE: Final = "gone"
BAD_REACTION: Final = "bad_reaction"
MUTED: Final = "muted"
SLOW_MODE: Final = "slow_mode"
BAD_USER: Final = "bad_user"
# The HTTP API's own (docs/api.md): a body that is not what the endpoint takes, a bad or taken room name, a
# change a direct room cannot have, the last owner leaving, no identity, no CSRF token.
BAD_REQUEST: Final = "bad_request"
BAD_ROOM: Final = "bad_room"
NAME_TAKEN: Final = "name_taken"
DIRECT_ROOM: Final = "direct_room"
LAST_OWNER: Final = "last_owner"
LOGIN_REQUIRED: Final = "login_required"
CSRF_FAILED: Final = "csrf_failed"

# Close codes. Daphne lets an application close only with 1000 or 3000-4999, so ours live in 4000-4999.
CLOSE_NORMAL: Final = 1000
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_LOGIN_REQUIRED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_ROOM_NOT_FOUND: Final = 4404
CLOSE_FRAME_TOO_BIG: Final = 4009
CLOSE_TOO_SLOW: Final = 4008
CLOSE_TOO_MANY_SOCKETS: Final = 4429

MAX_CLIENT_ID_LENGTH: Final = 64
_CLIENT_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CLIENT_ID_LENGTH}}}")

# Characters a message may not contain: NUL and other C0/C1 controls (newline and tab are text), and lone
# surrogates, which JSON can spell (\ud800) but neither UTF-8 nor PostgreSQL can store.
_ALLOWED_CONTROLS = {"\n", "\t"}


@dataclass(frozen=True, slots=True)
class MessageFrame:
    body: str
    client_id: str | None
    reply_to: int | None = None
    type: Literal["message"] = MESSAGE


@dataclass(frozen=True, slots=True)
class EditFrame:
    target: int
    body: str
    client_id: str | None
    type: Literal["edit"] = EDIT


@dataclass(frozen=True, slots=True)
class DeleteFrame:
    target: int
    client_id: str | None
    type: Literal["delete"] = DELETE


@dataclass(frozen=True, slots=True)
class ReactFrame:
    target: int
    emoji: str
    on: bool
    client_id: str | None
    type: Literal["react"] = REACT


@dataclass(frozen=True, slots=True)
class VersionsFrame:
    target: int
    type: Literal["versions"] = VERSIONS


@dataclass(frozen=True, slots=True)
class ReadFrame:
    seq: int
    type: Literal["read"] = READ


@dataclass(frozen=True, slots=True)
class ModerateFrame:
    action: str
    user: str
    seconds: int | None
    client_id: str | None
    type: Literal["moderate"] = MODERATE


@dataclass(frozen=True, slots=True)
class ReportFrame:
    target: int
    reason: str
    client_id: str | None = None
    type: Literal["report"] = REPORT


@dataclass(frozen=True, slots=True)
class TypingFrame:
    type: Literal["typing"] = TYPING


@dataclass(frozen=True, slots=True)
class PingFrame:
    type: Literal["ping"] = PING


@dataclass(frozen=True, slots=True)
class HistoryFrame:
    before: int
    limit: int
    type: Literal["history"] = HISTORY


ClientFrame = (
    MessageFrame
    | EditFrame
    | DeleteFrame
    | ReactFrame
    | VersionsFrame
    | ReadFrame
    | ModerateFrame
    | ReportFrame
    | TypingFrame
    | PingFrame
    | HistoryFrame
)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def decode(text: str) -> dict[str, Any]:
    """Decode one text frame into a JSON object, or raise ClientError."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON, NaN/Infinity and integers too long to convert; RecursionError,
        # nesting too deep for the decoder.
        raise ClientError(BAD_JSON, "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ClientError(BAD_FRAME, "A frame must be a JSON object.")
    return data


def clean_body(body: object, max_length: int) -> str:
    """Validate and normalise a message body: NFC, trimmed, not empty, at most max_length code points."""
    if not isinstance(body, str):
        raise ClientError(BAD_FRAME, "'body' must be a string.")
    for char in body:
        if char in _ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category == "Cc" or category == "Cs":
            raise ClientError(BAD_TEXT, "The message contains a control character or an invalid code point.")
    body = unicodedata.normalize("NFC", body).strip()
    if not body:
        raise ClientError(EMPTY, "The message is empty.")
    if len(body) > max_length:
        raise ClientError(TOO_LONG, f"The message is longer than {max_length} characters.")
    return body


# The longest name a person goes by: a username (Django's limit) or a guest's "NICK (guest)".
MAX_NAME_LENGTH: Final = 150


def clean_name(name: object, field: str = "user") -> str:
    """A person's name from a frame or a request: text without control characters or lone surrogates (which no
    database could even look up), NFC, trimmed, 1-150 characters. Whether anyone goes by it is the caller's."""
    if not isinstance(name, str):
        raise ClientError(BAD_FRAME, f"'{field}' must name a person.")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise ClientError(BAD_FRAME, f"'{field}' contains a control character or an invalid code point.")
    name = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ClientError(BAD_FRAME, f"'{field}' must be 1-{MAX_NAME_LENGTH} characters.")
    return name


def clean_client_id(client_id: object) -> str | None:
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise ClientError(BAD_FRAME, f"'client_id' must be 1-{MAX_CLIENT_ID_LENGTH} ASCII letters, digits, '-' or '_'.")
    return client_id


def _positive_int(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    # bool is an int in Python; true is not a number on the wire.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ClientError(BAD_FRAME, f"'{key}' must be a positive whole number.")
    return value


# The largest seq a database column holds (a signed 64-bit integer): a larger one names no entry, and SQLite could
# not even compare it.
MAX_SEQ: Final = 2**63 - 1


def _seq(data: dict[str, Any], key: str) -> int:
    value = _positive_int(data, key)
    if value > MAX_SEQ:
        raise ClientError(BAD_FRAME, f"'{key}' must be a seq: at most {MAX_SEQ}.")
    return value


def _reply_to(data: dict[str, Any]) -> int | None:
    return None if data.get("reply_to") is None else _seq(data, "reply_to")


def clean_emoji(emoji: object, reactions: Collection[str]) -> str:
    if not isinstance(emoji, str):
        raise ClientError(BAD_FRAME, "'emoji' must be a string.")
    if emoji not in reactions:
        raise ClientError(BAD_REACTION, f"Reactions are {' '.join(reactions)}.")
    return emoji


def _on(data: dict[str, Any]) -> bool:
    value = data.get("on", True)
    if not isinstance(value, bool):
        raise ClientError(BAD_FRAME, "'on' must be true or false.")
    return value


def parse(text: str, *, max_length: int, history_max: int, reactions: Collection[str] = ()) -> ClientFrame:
    """Parse one client text frame into a typed frame, or raise ClientError. ``reactions`` are the emoji a
    ``react`` frame may carry (CHAT_REACTIONS)."""
    data = decode(text)
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        raise ClientError(BAD_FRAME, "A frame needs a string 'type'.")
    if frame_type == MESSAGE:
        return MessageFrame(
            body=clean_body(data.get("body"), max_length),
            client_id=clean_client_id(data.get("client_id")),
            reply_to=_reply_to(data),
        )
    if frame_type == EDIT:
        return EditFrame(
            target=_seq(data, "target"),
            body=clean_body(data.get("body"), max_length),
            client_id=clean_client_id(data.get("client_id")),
        )
    if frame_type == DELETE:
        return DeleteFrame(target=_seq(data, "target"), client_id=clean_client_id(data.get("client_id")))
    if frame_type == REACT:
        return ReactFrame(
            target=_seq(data, "target"),
            emoji=clean_emoji(data.get("emoji"), reactions),
            on=_on(data),
            client_id=clean_client_id(data.get("client_id")),
        )
    if frame_type == VERSIONS:
        return VersionsFrame(target=_seq(data, "target"))
    if frame_type == READ:
        seq = data.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
            raise ClientError(BAD_FRAME, "'seq' must be a whole number >= 0.")
        return ReadFrame(seq=seq)
    if frame_type == MODERATE:
        return _moderate(data)
    if frame_type == REPORT:
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise ClientError(BAD_FRAME, "'reason' must be a string.")
        reason = unicodedata.normalize("NFC", reason).strip()
        if len(reason) > MAX_REPORT_REASON or any(unicodedata.category(c) in ("Cc", "Cs") for c in reason if c != "\n"):
            raise ClientError(BAD_FRAME, f"'reason' must be text of at most {MAX_REPORT_REASON} characters.")
        return ReportFrame(target=_seq(data, "target"), reason=reason, client_id=clean_client_id(data.get("client_id")))
    if frame_type == TYPING:
        return TypingFrame()
    if frame_type == PING:
        return PingFrame()
    if frame_type == HISTORY:
        limit = _positive_int(data, "limit", default=50)
        if limit > history_max:
            raise ClientError(BAD_FRAME, f"'limit' must be at most {history_max}.")
        return HistoryFrame(before=_positive_int(data, "before"), limit=limit)
    raise ClientError(UNKNOWN_TYPE, "Unknown frame type.")


def _moderate(data: dict[str, Any]) -> ModerateFrame:
    action = data.get("action")
    if action not in MODERATION_ACTIONS:
        raise ClientError(BAD_FRAME, f"'action' must be one of {', '.join(MODERATION_ACTIONS)}.")
    seconds = data.get("seconds")
    if seconds is not None and (
        not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_MODERATION_SECONDS
    ):
        raise ClientError(BAD_FRAME, f"'seconds' must be a whole number from 0 to {MAX_MODERATION_SECONDS}.")
    user = clean_name(data.get("user")) if action in PERSON_ACTIONS else ""
    if action not in PERSON_ACTIONS and seconds is None:
        raise ClientError(BAD_FRAME, "Slow mode needs 'seconds' (0 turns it off).")
    return ModerateFrame(
        action=action,
        user=user,
        seconds=seconds or None if action in PERSON_ACTIONS else seconds,
        client_id=clean_client_id(data.get("client_id")),
    )


def encode(frame: dict[str, Any]) -> str:
    """Encode one server frame. Compact separators: every byte is paid once per recipient."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def hello(
    *,
    room: str,
    you: str,
    online: list[str],
    last_seq: int,
    last_read: int = 0,
    moderate: bool = False,
    muted: bool = False,
    muted_until: datetime | None = None,
    slow_mode: int = 0,
) -> dict[str, Any]:
    """The first frame: who the socket is, the room's last seq, and what its person may do there now (later
    moderation entries change it: the page folds them in)."""
    return {
        "type": "hello",
        "room": room,
        "you": you,
        "online": online,
        "last_seq": last_seq,
        "last_read": last_read,
        "moderate": moderate,
        "muted": muted,
        "muted_until": _iso_or_none(muted_until),
        "slow_mode": slow_mode,
    }


def read(*, room: str, seq: int) -> dict[str, Any]:
    """How far the person has read the room: every entry up to ``seq``."""
    return {"type": READ, "room": room, "seq": seq}


def online(*, online: list[str]) -> dict[str, Any]:
    return {"type": "online", "online": online}


def ack(*, client_id: str | None, seq: int | None) -> dict[str, Any]:
    return {"type": "ack", "client_id": client_id, "seq": seq}


def error(*, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail, **extra}


def pong(*, last_seq: int) -> dict[str, Any]:
    return {"type": "pong", "last_seq": last_seq}


def history(*, before: int, messages: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"type": "history", "before": before, "messages": messages, "has_more": has_more}


PresenceKind = Literal["join", "leave", "typing"]


def presence(kind: PresenceKind, *, user: str) -> dict[str, Any]:
    return {"type": kind, "user": user}


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso_utc(moment)


def message(
    *,
    room: str,
    seq: int,
    author: str,
    body: str,
    sent_at: datetime,
    client_id: str | None,
    reply_to: int | None = None,
    edited_at: datetime | None = None,
    deleted: bool = False,
    reactions: dict[str, list[str]] | None = None,
    state_seq: int | None = None,
    mentions: list[str] | None = None,
) -> dict[str, Any]:
    """A message with its state when the frame is made; a deleted one has no body, reactions or mentions."""
    return {
        "type": MESSAGE,
        "room": room,
        "seq": seq,
        "author": author,
        "body": "" if deleted else body,
        "sent_at": iso_utc(sent_at),
        "client_id": client_id,
        "reply_to": reply_to,
        "edited_at": _iso_or_none(edited_at),
        "deleted": deleted,
        "reactions": {} if deleted or reactions is None else reactions,
        "state_seq": seq if state_seq is None else state_seq,
        "mentions": [] if deleted or mentions is None else mentions,
    }


def edit(
    *,
    room: str,
    seq: int,
    target: int,
    body: str,
    by: str,
    edited_at: datetime,
    mentions: list[str] | None = None,
    new_mentions: list[str] | None = None,
) -> dict[str, Any]:
    """An edit: the new body, who it mentions, and who of them no earlier version of the message mentioned (the
    people to notify)."""
    return {
        "type": EDIT,
        "room": room,
        "seq": seq,
        "target": target,
        "body": body,
        "by": by,
        "edited_at": iso_utc(edited_at),
        "mentions": mentions or [],
        "new_mentions": new_mentions or [],
    }


def delete(*, room: str, seq: int, target: int, by: str, deleted_at: datetime) -> dict[str, Any]:
    return {"type": DELETE, "room": room, "seq": seq, "target": target, "by": by, "deleted_at": iso_utc(deleted_at)}


def reaction(*, room: str, seq: int, target: int, emoji: str, user: str, on: bool) -> dict[str, Any]:
    return {"type": REACTION, "room": room, "seq": seq, "target": target, "emoji": emoji, "user": user, "on": on}


def moderation(
    *, room: str, seq: int, action: str, user: str | None, by: str, seconds: int | None, at: datetime
) -> dict[str, Any]:
    """A moderation action: on ``user`` (None for slow mode), for ``seconds`` (None: until lifted)."""
    return {
        "type": MODERATION,
        "room": room,
        "seq": seq,
        "action": action,
        "user": user,
        "by": by,
        "seconds": seconds,
        "at": iso_utc(at),
    }


def versions(*, target: int, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer to ``versions``: the bodies a message had, oldest first, each with when it was set."""
    return {"type": VERSIONS, "target": target, "versions": versions}
