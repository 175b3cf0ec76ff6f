"""The Channels tutorial's design, for comparison: the async consumer of tutorial part 3 on its channels-redis layer.

The consumer is the tutorial's: join the room's group on connect, ``group_send`` each message, and in the handler
encode it with ``json.dumps`` and send it, once per recipient, through channels' own ``dispatch`` (with its
per-event thread hop). Only what the load generator needs of chatsite's protocol is added: a ``hello`` on connect,
a process-local seq per room, an ``ack`` to the sender, and edits and reactions, which take the room's seq and go
the messages' way through the layer as chatsite's frames (built as the baseline builds them). Nothing is stored or
checked. Served by daphne, as in the tutorial:

    REDIS_URL=redis://127.0.0.1:6379/14 daphne bench.tutorial:application
"""

import itertools
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "bench-tutorial-not-secret"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "channels"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")]},
        }
    },
    USE_TZ=True,
)
django.setup()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from bench.baseline import entry_frame  # noqa: E402

_seqs: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()
        hello = {"type": "hello", "room": self.room_name, "you": self.channel_name, "online": [], "last_seq": 0}
        await self.send(text_data=json.dumps(hello))

    async def disconnect(self, close_code: int) -> None:
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = json.loads(text_data or "{}")
        kind = data.get("type")
        if kind not in ("message", "edit", "react"):
            return
        seq = next(_seqs[self.room_name])
        if kind == "message":
            event = {
                "type": "chat.message",
                "seq": seq,
                "author": self.channel_name,
                "body": data["body"],
                "client_id": data.get("client_id"),
                "sent_at": datetime.now(UTC).isoformat(),
            }
        else:
            event = {"type": "chat.change", "frame": entry_frame(kind, self.room_name, seq, self.channel_name, data)}
        await self.channel_layer.group_send(self.room_group_name, event)
        await self.send(text_data=json.dumps({"type": "ack", "client_id": data.get("client_id"), "seq": seq}))

    async def chat_message(self, event: dict) -> None:
        await self.send(
            text_data=json.dumps(
                {
                    "type": "message",
                    "room": self.room_name,
                    "seq": event["seq"],
                    "author": event["author"],
                    "body": event["body"],
                    "sent_at": event["sent_at"],
                    "client_id": event["client_id"],
                }
            )
        )

    async def chat_change(self, event: dict) -> None:
        # An edit or a reaction: encoded once per recipient, as the messages are.
        await self.send(text_data=json.dumps(event["frame"]))


application = ProtocolTypeRouter(
    {
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/<str:room_name>/", ChatConsumer.as_asgi())]))
        ),
    }
)
