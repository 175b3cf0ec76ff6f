"""The WebSocket handshake's Origin check, strict: scheme, host and port.

Channels' AllowedHostsOriginValidator compares only the Origin's host with ALLOWED_HOSTS, so a page served over
plain HTTP or from another port of an allowed host may open a socket with the user's cookies. This check accepts
an Origin only if it is this site's own origin, as the socket sees it (http for ws, https for wss, the Host
header's host and port), or is listed in CSRF_TRUSTED_ORIGINS. Behind a TLS-terminating proxy, run the server
with proxy headers on (uvicorn --proxy-headers) so that a wss socket is seen as one.
"""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PAGE_SCHEME = {"ws": "http", "wss": "https"}

Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an origin such as ``https://chat.example.com``, or None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    # A browser's Origin is scheme://host[:port] and nothing else: "http://evil.example@localhost" names the
    # host localhost, but no page sends it.
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def allowed_origin(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin")
    parsed = parse_origin(origin) if origin else None
    if parsed is None:
        return False
    if parsed in {parse_origin(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    host = _header(scope, b"host")
    page_scheme = _PAGE_SCHEME.get(scope.get("scheme", "ws"), "http")
    return host is not None and parsed == parse_origin(f"{page_scheme}://{host}")
