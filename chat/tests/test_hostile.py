"""Hostile input, each tried on a fresh connection while a control client in the same room keeps chatting.

The expected result is always the same: a clear error frame or a refused handshake, nothing stored or broadcast,
the server and the control client unaffected. Most cases go through the real ASGI application (origin check,
sessions, routing, consumer) with WebsocketCommunicator, so they run in `make test` on SQLite and in
`make test-services` on PostgreSQL: the two databases must give the same answers. The cases that need a real
transport (uvicorn's frame-size limit, real sockets from one address, two processes racing one client_id) are in
RealServerHostileTests, which needs PostgreSQL and Redis; the XSS bodies are rendered in headless Chromium.

Already covered elsewhere and not repeated here: the Origin rules in detail (test_origin.py), the parser's
properties (test_protocol.py, hypothesis), the single bad frames of BadInputTests and the socket cap of
SocketCapTests (test_consumers.py).
"""

import asyncio
import json
import time
import unicodedata
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.test import TransactionTestCase, override_settings
from django.utils import timezone
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat import protocol
from chat.exceptions import ClientError
from chat.models import Message, Room
from chat.services import message_create, room_get_or_create

from . import oracle
from .helpers import FAST_HASHING, eventually
from .servers import Server, database_url, require_redis_and_postgres
from .test_browser import BrowserTestCase, needs_chromium
from .test_browser_client import RUN_IN_MODULE
from .test_consumers import HOST, TIMEOUT, ConsumerTestCase, Socket
from .wsclient import ChatClient

ROOM = "hostile"


class HostileTestCase(ConsumerTestCase):
    """Every test has a control client in ROOM; ``control_chats`` proves it and the server unaffected."""

    control: Socket
    control_sent: int

    async def start_control(self) -> None:
        self.control = await self.open(ROOM)
        self.control_sent = 0
        self.control_saw: list[dict[str, Any]] = []  # messages from others

    async def control_chats(self) -> None:
        """The control client sends a message and gets its ack and its copy (others' messages are kept aside)."""
        self.control_sent += 1
        client_id = f"control-{self.control_sent}"
        await self.control.send({"type": "message", "body": f"control {self.control_sent}", "client_id": client_id})
        seen = []
        while True:
            frame = await self.control.receive()
            if frame["type"] == "message":
                seen.append(frame)
            if frame["type"] == "ack":
                self.assertEqual(frame["client_id"], client_id)
                break
        while not any(f["client_id"] == client_id for f in seen):
            frame = await self.control.receive()
            if frame["type"] == "message":
                seen.append(frame)
        self.control_saw += [f for f in seen if f["client_id"] != client_id]

    async def assert_only_control_stored(self) -> None:
        """Nothing but the control's messages was stored, and the control was sent no one else's."""
        rows = await sync_to_async(lambda: list(Message.objects.values_list("room__name", "body", "client_id")))()
        self.assertEqual(rows, [(ROOM, f"control {n}", f"control-{n}") for n in range(1, self.control_sent + 1)])
        self.assertEqual(self.control_saw, [])

    async def assert_refused_or_4404(self, path: str) -> None:
        """The handshake is refused (403), or accepted and closed with 4404 before any frame."""
        socket = await self.connect(path)
        connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        if connected:
            self.assertEqual(
                await socket.communicator.receive_output(timeout=TIMEOUT),
                {"type": "websocket.close", "code": protocol.CLOSE_ROOM_NOT_FOUND},
            )

    async def answers(self, socket: Socket, count: int) -> list[dict[str, Any]]:
        """The next ``count`` acks and errors on ``socket`` (skipping presence and message frames)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = await socket.receive()
            if frame["type"] in ("ack", "error"):
                found.append(frame)
        return found


class HandshakeAbuseTests(HostileTestCase):
    async def test_foreign_missing_null_and_near_miss_origins_are_refused(self) -> None:
        await self.start_control()
        origins = [
            b"http://evil.example",
            None,
            b"null",
            b"https://localhost",  # the right host, the wrong scheme
            b"http://localhost:8080",  # the right host, the wrong port
            b"http://localhost.evil.example",
            b"http://evil.example@localhost",
            b"file://",
            b"http://LOCALHOST\x00.evil.example",
        ]
        with self.assertNoLogs(level="ERROR"):
            for origin in origins:
                with self.subTest(origin=origin):
                    headers = [HOST] + ([(b"origin", origin)] if origin is not None else [])
                    socket = Socket(f"/ws/chat/{ROOM}/", headers)
                    self.opened.append(socket)
                    connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
                    self.assertFalse(connected)
                    await self.control_chats()
        await self.assert_only_control_stored()

    async def test_forged_tampered_and_expired_session_cookies_do_not_log_anyone_in(self) -> None:
        await self.start_control()
        valid = await self.login_cookie("alice")
        expired = await self.login_cookie("alice")
        key = expired.split("=", 1)[1]
        await sync_to_async(
            lambda: Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(days=1))
        )()
        for cookie in ("sessionid=forged0123456789forged0123456789", valid + "x", expired, "sessionid=" + "a" * 5000):
            with self.subTest(cookie=cookie[:40]):
                socket = await self.open(ROOM, cookie=cookie)
                self.assertNotEqual(socket.hello["you"], "alice")
                self.assertTrue(socket.hello["you"].startswith("guest-"))
                await self.control_chats()
        with override_settings(CHAT_ALLOW_GUESTS=False):
            for cookie in ("sessionid=forged0123456789forged0123456789", expired):
                socket = await self.connect(f"/ws/chat/{ROOM}/", cookie=cookie)
                await socket.communicator.connect(timeout=TIMEOUT)
                self.assertEqual(
                    await socket.communicator.receive_output(timeout=TIMEOUT),
                    {"type": "websocket.close", "code": protocol.CLOSE_LOGIN_REQUIRED},
                )
        await self.control_chats()
        await self.assert_only_control_stored()

    async def test_traversal_non_ascii_and_huge_room_names_are_refused_and_create_no_room(self) -> None:
        await self.start_control()
        closed = ["..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "été", "ルーム", "a" * 10_000, "a\x00b", "lobby%00", " "]
        paths = [f"/ws/chat/{room}/" for room in closed]
        paths += ["/ws/chat/../../etc/passwd/", "/ws/chat/a/../b/", "/ws/chat/" + "a/" * 5000]
        with self.assertNoLogs(level="ERROR"):
            for path in paths:
                with self.subTest(path=path[:40]):
                    await self.assert_refused_or_4404(path)
        await self.control_chats()
        self.assertEqual(await sync_to_async(lambda: list(Room.objects.values_list("name", flat=True)))(), [ROOM])


@override_settings(CHAT_RATE_LIMIT_BURST=0)
class FrameAbuseTests(HostileTestCase):
    async def assert_refused(self, frames: list[str], codes: set[str] | str) -> None:
        """Each frame, on one fresh socket, gets an error frame with one of ``codes``; the socket stays open."""
        socket = await self.open(ROOM)
        with self.assertNoLogs(level="ERROR"):
            for text in frames:
                with self.subTest(frame=text[:60]):
                    await socket.communicator.send_to(text_data=text)
                    (answer,) = await self.answers(socket, 1)
                    self.assertEqual(answer["type"], "error")
                    self.assertIn(answer["code"], {codes} if isinstance(codes, str) else codes)
                    self.assertTrue(answer["detail"])
        await socket.send({"type": "ping"})
        self.assertEqual((await socket.receive_type("pong"))["type"], "pong")
        await self.control_chats()

    async def test_invalid_and_deeply_nested_json_is_bad_json(self) -> None:
        await self.start_control()
        await self.assert_refused(
            [
                " ",
                "{",
                "{'type': 'message'}",
                '{"type": "message", "body": "x"',
                '{"type": "message", "body": "x"}}',
                # Nested far deeper than the decoder's recursion limit, yet under the 64 KiB frame limit.
                "[" * 60_000,
                "[" * 30_000 + "]" * 30_000,
                '{"a":' * 10_000 + "1" + "}" * 10_000,
                "\ufeff{}",
            ],
            {"bad_json"},
        )
        await self.assert_only_control_stored()

    async def test_nan_infinity_and_huge_numbers_are_refused(self) -> None:
        await self.start_control()
        await self.assert_refused(
            [
                '{"type": "history", "before": NaN}',
                '{"type": "history", "before": Infinity}',
                '{"type": "history", "before": -Infinity}',
                '{"type": "history", "before": 1' + "0" * 5000 + "}",
            ],
            "bad_json",
        )
        await self.assert_refused(
            [
                '{"type": "history", "before": 1e400}',
                '{"type": "history", "before": 1.5}',
                '{"type": "history", "before": -1}',
                '{"type": "history", "before": 0}',
                '{"type": "history", "before": 5, "limit": 100000000000000000000000000000}',
                '{"type": "history", "before": 5, "limit": 0}',
            ],
            "bad_frame",
        )
        await self.assert_only_control_stored()

    async def test_a_huge_but_valid_history_before_answers_an_empty_page_on_every_database(self) -> None:
        await self.start_control()
        socket = await self.open(ROOM)
        for before in (2**63 - 1, 2**63, 10**30):
            with self.subTest(before=before), self.assertNoLogs(level="ERROR"):
                await socket.send({"type": "history", "before": before, "limit": 5})
                frame = await socket.receive()
                # The page below any seq past the log's end is the newest page (here: the control's messages).
                self.assertIn(frame["type"], ("history", "error"))
                if frame["type"] == "error":
                    self.assertEqual(frame["code"], "bad_frame")
                else:
                    self.assertEqual(frame["before"], before)
        await self.control_chats()
        await self.assert_only_control_stored()

    async def test_huge_targets_in_every_change_frame_are_refused_without_a_traceback(self) -> None:
        await self.start_control()
        socket = await self.open(ROOM)
        for seq in (2**63 - 1, 2**63, 10**30):
            for frame in (
                {"type": "edit", "target": seq, "body": "x"},
                {"type": "delete", "target": seq},
                {"type": "react", "target": seq, "emoji": "\N{EYES}"},
                {"type": "versions", "target": seq},
                {"type": "message", "body": "x", "reply_to": seq},
            ):
                with self.subTest(frame=frame), self.assertNoLogs(level="ERROR"):
                    await socket.send(frame)
                    (answer,) = await self.answers(socket, 1)
                    self.assertEqual(answer["type"], "error")
                    self.assertEqual(answer["code"], "not_found" if seq < 2**63 else "bad_frame")
        await self.control_chats()
        await self.assert_only_control_stored()

    async def test_a_stranger_can_neither_edit_nor_delete_the_control_messages(self) -> None:
        await self.start_control()
        await self.control_chats()
        socket = await self.open(ROOM)
        for frame in ({"type": "edit", "target": 1, "body": "defaced"}, {"type": "delete", "target": 1}):
            await socket.send(frame)
            (answer,) = await self.answers(socket, 1)
            self.assertEqual((answer["type"], answer["code"]), ("error", "forbidden"))
        await self.control_chats()
        await self.assert_only_control_stored()

    async def test_a_wrong_type_in_every_field_is_bad_frame(self) -> None:
        await self.start_control()
        wrong = [None, True, 0, 1.5, "x", [], {}, ["x"], {"a": 1}]
        fields: dict[str, dict[str, Any]] = {
            "type": {"body": "x"},
            "body": {"type": "message"},
            "client_id": {"type": "message", "body": "x"},
            "before": {"type": "history"},
            "limit": {"type": "history", "before": 5},
        }
        # The combinations that make a valid frame (stored or answered) are not wrong types.
        valid = {("client_id", None), ("client_id", "x"), ("body", "x")}
        frames = [
            json.dumps({**rest, name: value})
            for name, rest in fields.items()
            for value in wrong
            if not any(name == n and type(value) is type(v) and value == v for n, v in valid)
        ]
        socket = await self.open(ROOM)
        for text in frames:
            with self.subTest(frame=text):
                await socket.communicator.send_to(text_data=text)
                (answer,) = await self.answers(socket, 1)
                self.assertEqual(answer["type"], "error")
                expected = "unknown_type" if text == '{"body": "x", "type": "x"}' else "bad_frame"
                self.assertEqual(answer["code"], expected, text)
        await self.control_chats()
        await self.assert_only_control_stored()

    async def test_nul_bytes_lone_surrogates_and_controls_are_refused_the_same_on_every_database(self) -> None:
        await self.start_control()
        bodies = ["a\x00b", "\x00", "\ud800", "x\udfff", "\ud83d", "a\x1bb", "\x7f", "\x85", "ok\u0000"]
        await self.assert_refused(
            [json.dumps({"type": "message", "body": body, "client_id": "c1"}) for body in bodies], "bad_text"
        )
        await self.assert_refused(
            [
                json.dumps({"type": "message", "body": "x", "client_id": "a\x00b"}),
                json.dumps({"type": "message", "body": "x", "client_id": "\ud800"}),
                json.dumps({"type": "message", "body": "x", "client_id": "é"}),
            ],
            "bad_frame",
        )
        # Not through the socket either: the one write path refuses them before the database sees them.
        room = await sync_to_async(room_get_or_create)(ROOM)
        for body in bodies:
            with self.subTest(body=body), self.assertRaises(ClientError):
                await sync_to_async(message_create)(room=room, author="system", body=body)
        await self.assert_only_control_stored()

    async def test_a_frame_just_over_the_app_limit_closes_with_4009_and_stores_nothing(self) -> None:
        await self.start_control()
        limit = 64 * 1024
        prefix = '{"type": "message", "client_id": "big", "body": "'
        at_limit = prefix + "x" * (limit - len(prefix) - 2) + '"}'
        self.assertEqual(len(at_limit.encode()), limit)
        socket = await self.open(ROOM)
        await socket.communicator.send_to(text_data=at_limit)
        self.assertEqual((await self.answers(socket, 1))[0]["code"], "too_long")  # read, then refused by length
        over = prefix + "é" * ((limit - len(prefix)) // 2) + '"}'  # one byte over, in two-byte characters
        self.assertEqual(len(over.encode()), limit + 1)
        await socket.communicator.send_to(text_data=over)
        self.assertEqual(
            await socket.communicator.receive_output(timeout=TIMEOUT),
            {"type": "websocket.close", "code": protocol.CLOSE_FRAME_TOO_BIG},
        )
        await self.control_chats()
        await self.assert_only_control_stored()

    async def test_binary_frames_are_bad_frame(self) -> None:
        await self.start_control()
        socket = await self.open(ROOM)
        for data in (b"\x00", b'{"type": "message", "body": "x"}', b"\xff" * 1000):
            await socket.communicator.send_to(bytes_data=data)
            (answer,) = await self.answers(socket, 1)
            self.assertEqual(answer["code"], "bad_frame")
        await self.control_chats()
        await self.assert_only_control_stored()


class TextTests(HostileTestCase):
    """Zero-width, bidirectional and combining characters are text: stored as sent (NFC), counted in code points."""

    async def test_zero_width_rtl_and_combining_text_is_stored_and_echoed_exactly(self) -> None:
        await self.start_control()
        socket = await self.open(ROOM)
        bodies = [
            "a\u200bb\u200c\u200d\u2060c",  # zero-width space, non-joiner, joiner, word joiner
            "\u202eevil.exe\u202c and \u2067rtl\u2069",  # right-to-left override and isolate
            "שלום עולם",
            "👩‍👩‍👧‍👦",  # one family: seven code points joined by ZWJ
            "Z" + "\u0336\u0335\u0334\u0337" * 100,  # a combining-mark flood on one letter
        ]
        for index, body in enumerate(bodies):
            await socket.send({"type": "message", "body": body, "client_id": f"t{index}"})
            frame = await socket.receive_type("message")
            self.assertEqual(frame["body"], unicodedata.normalize("NFC", body))
        await self.control_chats()
        stored = await sync_to_async(lambda: list(Message.objects.filter(client_id__startswith="t").order_by("seq")))()
        self.assertEqual([m.body for m in stored], [unicodedata.normalize("NFC", b) for b in bodies])

    @override_settings(CHAT_RATE_LIMIT_BURST=0)
    async def test_length_is_code_points_after_nfc_so_a_combining_flood_is_capped_like_any_text(self) -> None:
        await self.start_control()
        socket = await self.open(ROOM)
        # "e" + 2000 acute accents: NFC composes the first pair, leaving 2000 code points: accepted.
        await socket.send({"type": "message", "body": "e" + "\u0301" * 2000, "client_id": "fits"})
        self.assertEqual((await self.answers(socket, 1))[0]["type"], "ack")
        # One more mark that cannot compose: 2001 code points: too long.
        await socket.send({"type": "message", "body": "e" + "\u0301" * 2001, "client_id": "over"})
        self.assertEqual((await self.answers(socket, 1))[0]["code"], "too_long")
        # An emoji is one code point, though two UTF-16 units: 2000 of them fit.
        await socket.send({"type": "message", "body": "😀" * 2000, "client_id": "emoji"})
        self.assertEqual((await self.answers(socket, 1))[0]["type"], "ack")
        await socket.send({"type": "message", "body": "\u200b" * 2001, "client_id": "zw"})
        self.assertEqual((await self.answers(socket, 1))[0]["code"], "too_long")


class FloodTests(HostileTestCase):
    async def test_a_thousand_frames_in_a_second_from_one_socket_are_rate_limited(self) -> None:
        await self.start_control()
        flooder = await self.open(ROOM)
        started = time.monotonic()
        for index in range(1000):
            await flooder.send({"type": "message", "body": f"flood {index}", "client_id": f"f{index}"})
        answers = await self.answers(flooder, 1000)
        elapsed = time.monotonic() - started
        acked = [a for a in answers if a["type"] == "ack"]
        self.assertEqual({a.get("code") for a in answers if a["type"] == "error"}, {"rate_limited"})
        # The token bucket: a burst of 20, then 5 a second.
        self.assertLessEqual(len(acked), 20 + 5 * elapsed + 1)
        stored = await sync_to_async(lambda: Message.objects.filter(client_id__startswith="f").count())()
        self.assertEqual(stored, len(acked))
        await self.control_chats()

    @override_settings(CHAT_MAX_SOCKETS_PER_CLIENT=50)
    async def test_two_hundred_sockets_from_one_address_get_fifty_and_the_rest_4429(self) -> None:
        await self.start_control()
        outcomes = []
        for _ in range(200):
            socket = await self.connect(f"/ws/chat/{ROOM}/")
            socket.communicator.scope["client"] = ("203.0.113.7", 40000)  # every socket from one address
            await socket.communicator.connect(timeout=TIMEOUT)
            outcomes.append((await socket.communicator.receive_output(timeout=TIMEOUT)).get("code"))
        self.assertEqual(outcomes.count(None), 50)  # a hello (a websocket.send, no code)
        self.assertEqual(outcomes.count(protocol.CLOSE_TOO_MANY_SOCKETS), 150)
        await self.control_chats()
        await self.assert_only_control_stored()

    @override_settings(CHAT_RATE_LIMIT_BURST=0)
    async def test_one_client_id_replayed_fifty_times_from_two_sockets_is_one_row_and_fifty_equal_acks(self) -> None:
        await self.start_control()
        first, second = await self.open(ROOM), await self.open(ROOM)
        frame = {"type": "message", "body": "once", "client_id": "replayed"}
        await asyncio.gather(*(socket.send(frame) for _ in range(25) for socket in (first, second)))
        acks = await self.answers(first, 25) + await self.answers(second, 25)
        self.assertEqual(len({json.dumps(a) for a in acks}), 1)
        self.assertEqual(acks[0], {"type": "ack", "client_id": "replayed", "seq": 1})
        rows = await sync_to_async(lambda: Message.objects.filter(client_id="replayed").count())()
        self.assertEqual(rows, 1)
        await self.control_chats()


XSS_BODIES = [
    '<img src=x onerror="window.__xss=1;alert(1)">',
    "<script>window.__xss=1;alert(1)</script>",
    '<svg onload="window.__xss=1;alert(1)"></svg>',
    '"><iframe src="javascript:window.__xss=1;alert(1)"></iframe>',
    "javascript:window.__xss=1;alert(1)",
    '<a href="javascript:window.__xss=1;alert(1)">click</a>',
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "<style>body{display:none}</style>",
    '<div style="position:fixed;inset:0;background:red">overlay</div>',
    "\u202e<b>reversed</b>",
]


@needs_chromium
class XssInChromiumTests(BrowserTestCase):
    def test_xss_bodies_are_shown_as_text_with_no_dialog_and_no_new_element(self) -> None:
        room = room_get_or_create("xss")
        for body in XSS_BODIES[:5]:  # from the log, in the backlog
            message_create(room=room, author="system", body=body)
        alice = self.open_room("xss")
        bob = self.open_room("xss")
        for body in XSS_BODIES[5:]:  # live, typed in a page
            self.send(alice, body)
        for body in XSS_BODIES:
            self.wait_for_message(bob, body)
        for browser in (alice, bob):
            with self.assertRaises(NoAlertPresentException):
                browser.switch_to.alert.text  # noqa: B018 - reading it is what raises
            self.assertIsNone(self.script(browser, "return window.__xss || null"))
            # A body is text: no element inside any message's body (there is no web address to link here).
            self.assertEqual(browser.find_elements(By.CSS_SELECTOR, "#messages .message .body *"), [])
            self.assertEqual(self.bodies(browser), XSS_BODIES)


@needs_chromium
class LengthInChromiumTests(BrowserTestCase):
    """The browser counts a body's length exactly as the server does (docs/protocol.md, "Length")."""

    SAMPLES = [
        "e" + "\u0301" * 2000,
        "😀" * 3,
        "👩‍👩‍👧‍👦",
        "a\u200bb",
        "  padded  ",
        "\u3000ideographic space\u3000",
        "\ufeffbom",
        "\u00a0nbsp\u00a0",
        "\u2028line separator\u2029",
        "\u180emongolian",
    ]

    def test_the_page_counts_length_as_the_server_does(self) -> None:
        browser = self.open_browser()
        browser.get(f"{self.live_server_url}/accounts/login/")
        script = f"return {json.dumps(self.SAMPLES)}.map(bodyLength);"
        counted = browser.execute_async_script(RUN_IN_MODULE, "/static/chat/format.js", script)
        server = [len(unicodedata.normalize("NFC", sample).strip()) for sample in self.SAMPLES]
        differ = [
            f"{sample[:12]!r}: page {page}, server {ours}"
            for sample, page, ours in zip(self.SAMPLES, counted, server, strict=True)
            if page != ours
        ]
        self.assertEqual(differ, [], "the page and the server count these bodies differently")


# Real transport: uvicorn's own frame limit, sockets from one real address, two processes racing one client_id.


@FAST_HASHING
class RealServerTestCase(TransactionTestCase):
    """Two real server processes with the production limits: the token bucket on, 50 sockets per address,
    uvicorn's frame cap at 1 MiB."""

    server_env = {"CHAT_RATE_LIMIT_BURST": "20", "CHAT_MAX_SOCKETS_PER_CLIENT": "50"}

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_redis_and_postgres()

    def setUp(self) -> None:
        self.a = Server(env=self.server_env, args=["--ws-max-size", "1048576"]).start()
        self.addCleanup(self.a.stop)
        self.b = Server(env=self.server_env, args=["--ws-max-size", "1048576"]).start()
        self.addCleanup(self.b.stop)

    async def control(self) -> ChatClient:
        client = ChatClient(room=ROOM)
        await client.connect(self.a.url)
        return client

    async def assert_control_chats(self, control: ChatClient) -> None:
        client_id = await control.send("control")
        await eventually(lambda: client_id in control.acked, timeout=5, what="the control's ack")
        await eventually(lambda: control.acked[client_id] in control.view, timeout=5, what="the control's copy")

    def assert_servers_fine(self, control: ChatClient) -> None:
        verdict = oracle.check(database_url(), clients=[control], servers=[self.a, self.b])
        self.assertTrue(verdict, verdict.report())


class RealServerHostileTests(RealServerTestCase):
    async def test_a_frame_far_over_the_transport_limit_closes_the_socket_and_nothing_else(self) -> None:
        control = await self.control()
        try:
            url = self.a.url.replace("http", "ws") + f"/ws/chat/{ROOM}/"
            async with connect(url, origin=self.a.url, max_size=None) as socket:  # type: ignore[arg-type]
                await socket.recv()  # hello
                body = "x" * (2 * 1024 * 1024)
                await socket.send(json.dumps({"type": "message", "body": body, "client_id": "huge"}))
                with self.assertRaises(ConnectionClosed) as closed:
                    while True:
                        await socket.recv()
                self.assertEqual(closed.exception.rcvd.code if closed.exception.rcvd else None, 1009)
            await self.assert_control_chats(control)
            await control.ping()
            await oracle.settle([control], database_url(), timeout=10)
        finally:
            await control.close()
        await asyncio.to_thread(self.assert_servers_fine, control)

    async def test_huge_and_non_ascii_room_names_over_http_get_no_room(self) -> None:
        control = await self.control()
        try:
            base = self.a.url.replace("http", "ws")
            for room in ("a" * 10_000, "%C3%A9t%C3%A9", "..%2F..", "x" * 65):
                with self.subTest(room=room[:20]):
                    try:
                        async with connect(
                            f"{base}/ws/chat/{room}/",
                            origin=self.a.url,  # type: ignore[arg-type]
                            open_timeout=5,
                        ) as socket:
                            with self.assertRaises(ConnectionClosed) as closed:
                                await socket.recv()
                            received = closed.exception.rcvd
                            self.assertEqual(received.code if received else None, protocol.CLOSE_ROOM_NOT_FOUND)
                    except InvalidStatus as refused:
                        self.assertGreaterEqual(refused.response.status_code, 400)
                    except TimeoutError:
                        # A request line over the server's 8 KiB limit is answered 414 by uvicorn's WebSocket
                        # implementation, which the websockets client does not read as a handshake answer.
                        self.assertGreater(len(room), 8000)
            await self.assert_control_chats(control)
            names = await sync_to_async(lambda: list(Room.objects.values_list("name", flat=True)))()
            self.assertEqual(names, [ROOM])
        finally:
            await control.close()
        await asyncio.to_thread(self.assert_servers_fine, control)

    async def test_a_flood_from_one_socket_is_rate_limited_and_the_control_does_not_slow_down(self) -> None:
        control = await self.control()
        flooder = ChatClient(room=ROOM)
        await flooder.connect(self.a.url)
        try:
            started = time.monotonic()
            for index in range(1000):  # a thousand frames within about a second
                await flooder._send({"type": "message", "body": f"flood {index}", "client_id": f"f{index}"})
                if index % 100 == 99:
                    await asyncio.sleep(0.1)
                    sent = time.monotonic()
                    await self.assert_control_chats(control)
                    self.assertLess(time.monotonic() - sent, 1.0, "the control waited a second for its own message")
            await eventually(lambda: len(flooder.acked) + len(flooder.errors) >= 1000, timeout=20, what="answers")
            elapsed = time.monotonic() - started
            self.assertEqual({e["code"] for e in flooder.errors}, {"rate_limited"})
            self.assertLessEqual(len(flooder.acked), 20 + 5 * elapsed + 1)
            await oracle.settle([control], database_url(), timeout=10)
        finally:
            await flooder.close()
            await control.close()
        await asyncio.to_thread(self.assert_servers_fine, control)

    async def test_two_hundred_sockets_from_one_address_get_fifty_and_the_rest_4429(self) -> None:
        control = await self.control()  # one of the address's fifty on server A
        sockets = []
        outcomes: list[int | None] = []
        try:
            url = self.a.url.replace("http", "ws") + f"/ws/chat/{ROOM}/"
            for _ in range(200):
                socket = await connect(url, origin=self.a.url)  # type: ignore[arg-type]
                sockets.append(socket)
                try:
                    json.loads(await asyncio.wait_for(socket.recv(), 5))
                    outcomes.append(None)
                except ConnectionClosed as closed:
                    outcomes.append(closed.rcvd.code if closed.rcvd else None)
            self.assertEqual(outcomes.count(None), 49)
            self.assertEqual(outcomes.count(protocol.CLOSE_TOO_MANY_SOCKETS), 151)
            await self.assert_control_chats(control)
        finally:
            for socket in sockets:
                await socket.close()
            await control.close()
        await asyncio.to_thread(self.assert_servers_fine, control)


class ReplayAcrossProcessesTests(RealServerTestCase):
    # 25 frames at once from each socket would exceed the bucket's burst of 20; the rate limit has its own test.
    server_env = {**RealServerTestCase.server_env, "CHAT_RATE_LIMIT_BURST": "0"}

    async def test_one_client_id_replayed_fifty_times_on_two_processes_is_one_row_and_fifty_equal_acks(self) -> None:
        control = await self.control()
        first, second = ChatClient(room=ROOM), ChatClient(room=ROOM)
        await first.connect(self.a.url)
        await second.connect(self.b.url)
        acks: list[dict[str, Any]] = []
        try:
            frame = {"type": "message", "body": "once", "client_id": "replayed"}
            await asyncio.gather(*(client._send(frame) for _ in range(25) for client in (first, second)))
            await eventually(
                lambda: sum(1 for c in (first, second) for e in c.events if e["type"] == "ack") == 50,
                timeout=10,
                what="fifty acks",
            )
            acks = [e for c in (first, second) for e in c.events if e["type"] == "ack"]
            self.assertEqual(len({json.dumps(a) for a in acks}), 1)
            rows = await sync_to_async(lambda: Message.objects.filter(client_id="replayed").count())()
            self.assertEqual(rows, 1)
            await self.assert_control_chats(control)
            await oracle.settle([control, first, second], database_url(), timeout=10)
        finally:
            for client in (first, second, control):
                await client.close()
        await asyncio.to_thread(self.assert_servers_fine, control)
