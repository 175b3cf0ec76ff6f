"""The WebSocket side's middleware and router, in one layer: origin checks, cookies, session, user, then the
route.

It does what AllowedHostsOriginValidator(SameOriginValidator(AuthMiddlewareStack(URLRouter(...)))) would, without
copying the scope and with one coroutine frame instead of seven: each copy and frame of that stack stays alive as
long as the socket (a middleware's coroutine holds its scope until the inner application returns); see
docs/performance.md for what that cost per idle connection.

Channels' session middleware saves a modified session only on ``http.response.start``, never on a WebSocket
message, so there is no send wrapper to keep here: the consumer's send is the server's own, which is what lets
the fan-out read the server's flow control (chat.outlets).
"""

import contextlib
from importlib import import_module
from typing import Any
from urllib.parse import urlparse

from channels.auth import get_user
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.http import parse_cookie
from django.urls.exceptions import Resolver404

from .consumers import RefusingConsumer
from .origin import allowed_origin

_refuse = RefusingConsumer.as_asgi()


def _origin_header(scope: dict[str, Any]) -> Any:
    # As channels' OriginValidator parses it (the last Origin header, urlparse'd).
    parsed = None
    for name, value in scope.get("headers", []):
        if name == b"origin":
            with contextlib.suppress(ValueError):  # as channels, and urlparse's "Invalid IPv6 URL" too
                parsed = urlparse(value.decode("latin1"))
    return parsed


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


class SocketStack:
    """ASGI application for WebSocket scopes: deny a foreign origin, else add cookies, session and user to the
    scope and hand it to the first of ``routes`` (Django path() / re_path() entries, as for URLRouter) that
    matches its path."""

    def __init__(self, routes: list[Any]) -> None:
        # URLRouter checks the routes and prepares their patterns; the matching is done here, as it does it.
        self.routes = URLRouter(routes).routes
        # Channels' allowed-hosts check, reused for its ALLOWED_HOSTS matching rules.
        self.hosts = AllowedHostsOriginValidator(None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SocketStack only serves WebSocket connections")
        if not (allowed_origin(scope) and self.hosts.valid_origin(_origin_header(scope))):
            return await _refuse(scope, receive, send)
        application = self._route(scope)
        # Added to the server's own scope rather than to a copy: right under ProtocolTypeRouter the only one
        # "upstream" is the server, which made this dict for this connection alone, and a copy would stay alive
        # beside it for the socket's lifetime.
        cookies = _cookies(scope)
        scope["cookies"] = cookies
        scope["session"] = import_module(settings.SESSION_ENGINE).SessionStore(
            cookies.get(settings.SESSION_COOKIE_NAME)
        )
        scope["user"] = await get_user(scope)
        return await application(scope, receive, send)

    def _route(self, scope: dict[str, Any]) -> Any:
        """The route's application for the scope's path; sets url_route and path_remaining as URLRouter does."""
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and not path.startswith(root_path):
            raise ValueError(f"No route found for path {path!r}.")
        path = path[len(root_path) :].lstrip("/")
        for route in self.routes:
            try:
                match = route.pattern.match(path)
            except Resolver404:
                continue
            if match:
                new_path, args, kwargs = match
                kwargs.update(route.default_args)
                scope["path_remaining"] = new_path
                scope["url_route"] = {"args": args, "kwargs": kwargs}
                return route.callback
        raise ValueError(f"No route found for path {path!r}.")
