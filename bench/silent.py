"""Silent sockets: raw TCP WebSocket clients that finish the handshake and then stop reading, as a phone in a
tunnel or a frozen tab does; and, after the load, reading them again to see how each one ended.

They are plain sockets, not ``websockets`` clients, because a client library reads whatever arrives (and answers
the server's pings), which is exactly what such a socket does not do. The receive buffer is made small before
``connect``: Linux fixes the TCP window scale in the SYN, so a buffer shrunk afterwards would not shrink the window
the server sees. Server frames are never masked, so parsing them is a length header and a payload.
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
_MAX_HEAD = 16384  # a 101 response is a few hundred bytes: more means this is not one
_READ = 65536
# Read again, a socket gets a full-size buffer, as a phone out of the tunnel has. With the small one, the window it
# offers can stay under the sender's MSS (which Linux bounds by half the largest window seen), and the sender then
# sends only on its persist timer, ~10 KB/s: one socket in 50 did, once, and took minutes to drain 2.8 MB.
_CATCH_UP_RCVBUF = 1 << 20
OP_CONTINUATION, OP_TEXT, OP_CLOSE = 0, 1, 8

CAUGHT_UP = "caught up"


class HandshakeError(Exception):
    """The server did not answer the upgrade with a valid 101."""


class FrameError(Exception):
    """The byte stream is not server WebSocket frames."""


class Frames:
    """Server frames cut out of a byte stream: ``feed`` bytes, then take whole messages with ``next``."""

    def __init__(self, data: bytes = b"") -> None:
        self.buffer = bytearray(data)
        self.at = 0  # parsed up to here: the buffer is compacted once per feed, not once per frame
        self.fragments: list[bytes] = []
        self.opcode = OP_TEXT

    def feed(self, data: bytes) -> None:
        del self.buffer[: self.at]
        self.at = 0
        self.buffer += data

    def next(self) -> tuple[int, bytes] | None:
        """The next whole message as (opcode, payload), or None until more bytes arrive. Fragments are joined;
        control frames (close, ping, pong) come as they are, even between fragments, as RFC 6455 allows."""
        while (frame := self._frame()) is not None:
            final, opcode, payload = frame
            if opcode >= OP_CLOSE:
                return opcode, payload
            if opcode != OP_CONTINUATION:
                self.opcode = opcode
            self.fragments.append(payload)
            if final:
                message, self.fragments = b"".join(self.fragments), []
                return self.opcode, message
        return None

    def _frame(self) -> tuple[bool, int, bytes] | None:
        buffer, at = self.buffer, self.at
        if len(buffer) - at < 2:
            return None
        if buffer[at + 1] & 0x80:
            raise FrameError("a masked frame: servers never mask")
        length, start = buffer[at + 1] & 0x7F, at + 2
        if length == 126:
            if len(buffer) - at < 4:
                return None
            length, start = struct.unpack_from("!H", buffer, at + 2)[0], at + 4
        elif length == 127:
            if len(buffer) - at < 10:
                return None
            length, start = struct.unpack_from("!Q", buffer, at + 2)[0], at + 10
        if len(buffer) < start + length:
            return None
        self.at = start + length
        return bool(buffer[at] & 0x80), buffer[at] & 0x0F, bytes(buffer[start : start + length])


@dataclass
class Silent:
    """One silent socket: its TCP socket, what arrived with the 101 (kept for later), and what it has read."""

    sock: socket.socket
    frames: Frames
    rcvbuf: int  # the receive buffer the kernel gave (Linux doubles what is asked, for its bookkeeping)
    base: int | None = None  # the room's last seq at its hello: the messages to read are those after it
    seen: set[int] = field(default_factory=set)
    top: int = 0  # every seq from base + 1 through top has been read
    reason: str = ""  # of the close frame, if one came: says who closed it (uvicorn's keepalive, chatsite...)


def _request(url: str, origin: str, key: str) -> bytes:
    parts = urlsplit(url)
    lines = [
        f"GET {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin}",  # chatsite refuses a handshake whose Origin is not the site's own
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_response(sock: socket.socket, key: str) -> bytes:
    """Read the server's answer to the upgrade; return what followed it (the first frames, if any came along)."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            raise HandshakeError("no end of headers in the first 16 KiB")
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise HandshakeError("closed during the handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    if status.split(" ")[1:2] != ["101"]:
        raise HandshakeError(status)
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    accept = base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID, usedforsecurity=False).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        raise HandshakeError("wrong Sec-WebSocket-Accept")
    return rest


async def open_silent(url: str, origin: str, rcvbuf: int, timeout: float) -> Silent:
    """Connect to ``url`` (ws://host:port/path) with a ``rcvbuf``-byte receive buffer and do the upgrade by hand."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"silent sockets speak plain ws:// only, not {url}")
    family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: see the module's doc
        sock.setblocking(False)
        key = base64.b64encode(os.urandom(16)).decode()
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port or 80))
            await asyncio.get_running_loop().sock_sendall(sock, _request(url, origin, key))
            rest = await _read_response(sock, key)
    except BaseException:
        sock.close()
        raise
    return Silent(sock, Frames(rest), sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _on_text(silent: Silent, payload: bytes) -> None:
    data = json.loads(payload)
    kind = data.get("type")
    if kind == "hello" and silent.base is None:
        silent.base = silent.top = int(data.get("last_seq") or 0)
    elif kind == "message" and int(data["seq"]) > (silent.base or 0):
        silent.seen.add(int(data["seq"]))
        while silent.top + 1 in silent.seen:
            silent.top += 1


def _scan(silent: Silent, through: int) -> tuple[str, int | None] | None:
    """Take every whole message buffered; the socket's end state if one is reached, in stream order."""
    while (message := silent.frames.next()) is not None:
        opcode, payload = message
        if opcode == OP_TEXT:
            _on_text(silent, payload)
            if silent.top >= through:
                return CAUGHT_UP, None
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005  # 1005: no code given
            silent.reason = payload[2:].decode("utf-8", "replace")
            return f"closed {code}", code
    return None


async def _end(silent: Silent, through: int, deadline: float) -> tuple[str, int | None]:
    loop = asyncio.get_running_loop()
    while (end := _scan(silent, through)) is None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return "timeout", None
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(silent.sock, _READ), remaining)
        except TimeoutError:
            return "timeout", None
        except ConnectionResetError:  # the server gave up on the socket without a close frame (daphne's keepalive)
            return "reset", None
        except OSError as exc:
            return type(exc).__name__, None
        if not chunk:
            return "EOF", None
        silent.frames.feed(chunk)
    return end


async def catch_up(silent: Silent, through: int, deadline: float) -> dict[str, Any]:
    """Read the socket again until it has every message through seq ``through`` (caught up), a close frame
    arrives, the stream ends, or the loop's clock passes ``deadline``; then close it. Returns how it ended."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        silent.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _CATCH_UP_RCVBUF)
        end, code = await _end(silent, through, deadline)
    except (FrameError, ValueError):  # ValueError: a text frame that is not JSON
        end, code = "bad frame", None
    finally:
        silent.sock.close()
    return {
        "end": end,
        "code": code,
        "reason": silent.reason,
        "read": len(silent.seen),
        "top": silent.top,
        "seconds": loop.time() - started,
    }
