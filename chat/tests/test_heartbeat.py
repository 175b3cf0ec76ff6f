from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import TransactionTestCase
from django.utils import timezone

from chat import heartbeat, presence
from chat.events import presence_event
from chat.fanout import hub
from chat.models import Presence
from chat.rooms import group_name
from chat.services import room_get_or_create

from .helpers import eventually


class Listener:
    """A stand-in socket for the room fan-out: records what it is sent."""

    def __init__(self, name: str, connection_id: str) -> None:
        self.name = name
        self.connection_id = connection_id
        self.person = f"guest:{connection_id}"
        self.frames: list[dict[str, Any]] = []

    async def chat_message(self, event: dict[str, Any]) -> None:
        self.frames.append(event["frame"])

    async def chat_presence(self, event: dict[str, Any]) -> None:
        self.frames.append(event["frame"])

    def resync(self) -> None:
        pass


class HeartbeatTests(TransactionTestCase):
    def setUp(self) -> None:
        self.room = room_get_or_create("lobby")
        self.layer = get_channel_layer()

    def age(self, connection_id: str, seconds: int) -> None:
        Presence.objects.filter(connection_id=connection_id).update(seen=timezone.now() - timedelta(seconds=seconds))

    async def beat_with(self, listener: Listener, *, rounds: int = 1) -> None:
        """Run heartbeat rounds while ``listener`` is a socket of this process in the lobby."""
        await hub.join("lobby", listener)
        try:
            for _ in range(rounds):
                await heartbeat.beat_once()
            # The layer keeps a channel's order: once a marker sent now arrives, all the beats sent is in.
            marker = presence_event("typing", "marker")
            await self.layer.group_send(group_name("lobby"), marker)
            await eventually(lambda: marker["text"] in [f["text"] for f in listener.frames], what="the marker")
            listener.frames = [f for f in listener.frames if f["text"] != marker["text"]]
        finally:
            await hub.leave("lobby", listener)

    def test_a_beat_refreshes_the_presence_of_this_processes_sockets(self) -> None:
        async_to_sync(presence.enter)(self.room, connection_id="mine", name="alice")
        self.age("mine", 50)
        async_to_sync(self.beat_with)(Listener("alice", "mine"))
        seen = Presence.objects.get(connection_id="mine").seen
        self.assertLess(timezone.now() - seen, timedelta(seconds=5))

    def test_a_socket_of_a_dead_process_is_swept_and_its_user_announced_gone_once(self) -> None:
        async_to_sync(presence.enter)(self.room, connection_id="dead", name="ghost")
        self.age("dead", 3600)
        listener = Listener("bob", "alive")
        async_to_sync(self.beat_with)(listener, rounds=2)
        self.assertEqual([f["text"] for f in listener.frames], ['{"type":"leave","user":"ghost"}'])
        self.assertFalse(Presence.objects.filter(connection_id="dead").exists())

    def test_a_user_with_another_live_socket_is_not_announced_gone(self) -> None:
        async_to_sync(presence.enter)(self.room, connection_id="dead", name="alice")
        async_to_sync(presence.enter)(self.room, connection_id="alive", name="alice")
        self.age("dead", 3600)
        left = async_to_sync(presence.sweep)()
        self.assertEqual(left, [])
        self.assertEqual(presence.online_names(self.room), ["alice"])

    def test_a_beat_puts_a_forgotten_room_subscription_back_in_its_group(self) -> None:
        listener = Listener("bob", "alive")

        async def scenario() -> None:
            await hub.join("lobby", listener)
            try:
                # What an emptied Redis does to memberships.
                await self.layer.group_discard(group_name("lobby"), hub.rooms["lobby"].channel)
                await heartbeat.beat_once()
                await self.layer.group_send(group_name("lobby"), {"type": "chat.message", "seq": 1, "text": "x"})
                await eventually(lambda: listener.frames, what="the message through the renewed subscription")
            finally:
                await hub.leave("lobby", listener)

        async_to_sync(scenario)()
        self.assertEqual(listener.frames, [{"type": "websocket.send", "text": "x"}])
