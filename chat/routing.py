"""WebSocket routes. The catch-all keeps URLRouter from raising (and daphne from answering 500) on any other path."""

from django.urls import path, re_path

from .consumers import ChatConsumer, RefusingConsumer

websocket_urlpatterns = [
    # Any segment matches here; the consumer validates the name, so a bad one gets close code 4404, not a 500.
    path("ws/chat/<str:room>/", ChatConsumer.as_asgi()),
    re_path(r"", RefusingConsumer.as_asgi()),
]
