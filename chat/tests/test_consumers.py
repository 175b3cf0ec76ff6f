"""The room socket, driven through the real ASGI application (origin check, auth, routing, consumer)."""

import asyncio
import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client, TransactionTestCase, override_settings
from uvicorn.protocols.utils import ClientDisconnected

from chat import consumers, fanout, fanout_consumer, presence, protocol, selectors, services
from chat.models import Message, Presence, Room
from chat.rooms import group_name
from chat.services import message_create, room_get_or_create
from chat.store import store_all
from chatsite.asgi import application

from .helpers import eventually
from .test_fanout import FakeOutlet

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")
TIMEOUT = 3


class Socket:
    """A WebsocketCommunicator that speaks JSON frames and is always disconnected at the end of a test."""

    hello: dict[str, Any]

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.communicator = WebsocketCommunicator(application, path, headers=headers)

    async def send(self, frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        return await self.communicator.receive_json_from(timeout=TIMEOUT)

    async def receive_type(self, frame_type: str) -> dict[str, Any]:
        """The next frame of one type, skipping others (join/leave/typing noise) on the way."""
        while True:
            frame = await self.receive()
            if frame["type"] == frame_type:
                return frame

    async def receive_each(self, *frame_types: str) -> dict[str, dict[str, Any]]:
        """The next frame of each type, in whatever order they come (an ack and the sender's own copy of its
        message may arrive either way round)."""
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(frame_types):
            frame = await self.receive()
            if frame["type"] in frame_types:
                found.setdefault(frame["type"], frame)
        return found

    async def assert_silent(self) -> None:
        assert await self.communicator.receive_nothing(timeout=0.2), "expected no frame"

    async def assert_no_messages(self) -> None:
        """No message frame arrives. Presence frames may: with the pub/sub layer a join published just before
        this socket subscribed can still reach it."""
        while not await self.communicator.receive_nothing(timeout=0.2):
            frame = await self.receive()
            assert frame["type"] in ("join", "leave"), f"unexpected {frame}"


def _closing_sockets(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def run(self: "ConsumerTestCase") -> None:
        self.opened = []
        try:
            await test(self)
        finally:
            for socket in reversed(self.opened):
                await socket.communicator.disconnect()

    return run


class ConsumerTestCase(TransactionTestCase):
    """Every async test's sockets are disconnected when it ends, pass or fail, so no consumer outlives it."""

    opened: list[Socket]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("test_") and inspect.iscoroutinefunction(value):
                setattr(cls, name, _closing_sockets(value))

    async def open(
        self, room: str = "lobby", *, query: str = "", cookie: str | None = None, origin: tuple[bytes, bytes] = ORIGIN
    ) -> Socket:
        """Connect and read the hello frame (kept as ``socket.hello``)."""
        socket = await self.connect(f"/ws/chat/{room}/{query}", cookie=cookie, origin=origin)
        connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        self.assertTrue(connected)
        socket.hello = await socket.receive()
        self.assertEqual(socket.hello["type"], "hello")
        return socket

    async def connect(self, path: str, *, cookie: str | None = None, origin: tuple[bytes, bytes] = ORIGIN) -> Socket:
        """A socket not yet connected; it is disconnected when the test ends."""
        headers = [origin, HOST]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        socket = Socket(path, headers)
        self.opened.append(socket)
        return socket

    async def login_cookie(self, username: str) -> str:
        def log_in() -> str:
            user, _ = get_user_model().objects.get_or_create(username=username)
            client = Client()
            client.force_login(user)
            return f"sessionid={client.cookies['sessionid'].value}"

        return await sync_to_async(log_in)()

    async def stored(self) -> list[tuple[str, int, str]]:
        return await sync_to_async(lambda: list(Message.objects.values_list("room__name", "seq", "body")))()


class FanOutTests(ConsumerTestCase):
    async def test_the_first_frame_is_hello_with_name_online_list_and_last_seq(self) -> None:
        alice = await self.open("Lobby", cookie=await self.login_cookie("alice"))
        self.assertEqual(
            alice.hello,
            {
                "type": "hello",
                "room": "lobby",
                "you": "alice",
                "online": ["alice"],
                "last_seq": 0,
                "last_read": 0,
                "moderate": False,
                "muted": False,
                "muted_until": None,
                "slow_mode": 0,
            },
        )

    async def test_a_message_reaches_everyone_in_the_room_and_nobody_elsewhere(self) -> None:
        sender = await self.open("lobby")
        listener = await self.open("lobby")
        elsewhere = await self.open("other")
        await sender.receive_type("join")

        await sender.send({"type": "message", "body": "hello", "client_id": "c1"})

        own = await sender.receive_each("ack", "message")
        self.assertEqual(own["ack"], {"type": "ack", "client_id": "c1", "seq": 1})
        for frame in (own["message"], await listener.receive_type("message")):
            self.assertEqual((frame["room"], frame["seq"], frame["body"]), ("lobby", 1, "hello"))
            self.assertEqual(frame["author"], sender.hello["you"])
            self.assertTrue(frame["sent_at"].endswith("Z"))
        await elsewhere.assert_silent()

    async def test_the_server_sets_the_author_whatever_the_frame_says(self) -> None:
        socket = await self.open(cookie=await self.login_cookie("alice"))
        await socket.send({"type": "message", "body": "hi", "author": "mallory", "client_id": "c1"})
        frame = await socket.receive_type("message")
        self.assertEqual(frame["author"], "alice")

    async def test_a_message_posted_outside_the_socket_reaches_connected_clients(self) -> None:
        socket = await self.open("news")
        await sync_to_async(lambda: message_create(room=room_get_or_create("news"), author="system", body="hi"))()
        frame = await socket.receive_type("message")
        self.assertEqual((frame["author"], frame["body"], frame["seq"]), ("system", "hi", 1))

    async def test_a_live_event_already_covered_by_the_backlog_is_not_forwarded(self) -> None:
        await sync_to_async(lambda: message_create(room=room_get_or_create("lobby"), author="a", body="one"))()
        socket = await self.open("lobby")
        await socket.receive_type("message")  # seq 1 in the backlog
        # A late broadcast of seq 1 (committed before the socket read its backlog) must not show it twice.
        await get_channel_layer().group_send(
            group_name("lobby"), {"type": "chat.message", "seq": 1, "text": '{"type":"message","seq":1}'}
        )
        await socket.assert_silent()

    async def test_a_batch_event_reaches_a_socket_as_its_messages_in_order(self) -> None:
        socket = await self.open("lobby")
        events = [{"type": "chat.message", "seq": n, "text": f'{{"type":"message","seq":{n}}}'} for n in (1, 2, 3)]
        await get_channel_layer().group_send(group_name("lobby"), {"type": "chat.messages", "events": events})
        self.assertEqual([(await socket.receive_type("message"))["seq"] for _ in range(3)], [1, 2, 3])


class ResumeTests(ConsumerTestCase):
    async def post(self, room: str, count: int) -> None:
        def write() -> None:
            target = room_get_or_create(room)
            for index in range(count):
                message_create(room=target, author="system", body=f"m{index + 1}")

        await sync_to_async(write)()

    @override_settings(CHAT_BACKLOG_LIMIT=5)
    async def test_a_new_connection_gets_the_newest_messages_oldest_first(self) -> None:
        await self.post("lobby", 8)
        socket = await self.open("lobby")
        self.assertEqual(socket.hello["last_seq"], 8)
        seqs = [(await socket.receive())["seq"] for _ in range(5)]
        self.assertEqual(seqs, [4, 5, 6, 7, 8])
        await socket.assert_silent()

    async def test_resuming_after_a_seq_sends_exactly_the_later_messages(self) -> None:
        await self.post("lobby", 6)
        socket = await self.open("lobby", query="?after=4")
        self.assertEqual([(await socket.receive())["seq"] for _ in range(2)], [5, 6])
        await socket.assert_silent()

    @override_settings(CHAT_RESUME_LIMIT=3)
    async def test_a_long_resume_sends_the_newest_messages_and_leaves_older_ones_to_history(self) -> None:
        await self.post("lobby", 10)
        socket = await self.open("lobby", query="?after=2")
        self.assertEqual([(await socket.receive())["seq"] for _ in range(3)], [8, 9, 10])
        await socket.send({"type": "history", "before": 8, "limit": 100})
        page = await socket.receive_type("history")
        self.assertEqual([m["seq"] for m in page["messages"]], [1, 2, 3, 4, 5, 6, 7])

    async def test_a_malformed_after_is_treated_as_a_fresh_join(self) -> None:
        await self.post("lobby", 2)
        socket = await self.open("lobby", query="?after=abc")
        self.assertEqual([(await socket.receive())["seq"] for _ in range(2)], [1, 2])

    async def test_history_pages_backwards_and_says_whether_more_exist(self) -> None:
        await self.post("lobby", 5)
        socket = await self.open("lobby", query="?after=5")
        await socket.send({"type": "history", "before": 4, "limit": 2})
        page = await socket.receive_type("history")
        self.assertEqual([m["seq"] for m in page["messages"]], [2, 3])
        self.assertTrue(page["has_more"])
        await socket.send({"type": "history", "before": 2, "limit": 2})
        page = await socket.receive_type("history")
        self.assertEqual([m["seq"] for m in page["messages"]], [1])
        self.assertFalse(page["has_more"])

    async def test_a_pong_carries_the_rooms_last_seq(self) -> None:
        socket = await self.open("lobby")
        await self.post("lobby", 3)
        await socket.send({"type": "ping"})
        self.assertEqual(await socket.receive_type("pong"), {"type": "pong", "last_seq": 3})


class AckTests(ConsumerTestCase):
    async def test_a_resent_client_id_is_acked_with_the_original_seq_and_not_broadcast_again(self) -> None:
        sender = await self.open("lobby")
        listener = await self.open("lobby")
        await sender.receive_type("join")
        await sender.send({"type": "message", "body": "once", "client_id": "same"})
        self.assertEqual((await sender.receive_each("ack", "message"))["ack"]["seq"], 1)
        await listener.receive_type("message")

        await sender.send({"type": "message", "body": "once", "client_id": "same"})

        self.assertEqual(await sender.receive(), {"type": "ack", "client_id": "same", "seq": 1})
        await listener.assert_no_messages()
        self.assertEqual(await self.stored(), [("lobby", 1, "once")])

    async def test_messages_from_two_sockets_at_once_get_gapless_seqs(self) -> None:
        first = await self.open("lobby")
        second = await self.open("lobby")
        for index in range(10):
            await first.send({"type": "message", "body": f"a{index}", "client_id": f"a{index}"})
            await second.send({"type": "message", "body": f"b{index}", "client_id": f"b{index}"})
        acks = [(await socket.receive_type("ack"))["seq"] for socket in (first, second) for _ in range(10)]
        self.assertEqual(sorted(acks), list(range(1, 21)))
        self.assertEqual(sorted(seq for _, seq, _ in await self.stored()), list(range(1, 21)))


class PresenceTests(ConsumerTestCase):
    async def test_two_tabs_of_one_user_join_once_and_leave_once(self) -> None:
        watcher = await self.open("lobby", cookie=await self.login_cookie("bob"))
        cookie = await self.login_cookie("alice")
        tab1 = await self.open("lobby", cookie=cookie)
        self.assertEqual(await watcher.receive(), {"type": "join", "user": "alice"})
        tab2 = await self.open("lobby", cookie=cookie)
        self.assertEqual(tab2.hello["online"], ["alice", "bob"])
        await watcher.assert_silent()

        await tab1.communicator.disconnect()
        await watcher.assert_silent()
        await tab2.communicator.disconnect()
        self.assertEqual(await watcher.receive(), {"type": "leave", "user": "alice"})

    async def test_typing_reaches_the_others_but_not_the_typists_own_tabs(self) -> None:
        cookie = await self.login_cookie("alice")
        typist = await self.open("lobby", cookie=cookie)
        other_tab = await self.open("lobby", cookie=cookie)
        watcher = await self.open("lobby", cookie=await self.login_cookie("bob"))
        await typist.receive_type("join")

        await typist.send({"type": "typing"})

        self.assertEqual(await watcher.receive_type("typing"), {"type": "typing", "user": "alice"})
        await typist.assert_silent()
        await other_tab.receive_type("join")  # bob's arrival, then nothing more
        await other_tab.assert_silent()


class BadInputTests(ConsumerTestCase):
    BAD_FRAMES = [
        ("not json", "bad_json"),
        ('{"type": "message", "body": NaN}', "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('"message"', "bad_frame"),
        ("{}", "bad_frame"),
        ('{"type": 7}', "bad_frame"),
        ('{"type": "shout", "body": "x"}', "unknown_type"),
        ('{"type": "message"}', "bad_frame"),
        ('{"type": "message", "body": 12}', "bad_frame"),
        ('{"type": "message", "body": "   "}', "empty"),
        ('{"type": "message", "body": "a\\u0000b"}', "bad_text"),
        ('{"type": "message", "body": "\\ud800"}', "bad_text"),
        ('{"type": "message", "body": "x", "client_id": 5}', "bad_frame"),
        ('{"type": "message", "body": "x", "client_id": "' + "c" * 65 + '"}', "bad_frame"),
        ('{"type": "history", "before": "9"}', "bad_frame"),
        ('{"type": "history", "before": 9, "limit": 101}', "bad_frame"),
        ('{"type": "message", "body": "' + "x" * 2001 + '"}', "too_long"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
        ('{"type": "history", "before": ' + "9" * 5000 + "}", "bad_json"),
    ]

    async def test_every_bad_frame_gets_an_error_and_nothing_is_stored_or_broadcast(self) -> None:
        socket = await self.open("lobby")
        listener = await self.open("lobby")
        await socket.receive_type("join")
        with self.assertNoLogs(level="ERROR"):
            for text, code in self.BAD_FRAMES:
                with self.subTest(frame=text[:40]):
                    await socket.communicator.send_to(text_data=text)
                    frame = await socket.receive()
                    self.assertEqual((frame["type"], frame["code"]), ("error", code))
                    self.assertTrue(frame["detail"])
        await listener.assert_no_messages()
        self.assertEqual(await self.stored(), [])
        await socket.send({"type": "message", "body": "still here", "client_id": "ok"})
        self.assertEqual((await socket.receive_type("ack"))["seq"], 1)

    async def test_a_binary_frame_gets_an_error_and_the_socket_stays_open(self) -> None:
        socket = await self.open("lobby")
        await socket.communicator.send_to(bytes_data=b"\x00\x01")
        self.assertEqual((await socket.receive())["code"], "bad_frame")
        await socket.send({"type": "ping"})
        self.assertEqual((await socket.receive())["type"], "pong")

    async def test_a_frame_over_64_kib_closes_the_socket_and_stores_nothing(self) -> None:
        socket = await self.open("lobby")
        await socket.send({"type": "message", "body": "x" * (64 * 1024)})
        self.assertEqual(
            await socket.communicator.receive_output(timeout=TIMEOUT),
            {"type": "websocket.close", "code": protocol.CLOSE_FRAME_TOO_BIG},
        )
        self.assertEqual(await self.stored(), [])

    @override_settings(CHAT_RATE_LIMIT_BURST=3, CHAT_RATE_LIMIT_PER_SECOND=1)
    async def test_frames_beyond_the_burst_are_rate_limited_and_not_stored(self) -> None:
        socket = await self.open("lobby")
        for index in range(5):
            await socket.send({"type": "message", "body": f"m{index}", "client_id": f"c{index}"})
        answers = [await self._next_answer(socket) for _ in range(5)]
        self.assertEqual([a["type"] for a in answers], ["ack", "ack", "ack", "error", "error"])
        self.assertEqual({a.get("code") for a in answers[3:]}, {"rate_limited"})
        self.assertEqual(len(await self.stored()), 3)

    async def _next_answer(self, socket: Socket) -> dict[str, Any]:
        while True:
            frame = await socket.receive()
            if frame["type"] in ("ack", "error"):
                return frame

    @override_settings(CHAT_RATE_LIMIT_BURST=0)
    async def test_a_zero_burst_disables_the_rate_limit(self) -> None:
        socket = await self.open("lobby")
        for _ in range(30):
            await socket.send({"type": "ping"})
        for _ in range(30):
            self.assertEqual((await socket.receive())["type"], "pong")


class DatabaseOutageTests(ConsumerTestCase):
    async def test_a_frame_the_database_cannot_answer_gets_unavailable_and_the_socket_stays_open(self) -> None:
        socket = await self.open("lobby")

        async def down(room: Room, identity: Any) -> int:
            raise OperationalError("server closed the connection unexpectedly")

        with mock.patch.object(selectors, "pong", down), self.assertNoLogs("chat", level="ERROR"):
            await socket.send({"type": "ping"})
            self.assertEqual((await socket.receive())["code"], "unavailable")
        await socket.send({"type": "ping"})
        self.assertEqual(await socket.receive(), {"type": "pong", "last_seq": 0})


class ConnectOutageTests(ConsumerTestCase):
    """A database outage at any step of connect closes with 1011 and one warning, never a traceback."""

    async def assert_closed_with_1011(self, target: Any, attribute: str) -> Socket:
        def down(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("server closed the connection unexpectedly")

        async def adown(*args: Any, **kwargs: Any) -> Any:
            down()

        replacement = adown if inspect.iscoroutinefunction(getattr(target, attribute)) else down
        with (
            mock.patch.object(target, attribute, replacement),
            self.assertNoLogs("chat", level="ERROR"),
            self.assertLogs("chat.consumers", level="WARNING") as logs,
        ):
            socket = await self.connect("/ws/chat/lobby/")
            await socket.communicator.connect(timeout=TIMEOUT)
            self.assertEqual(
                await socket.communicator.receive_output(timeout=TIMEOUT),
                {"type": "websocket.close", "code": protocol.CLOSE_INTERNAL_ERROR},
            )
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn("database unavailable", logs.output[0])
        return socket

    async def test_an_outage_while_identifying_closes_with_1011(self) -> None:
        await self.assert_closed_with_1011(consumers, "identify")

    async def test_an_outage_while_finding_the_room_closes_with_1011(self) -> None:
        await self.assert_closed_with_1011(services, "room_get_or_create")

    async def test_an_outage_while_entering_presence_closes_with_1011(self) -> None:
        await self.assert_closed_with_1011(presence, "enter")

    async def test_an_outage_while_reading_the_backlog_closes_with_1011(self) -> None:
        await self.assert_closed_with_1011(selectors, "backlog")

    async def test_a_socket_closed_by_an_outage_at_connect_leaves_nobody_online_behind(self) -> None:
        closed = await self.assert_closed_with_1011(selectors, "backlog")
        await closed.communicator.disconnect()
        self.opened.remove(closed)
        socket = await self.open("lobby")
        self.assertEqual(socket.hello["online"], [socket.hello["you"]])


# A Redis nobody listens on: any layer call fails at once.
REDIS_DOWN = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},
    }
}


@override_settings(CHANNEL_LAYERS=REDIS_DOWN)
class RefusalWithRedisDownTests(ConsumerTestCase):
    """Refusing a handshake takes no layer channel, so it still refuses cleanly while Redis is down."""

    async def test_a_path_that_is_no_room_is_refused_while_redis_is_down(self) -> None:
        with self.assertNoLogs(level="ERROR"):
            socket = await self.connect("/nowhere")
            connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        self.assertFalse(connected)

    async def test_a_foreign_origin_is_refused_while_redis_is_down(self) -> None:
        with self.assertNoLogs(level="ERROR"):
            socket = await self.connect("/ws/chat/lobby/", origin=(b"origin", b"http://evil.example"))
            connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        self.assertFalse(connected)

    async def test_a_room_socket_is_closed_with_1011_while_redis_is_down(self) -> None:
        with self.assertNoLogs(level="ERROR"):
            socket = await self.connect("/ws/chat/lobby/")
            await socket.communicator.connect(timeout=TIMEOUT)
            self.assertEqual(
                await socket.communicator.receive_output(timeout=TIMEOUT),
                {"type": "websocket.close", "code": protocol.CLOSE_INTERNAL_ERROR},
            )


class UvicornLikeSend:
    """An ASGI send with the uvicorn (websockets-sansio) behaviour a WebsocketCommunicator lacks: once the
    connection is lost every send raises ClientDisconnected (an OSError), and a send after websocket.close raises
    RuntimeError."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.queue = queue
        self.sent: list[dict[str, Any]] = []
        self.lost = False
        self.close_sent = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.lost:
            raise ClientDisconnected()
        if self.close_sent:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}', after sending 'websocket.close'.")
        self.sent.append(message)
        if message["type"] == "websocket.close":
            self.close_sent = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": message.get("code", 1000)})

    def lose(self) -> None:
        """connection_lost: sends raise from now on, and a disconnect waits behind what the client sent."""
        self.lost = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})

    def frames(self) -> list[str]:
        return [m["text"] for m in self.sent if "text" in m]


class ServerSendTests(TransactionTestCase):
    """A socket that goes away while a handler sends to it is cleaned up like one that said goodbye."""

    async def start(self) -> tuple[asyncio.Queue[dict[str, Any]], UvicornLikeSend, asyncio.Task[Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        send = UvicornLikeSend(queue)
        scope = {
            "type": "websocket",
            "path": "/ws/chat/lobby/",
            "query_string": b"",
            "headers": [ORIGIN, HOST],
            "client": ("127.0.0.1", 5555),
        }
        queue.put_nowait({"type": "websocket.connect"})
        app = asyncio.ensure_future(application(scope, queue.get, send))
        await eventually(lambda: any('"hello"' in text for text in send.frames()), what="the hello")
        return queue, send, app

    async def assert_cleaned_up(self, app: asyncio.Task[Any]) -> None:
        await asyncio.wait_for(app, TIMEOUT)
        self.assertIsNone(app.exception(), "the server would log 'Exception in ASGI application'")
        self.assertEqual(fanout.hub.connection_ids(), [], "still a member of the room's fan-out")
        self.assertEqual(await sync_to_async(Presence.objects.count)(), 0, "its presence row is left behind")
        self.assertEqual(consumers._open_sockets.counts(), {}, "it still counts against the socket caps")

    async def test_a_client_gone_before_its_pong_is_written_is_cleaned_up(self) -> None:
        queue, send, app = await self.start()
        queue.put_nowait({"type": "websocket.receive", "text": json.dumps({"type": "ping"})})
        send.lose()
        with self.assertNoLogs("chat", level="ERROR"):
            await self.assert_cleaned_up(app)

    @override_settings(CHAT_MAX_FRAME_BYTES=100)
    async def test_a_frame_queued_behind_an_oversized_one_is_ignored_after_the_close(self) -> None:
        # Two frames in one TCP segment: the server queues both before the consumer closes for the first.
        queue, send, app = await self.start()
        queue.put_nowait({"type": "websocket.receive", "text": "x" * 200})
        queue.put_nowait({"type": "websocket.receive", "text": json.dumps({"type": "ping"})})
        with self.assertNoLogs("chat", level="ERROR"):
            await self.assert_cleaned_up(app)
        self.assertIn(protocol.CLOSE_FRAME_TOO_BIG, [m.get("code") for m in send.sent])

    @override_settings(CHAT_SEND_BEHIND_SECONDS=1, CHAT_SEND_BUFFER_BYTES=1000)
    async def test_a_reader_that_stopped_but_still_pings_is_closed_with_4008_and_cleaned_up(self) -> None:
        held = FakeOutlet()
        held.waits_above = 10**9  # a send returns at once, as uvicorn's does below its low-water mark
        with mock.patch.object(fanout_consumer, "outlet_for", return_value=held):
            queue, send, app = await self.start()
            held.held = 5000  # it stopped reading: the server holds more than the bound for it
            room = await sync_to_async(room_get_or_create)("lobby")
            await sync_to_async(message_create)(room=room, author="bob", body="hi")
            # The page pings now and then: this one waits for the socket to drain when the give-up comes.
            queue.put_nowait({"type": "websocket.receive", "text": json.dumps({"type": "ping"})})
            with self.assertNoLogs("chat", level="ERROR"):
                await eventually(lambda: send.close_sent, timeout=TIMEOUT, what="the 4008 close")
                await self.assert_cleaned_up(app)
        self.assertEqual([m.get("code") for m in send.sent if m["type"] == "websocket.close"], [4008])


class SocketCapTests(ConsumerTestCase):
    @override_settings(CHAT_MAX_SOCKETS_PER_CLIENT=2)
    async def test_a_user_over_the_socket_cap_is_closed_with_4429_until_one_closes(self) -> None:
        cookie = await self.login_cookie("alice")
        first = await self.open("lobby", cookie=cookie)
        await self.open("other", cookie=cookie)
        third = await self.connect("/ws/chat/lobby/", cookie=cookie)
        await third.communicator.connect(timeout=TIMEOUT)
        self.assertEqual(
            await third.communicator.receive_output(timeout=TIMEOUT),
            {"type": "websocket.close", "code": protocol.CLOSE_TOO_MANY_SOCKETS},
        )
        await first.communicator.disconnect()
        await self.open("lobby", cookie=cookie)


class HandshakeTests(ConsumerTestCase):
    async def test_an_invalid_room_name_is_closed_with_4404_before_any_frame(self) -> None:
        for room in ("bad.name", "x" * 65, "%C3%A9t%C3%A9", "a%20b"):
            with self.subTest(room=room):
                socket = await self.connect(f"/ws/chat/{room}/")
                await socket.communicator.connect(timeout=TIMEOUT)
                self.assertEqual(
                    await socket.communicator.receive_output(timeout=TIMEOUT),
                    {"type": "websocket.close", "code": protocol.CLOSE_ROOM_NOT_FOUND},
                )

    async def test_a_path_that_is_no_room_is_refused_without_an_error_log(self) -> None:
        with self.assertNoLogs(level="ERROR"):
            for path in ("/ws/chat/", "/ws/chat/a/b/", "/nowhere", "/ws/chat/../../etc/passwd/"):
                with self.subTest(path=path):
                    socket = await self.connect(path)
                    connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
                    self.assertFalse(connected)

    async def test_a_foreign_origin_is_refused(self) -> None:
        socket = await self.connect("/ws/chat/lobby/", origin=(b"origin", b"http://evil.example"))
        connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        self.assertFalse(connected)

    async def test_a_missing_origin_is_refused(self) -> None:
        socket = Socket("/ws/chat/lobby/", headers=[])
        self.opened.append(socket)
        connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        self.assertFalse(connected)

    @override_settings(CHAT_ALLOW_GUESTS=False)
    async def test_with_guests_off_an_anonymous_socket_is_closed_with_4401(self) -> None:
        socket = await self.connect("/ws/chat/lobby/")
        await socket.communicator.connect(timeout=TIMEOUT)
        self.assertEqual(
            await socket.communicator.receive_output(timeout=TIMEOUT),
            {"type": "websocket.close", "code": protocol.CLOSE_LOGIN_REQUIRED},
        )
        self.assertFalse(await sync_to_async(Room.objects.exists)())

    @override_settings(CHAT_ALLOW_GUESTS=False)
    async def test_with_guests_off_a_logged_in_user_still_chats(self) -> None:
        socket = await self.open("lobby", cookie=await self.login_cookie("alice"))
        self.assertEqual(socket.hello["you"], "alice")

    async def test_a_guest_keeps_the_name_from_their_session(self) -> None:
        def guest_cookie() -> tuple[str, str]:
            client = Client()
            client.get("/chat/lobby/")
            return f"sessionid={client.cookies['sessionid'].value}", client.session["chat_guest_name"]

        cookie, name = await sync_to_async(guest_cookie)()
        socket = await self.open("lobby", cookie=cookie)
        self.assertEqual(socket.hello["you"], name)
        self.assertRegex(name, r"^guest-\d{4}$")


class LayerFailureTests(ConsumerTestCase):
    async def test_after_the_layer_fails_a_receive_the_socket_gets_what_was_stored_meanwhile(self) -> None:
        layer = get_channel_layer()
        failing = asyncio.Event()
        real_receive = layer.receive

        pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

        async def receive(channel: str) -> dict[str, Any]:
            # Like channels-redis when Redis restarts: the pending receive raises ConnectionError. The real
            # receive is left running (cancelling it would make the pub/sub layer forget the channel).
            real = pending.get(channel) or asyncio.ensure_future(real_receive(channel))
            pending[channel] = real
            fail = asyncio.ensure_future(failing.wait())
            done, _ = await asyncio.wait({real, fail}, return_when=asyncio.FIRST_COMPLETED)
            if real in done:
                fail.cancel()
                del pending[channel]
                return real.result()
            failing.clear()
            raise ConnectionError("Connection reset by peer")

        with mock.patch.object(layer, "receive", receive), self.assertNoLogs("chat", level="ERROR"):
            socket = await self.open("lobby")
            # Stored while the layer is down: its broadcast never reaches the socket.
            await sync_to_async(
                lambda: store_all(
                    [
                        services.draft(
                            room=room_get_or_create("lobby"), author="a", user=None, body="lost", client_id=None
                        )
                    ]
                )
            )()
            failing.set()
            frame = await socket.receive_type("message")
            self.assertEqual((frame["seq"], frame["body"]), (1, "lost"))
            # And live delivery works again afterwards.
            await socket.send({"type": "message", "body": "after", "client_id": "c2"})
            self.assertEqual((await socket.receive_type("message"))["body"], "after")
