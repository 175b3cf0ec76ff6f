"""The baseline: chatsite's wire protocol as a bare ASGI broadcast, the seed's design, served by uvicorn.

A dict of rooms, each a list of sockets; an entry (a message, an edit or a reaction) gets the room's next seq, is
encoded once, and is sent in a loop to every socket in the room, then acked. Nothing is stored or checked (the last
50 entries are kept in memory for the join backlog), there is no channel layer and no framework: it is the floor
every chatsite figure is compared to.

    uvicorn bench.baseline:app --loop uvloop --http httptools
"""

import json
import random
from collections import deque
from datetime import UTC, datetime
from typing import Any

BACKLOG = 50

Send = Any  # the ASGI send callable


class Room:
    __slots__ = ("backlog", "last_seq", "sockets")

    def __init__(self) -> None:
        self.sockets: list[Send] = []
        self.last_seq = 0
        self.backlog: deque[str] = deque(maxlen=BACKLOG)


rooms: dict[str, Room] = {}


def _encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


async def _broadcast(room: Room, text: str, *, skip: Send | None = None) -> None:
    # The loop of sends: one encoded frame, written to every socket in turn.
    for socket in list(room.sockets):
        if socket is skip:
            continue
        try:
            await socket({"type": "websocket.send", "text": text})
        except Exception:  # noqa: S112 - a socket closing mid-broadcast is not the others' problem
            continue


def entry_frame(kind: str, room_name: str, seq: int, you: str, data: dict[str, Any]) -> dict[str, Any]:
    """The frame of a client's message, edit or react frame, as chatsite broadcasts it (docs/protocol.md)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    head = {"room": room_name, "seq": seq}
    if kind == "edit":
        return {"type": "edit", **head, "target": data["target"], "body": data["body"], "by": you, "edited_at": now}
    if kind == "react":
        fields = {"target": data["target"], "emoji": data["emoji"], "user": you, "on": data.get("on", True)}
        return {"type": "reaction", **head, **fields}
    return {
        "type": "message",
        **head,
        "author": you,
        "body": data["body"],
        "sent_at": now,
        "client_id": data.get("client_id"),
    }


async def _on_frame(room_name: str, room: Room, you: str, send: Send, text: str) -> None:
    data = json.loads(text)
    kind = data.get("type")
    if kind in ("message", "edit", "react"):
        room.last_seq += 1
        frame = _encode(entry_frame(kind, room_name, room.last_seq, you, data))
        room.backlog.append(frame)
        await _broadcast(room, frame)
        ack = {"type": "ack", "client_id": data.get("client_id"), "seq": room.last_seq}
        await send({"type": "websocket.send", "text": _encode(ack)})
    elif kind == "ping":
        await send({"type": "websocket.send", "text": _encode({"type": "pong", "last_seq": room.last_seq})})
    elif kind == "typing":
        await _broadcast(room, _encode({"type": "typing", "user": you}), skip=send)
    else:
        error = {"type": "error", "code": "unknown_type", "detail": "The baseline has no history."}
        await send({"type": "websocket.send", "text": _encode(error)})


async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return
    parts = scope["path"].strip("/").split("/")
    if len(parts) != 3 or parts[:2] != ["ws", "chat"]:
        await send({"type": "websocket.close", "code": 1000})
        return
    room_name = parts[2].lower()
    room = rooms.setdefault(room_name, Room())
    you = f"guest-{random.randint(1000, 9999)}"  # noqa: S311 - a display name, not a secret
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    hello = {"type": "hello", "room": room_name, "you": you, "online": [], "last_seq": room.last_seq}
    await send({"type": "websocket.send", "text": _encode(hello)})
    for text in list(room.backlog):
        await send({"type": "websocket.send", "text": text})
    room.sockets.append(send)
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") is not None:
                await _on_frame(room_name, room, you, send, event["text"])
    finally:
        room.sockets.remove(send)
