"""What the ASGI server says about one socket's unsent data: the fan-out's signal that a reader is behind.

An ASGI ``send`` says nothing about flow control, but each server has it one step below:

- uvicorn (all three of its WebSocket implementations) is an asyncio protocol whose ``send`` is a bound method of
  it. Its transport counts the bytes it holds (``get_write_buffer_size``), and its ``send`` waits while the
  transport has paused it (above the high-water mark, until it drains to the low-water mark).
- daphne's ``send`` is ``partial(server.handle_reply, protocol)``, and ``handle_reply`` writes to the Twisted
  transport at once, never waiting: Twisted keeps whatever the socket does not take in ``dataBuffer`` plus
  ``_tempDataBuffer``, without limit. So under daphne the bound is only ever this count.

Anything else (channels' WebsocketCommunicator, another server) gets no outlet: the consumer then never calls
``send`` from the fan-out, only from its own task (chat.fanout_consumer), where a wait holds up nobody else.
"""

import struct
import sys
from typing import Any, Protocol


class Outlet(Protocol):
    # While the server holds at most this many bytes for the socket, a send returns without waiting.
    waits_above: int

    def buffered(self) -> int:
        """Bytes the server holds for this socket that the kernel has not taken yet."""
        ...

    def force_close(self, code: int) -> None:
        """Close behind what is buffered, without waiting for the socket to drain first."""
        ...

    def abort(self) -> None:
        """Drop the connection at once, unsent data and all."""
        ...


class AsyncioOutlet:
    """A socket served on an asyncio transport (uvicorn)."""

    __slots__ = ("transport", "waits_above")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        # At or below the low-water mark the transport has resumed its protocol (resume_writing is called as the
        # buffer drains to it), so send does not wait; above it, it may. uvloop's mark is 16 bytes, asyncio's 16 KiB.
        self.waits_above = int(transport.get_write_buffer_limits()[0])

    def buffered(self) -> int:
        return int(self.transport.get_write_buffer_size())

    def force_close(self, code: int) -> None:
        # What uvicorn's own keepalive timeout does to a socket that cannot drain: a close frame written behind
        # the buffered data (RFC 6455: unmasked, opcode 8, the code as two bytes), then a close of the transport
        # once that is flushed. uvicorn then sends no pings, and tells the application when the connection is gone.
        self.transport.write(b"\x88\x02" + struct.pack("!H", code))
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()


class TwistedOutlet:
    """A socket served on a Twisted transport (daphne)."""

    __slots__ = ("transport",)
    waits_above = sys.maxsize  # daphne's send writes to the transport's buffer and returns

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def buffered(self) -> int:
        t = self.transport
        return len(t.dataBuffer) - t.offset + t._tempDataLen

    def force_close(self, code: int) -> None:
        self.transport.loseConnection()  # never needed: daphne's send, the close frame included, never waits

    def abort(self) -> None:
        self.transport.abortConnection()


def outlet_for(send: Any) -> Outlet | None:
    """The outlet of the server behind this ASGI ``send``, or None when the server is not one we know."""
    owner = getattr(send, "__self__", None)  # uvicorn: the protocol's bound send
    transport = getattr(owner, "transport", None)
    if transport is not None and hasattr(transport, "get_write_buffer_size"):
        return AsyncioOutlet(transport)
    args = getattr(send, "args", ())  # daphne: partial(server.handle_reply, protocol)
    transport = getattr(args[0], "transport", None) if args else None
    for _ in range(3):  # daphne with TLS (-e ssl:...): Twisted's TLS protocol wraps the TCP transport
        if transport is None or hasattr(transport, "dataBuffer"):
            break
        transport = getattr(transport, "transport", None)
    if transport is not None and hasattr(transport, "_tempDataLen") and hasattr(transport, "dataBuffer"):
        return TwistedOutlet(transport)
    return None
