"""ASGI entry point: Django serves HTTP; WebSockets go through origin and auth checks to the chat routes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Set up Django (apps, settings) before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.socketstack import SocketStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The host must be allowed, and the whole origin (scheme, host, port) must be this site's own; then
        # cookies, session and user, as channels' AuthMiddlewareStack adds them, and the route, in one layer
        # (chat.socketstack).
        "websocket": SocketStack(websocket_urlpatterns),
    }
)
