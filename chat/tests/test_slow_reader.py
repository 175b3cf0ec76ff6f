"""A socket that stops reading, on a real server (uvicorn in a subprocess, as deployed, and daphne): it holds up
nobody, the server holds a bounded amount for it, and it is caught up from the log once it reads, or closed with
4008.

On the test run's own database and channel layer: SQLite and the in-memory layer under ``make test``, PostgreSQL and
Redis under ``make test-services``. The silent sockets are raw TCP with a 4 KiB receive buffer that finished the
WebSocket handshake and then never read (bench/silent.py, shared with ``make bench``'s slow scenario).
"""

import asyncio
import time
from typing import Any

from bench.silent import CAUGHT_UP, Silent, catch_up, open_silent

from .helpers import ChatTransactionTestCase, eventually
from .servers import Server
from .wsclient import ChatClient

ROOM = "slow"
# Nearly 2000 four-byte characters (the limit, with the send time in front): 8 KB frames, so that the few MB the
# kernel buffers for a silent socket fill within seconds.
BODY = "\U0001f600" * 1975
MESSAGES = 1000  # 8 MB: more than the kernel buffers for a silent socket here (tcp_wmem's 4 MB)
WINDOW = 20  # messages the sender keeps unacknowledged
BEHIND = "a socket fell behind"
GIVEN_UP = "closing a socket that was behind"


class TimedClient(ChatClient):
    """A client that notes when each message first arrived, by its body's send time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delays: list[float] = []

    def _see(self, message: dict[str, Any]) -> None:
        if message["seq"] not in self.view:
            sent = float(message["body"].split(" ", 1)[0])
            self.delays.append(time.time() - sent)
        super()._see(message)


class SlowReaderTestCase(ChatTransactionTestCase):
    server_env: dict[str, str] = {}
    daphne = False

    def setUp(self) -> None:
        env = {"CHAT_MAX_SOCKETS_PER_CLIENT": "0", **self.server_env}
        self.server = Server(env=env, daphne=self.daphne).start()
        self.addCleanup(self.server.stop)

    async def silent(self) -> Silent:
        return await open_silent(f"ws://127.0.0.1:{self.server.port}/ws/chat/{ROOM}/", self.server.url, 4096, 10)

    async def post_all(self, sender: ChatClient) -> None:
        """Post MESSAGES bodies, keeping WINDOW of them unacknowledged, until every one is acked."""
        for _ in range(MESSAGES):
            await eventually(lambda: len(sender.outbox) < WINDOW, timeout=30, interval=0.005, what="acks")
            await sender.send(f"{time.time()} {BODY}")
        await eventually(lambda: not sender.outbox, timeout=30, what="the last acks")


class SilentReaderTests(SlowReaderTestCase):
    async def test_silent_sockets_hold_up_nobody_and_are_caught_up_from_the_log_once_they_read(self) -> None:
        silent = [await self.silent() for _ in range(3)]
        reader, sender = TimedClient(room=ROOM), ChatClient(room=ROOM)
        await reader.connect(self.server.url)
        await sender.connect(self.server.url)
        try:
            await self.post_all(sender)
            await eventually(lambda: len(reader.view) == MESSAGES, timeout=10, what="the reader's every message")
            self.assertIn(BEHIND, self.server.log(), "the silent sockets never reached their bound")
            # The reader was never made to wait for them: each stalled it for 2 s before, one after another.
            self.assertLess(max(reader.delays), 2.0)
            self.assertEqual((reader.duplicates, reader.contiguous), (0, MESSAGES))
            loop = asyncio.get_running_loop()
            ends = [await catch_up(s, MESSAGES, loop.time() + 30) for s in silent]
        finally:
            for client in (reader, sender):
                await client.close()
        self.assertEqual([(end["end"], end["read"]) for end in ends], [(CAUGHT_UP, MESSAGES)] * 3)


class SilentReaderOnDaphneTests(SilentReaderTests):
    """The same under daphne (``make run``'s server), whose send never waits: the bound is Twisted's buffer."""

    daphne = True


class GivenUpReaderTests(SlowReaderTestCase):
    # The connection is dropped this long after its close frame was written: long enough for this test to notice
    # the give-up in the log and read everything buffered before it on a busy 2-core machine (2 s was not).
    server_env = {"CHAT_SEND_BEHIND_SECONDS": "5"}

    async def test_a_socket_behind_for_longer_than_the_limit_is_closed_with_4008(self) -> None:
        silent = await self.silent()
        sender = ChatClient(room=ROOM)
        await sender.connect(self.server.url)
        try:
            await self.post_all(sender)
            await eventually(lambda: GIVEN_UP in self.server.log(), timeout=20, what="the server giving up")
            # Read now: what was buffered for it, then its close frame.
            end = await catch_up(silent, MESSAGES, asyncio.get_running_loop().time() + 30)
        finally:
            await sender.close()
        self.assertEqual((end["end"], end["code"]), ("closed 4008", 4008))
