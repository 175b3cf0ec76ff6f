from channels.testing import WebsocketCommunicator
from django.test import SimpleTestCase, override_settings

from chat.origin import allowed_origin, parse_origin
from chatsite.asgi import application


def scope(origin: str | None, host: str | None = "chat.example.com", scheme: str = "wss") -> dict[str, object]:
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    if host is not None:
        headers.append((b"host", host.encode("latin-1")))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


class ParseOriginTests(SimpleTestCase):
    def test_an_origin_without_a_port_gets_its_schemes_default(self) -> None:
        self.assertEqual(parse_origin("https://Chat.Example.com"), ("https", "chat.example.com", 443))

    def test_null_and_non_web_origins_are_not_origins(self) -> None:
        for value in (
            "null",
            "",
            "file://",
            "chrome-extension://abc",
            "https://",
            "https://x:99999",
            "https://a/b",
            "http://evil.example@localhost",
            "http://localhost?x",
        ):
            with self.subTest(value=value):
                self.assertIsNone(parse_origin(value))


class AllowedOriginTests(SimpleTestCase):
    def test_the_sites_own_origin_is_allowed(self) -> None:
        self.assertTrue(allowed_origin(scope("https://chat.example.com")))

    def test_the_default_port_may_be_spelled_out(self) -> None:
        self.assertTrue(allowed_origin(scope("https://chat.example.com:443")))

    def test_the_right_host_with_the_wrong_scheme_is_refused(self) -> None:
        self.assertFalse(allowed_origin(scope("http://chat.example.com")))

    def test_the_right_host_with_the_wrong_port_is_refused(self) -> None:
        self.assertFalse(allowed_origin(scope("https://chat.example.com:8443")))

    def test_a_foreign_origin_is_refused(self) -> None:
        self.assertFalse(allowed_origin(scope("https://evil.example")))

    def test_a_missing_or_null_origin_is_refused(self) -> None:
        self.assertFalse(allowed_origin(scope(None)))
        self.assertFalse(allowed_origin(scope("null")))

    def test_a_handshake_without_a_host_header_is_refused(self) -> None:
        self.assertFalse(allowed_origin(scope("https://chat.example.com", host=None)))

    def test_a_plain_ws_socket_matches_an_http_page_with_its_port(self) -> None:
        self.assertTrue(allowed_origin(scope("http://127.0.0.1:8000", host="127.0.0.1:8000", scheme="ws")))
        self.assertFalse(allowed_origin(scope("http://127.0.0.1:9000", host="127.0.0.1:8000", scheme="ws")))

    @override_settings(CSRF_TRUSTED_ORIGINS=["https://app.example.com"])
    def test_an_origin_in_csrf_trusted_origins_is_allowed(self) -> None:
        self.assertTrue(allowed_origin(scope("https://app.example.com")))
        self.assertFalse(allowed_origin(scope("http://app.example.com")))


class HandshakeOriginTests(SimpleTestCase):
    async def refused(self, origin: bytes) -> bool:
        communicator = WebsocketCommunicator(
            application, "/ws/chat/lobby/", headers=[(b"origin", origin), (b"host", b"localhost:8000")]
        )
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return not connected

    async def test_the_right_host_on_another_port_is_refused_at_the_handshake(self) -> None:
        self.assertTrue(await self.refused(b"http://localhost:9999"))

    async def test_the_right_host_over_https_is_refused_for_a_plain_ws_socket(self) -> None:
        self.assertTrue(await self.refused(b"https://localhost:8000"))
