"""The WebSocket handshake layer: origin and host checks, cookies, session and user, the server's send, the route."""

from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client, TransactionTestCase, override_settings
from django.urls import path, re_path

from chat.socketstack import SocketStack

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")


class Recorder:
    """A route's application that accepts and keeps the scope and the send it was given."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.sends: list[Any] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        self.sends.append(send)
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await receive()  # websocket.disconnect


class SocketStackTests(TransactionTestCase):
    def setUp(self) -> None:
        self.room = Recorder()
        self.other = Recorder()
        routes = [path("ws/chat/<str:room>/", self.room), re_path(r"", self.other)]  # type: ignore[arg-type]
        self.stack = SocketStack(routes)

    async def handshake(self, path: str = "/ws/chat/lobby/", *headers: tuple[bytes, bytes]) -> bool:
        communicator = WebsocketCommunicator(self.stack, path, headers=list(headers or (ORIGIN, HOST)))
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    async def test_the_sites_own_origin_reaches_the_route_with_its_kwargs(self) -> None:
        self.assertTrue(await self.handshake("/ws/chat/general/"))
        self.assertEqual(self.room.scopes[0]["url_route"], {"args": (), "kwargs": {"room": "general"}})

    async def test_a_path_no_room_matches_goes_to_the_catch_all_route(self) -> None:
        self.assertTrue(await self.handshake("/ws/elsewhere/"))
        self.assertEqual((len(self.room.scopes), len(self.other.scopes)), (0, 1))

    async def test_a_foreign_origin_is_refused_before_any_route(self) -> None:
        self.assertFalse(await self.handshake("/ws/chat/lobby/", (b"origin", b"http://evil.example"), HOST))
        self.assertEqual(self.room.scopes, [])

    async def test_a_malformed_origin_is_refused(self) -> None:
        with self.assertNoLogs("django", level="ERROR"):
            self.assertFalse(await self.handshake("/ws/chat/lobby/", (b"origin", b"http://[::1"), HOST))

    @override_settings(ALLOWED_HOSTS=["localhost"], CSRF_TRUSTED_ORIGINS=["http://other.example"])
    async def test_a_trusted_origin_whose_host_is_not_allowed_is_refused(self) -> None:
        self.assertFalse(await self.handshake("/ws/chat/lobby/", (b"origin", b"http://other.example"), HOST))

    async def test_an_anonymous_socket_gets_an_anonymous_user_and_an_empty_session(self) -> None:
        self.assertTrue(await self.handshake())
        scope = self.room.scopes[0]
        self.assertTrue(scope["user"].is_anonymous)
        self.assertIsNone(scope["session"].session_key)

    async def test_a_logged_in_socket_gets_its_user_from_the_session_cookie(self) -> None:
        def log_in() -> str:
            user = get_user_model().objects.create_user("ada", password="x-pass-123")
            client = Client()
            client.force_login(user)
            return f"sessionid={client.cookies['sessionid'].value}"

        cookie = (b"cookie", (await sync_to_async(log_in)()).encode())
        self.assertTrue(await self.handshake("/ws/chat/lobby/", ORIGIN, HOST, cookie))
        self.assertEqual(self.room.scopes[0]["user"].username, "ada")

    async def test_the_route_gets_the_servers_own_send_so_the_fan_out_can_read_its_flow_control(self) -> None:
        sends: list[Any] = []

        async def server_send(message: dict[str, Any]) -> None:
            sends.append(message)

        scope = {"type": "websocket", "path": "/ws/chat/lobby/", "headers": [ORIGIN, HOST], "query_string": b""}
        messages: Iterator[dict[str, Any]] = iter(
            [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
        )

        async def receive() -> dict[str, Any]:
            return next(messages)

        await self.stack(scope, receive, server_send)
        self.assertIs(self.room.sends[0], server_send)
