"""Reading a socket's unsent bytes from the ASGI server behind its send: uvicorn's asyncio transport, daphne's
Twisted one, and nothing for a server we do not know."""

import asyncio
import functools
import socket
from typing import Any

from django.test import SimpleTestCase
from twisted.internet.abstract import FileDescriptor

from chat.outlets import AsyncioOutlet, TwistedOutlet, outlet_for


class AsgiProtocol(asyncio.Protocol):
    """Shaped like uvicorn's WebSocket protocols: an asyncio protocol whose bound ``send`` is the ASGI send."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    async def send(self, message: dict[str, Any]) -> None:
        self.transport.write(message["text"].encode())


class TwistedTransport(FileDescriptor):
    """Twisted's own write buffering, without a reactor to flush it: what a socket that never reads leaves."""

    def __init__(self) -> None:
        super().__init__(reactor=object())  # type: ignore[arg-type]
        self.connected = True

    def startWriting(self) -> None:
        pass  # no reactor: nothing is flushed


class DaphneProtocol:
    def __init__(self) -> None:
        self.transport = TwistedTransport()


async def handle_reply(protocol: DaphneProtocol, message: dict[str, Any]) -> None:
    protocol.transport.write(message["text"].encode())


class OutletForTests(SimpleTestCase):
    async def test_a_send_bound_to_an_asyncio_protocol_gets_the_transports_buffer(self) -> None:
        silent, far_end = socket.socketpair()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.connect_accepted_socket(AsgiProtocol, far_end)
            outlet = outlet_for(protocol.send)
            self.assertIsInstance(outlet, AsyncioOutlet)
            assert outlet is not None
            for _ in range(200):  # far more than the kernel takes for a peer that never reads
                await protocol.send({"type": "websocket.send", "text": "x" * 8192})
            self.assertGreater(outlet.buffered(), 0)
            self.assertEqual(outlet.buffered(), transport.get_write_buffer_size())
            self.assertEqual(outlet.waits_above, transport.get_write_buffer_limits()[0])
            transport.abort()
        finally:
            silent.close()

    async def test_a_forced_close_reaches_the_reader_behind_what_was_buffered(self) -> None:
        reader, far_end = socket.socketpair()
        try:
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.connect_accepted_socket(AsgiProtocol, far_end)
            outlet = outlet_for(protocol.send)
            assert outlet is not None
            await protocol.send({"type": "websocket.send", "text": "data"})
            outlet.force_close(4008)
            reader.setblocking(False)
            received = b""
            while not received.endswith(b"\x88\x02\x0f\xa8"):  # a close frame, code 4008
                received += await asyncio.wait_for(loop.sock_recv(reader, 1024), 2)
            self.assertEqual(received, b"data\x88\x02\x0f\xa8")
            self.assertTrue(transport.is_closing())
        finally:
            reader.close()

    async def test_daphnes_partial_send_gets_what_twisted_holds_unsent(self) -> None:
        protocol = DaphneProtocol()
        outlet = outlet_for(functools.partial(handle_reply, protocol))
        self.assertIsInstance(outlet, TwistedOutlet)
        assert outlet is not None
        for size in (100, 250):
            await handle_reply(protocol, {"type": "websocket.send", "text": "x" * size})
        self.assertEqual(outlet.buffered(), 350)

    def test_what_twisted_has_half_written_counts_only_its_rest(self) -> None:
        transport = TwistedTransport()
        transport.dataBuffer, transport.offset = b"x" * 1000, 400
        transport.write(b"y" * 50)
        self.assertEqual(TwistedOutlet(transport).buffered(), 650)

    def test_a_send_of_a_server_we_do_not_know_gets_no_outlet(self) -> None:
        async def send(message: dict[str, Any]) -> None: ...

        self.assertIsNone(outlet_for(send))
