"""A TCP relay for the fault tests: forwards a loopback port to a server, and can stop forwarding silently.

Stopping is a network that goes quiet, not one that fails: no byte moves either way, no FIN and no RST reach
either end, and the kernel's buffers fill as they would behind a dead route. Each end finds out only through its
own timeouts (the server's WebSocket pings). When forwarding resumes, whatever was held back is delivered, and an
end that closed meanwhile has its close passed on, as TCP would once the route is back.
"""

import asyncio
import contextlib

from .servers import free_port


class Relay:
    def __init__(self, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> "Relay":
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        return self

    def stop_forwarding(self) -> None:
        """From now on, nothing crosses the relay in either direction, and nobody is told."""
        self._flowing.clear()

    def resume_forwarding(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        """Close the listening socket and every relayed connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.close()
            return
        self.connections += 1
        for reader, writer in ((client_reader, server_writer), (server_reader, client_writer)):
            pump = asyncio.ensure_future(self._pump(reader, writer))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                # Read while flowing, but held here (not written) if forwarding stopped meanwhile.
                await self._flowing.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.close()
