import asyncio
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.test import TransactionTestCase
from django.utils import timezone

from chat import heartbeat, presence
from chat.models import Presence
from chat.rooms import group_name
from chat.services import room_get_or_create


class HeartbeatTests(TransactionTestCase):
    def setUp(self) -> None:
        self.room = room_get_or_create("lobby")
        self.layer = get_channel_layer()

    def tearDown(self) -> None:
        heartbeat._sockets.clear()

    def enter(self, channel_name: str, name: str) -> None:
        async_to_sync(presence.enter)(self.room, channel_name=channel_name, name=name)

    def age(self, channel_name: str, seconds: int) -> None:
        Presence.objects.filter(channel_name=channel_name).update(seen=timezone.now() - timedelta(seconds=seconds))

    def test_a_beat_refreshes_the_presence_of_this_processes_sockets(self) -> None:
        async def beat() -> str:
            channel = await self.layer.new_channel()
            heartbeat._sockets[channel] = "lobby"
            await presence.enter(self.room, channel_name=channel, name="alice")
            await sync_to_async(self.age)(channel, 50)
            await heartbeat.beat_once()
            return channel

        channel = async_to_sync(beat)()
        seen = Presence.objects.get(channel_name=channel).seen
        self.assertLess(timezone.now() - seen, timedelta(seconds=5))

    def test_a_socket_of_a_dead_process_is_swept_and_its_user_announced_gone_once(self) -> None:
        self.enter("dead", "ghost")
        self.age("dead", 3600)

        async def beat_and_listen() -> list[dict[str, object]]:
            listener = await self.layer.new_channel()
            await self.layer.group_add(group_name("lobby"), listener)
            await heartbeat.beat_once()
            await heartbeat.beat_once()
            events = []
            while True:
                try:
                    events.append(await asyncio.wait_for(self.layer.receive(listener), 0.3))
                except TimeoutError:
                    return events

        events = async_to_sync(beat_and_listen)()
        self.assertEqual([e["text"] for e in events], ['{"type":"leave","user":"ghost"}'])
        self.assertFalse(Presence.objects.filter(channel_name="dead").exists())

    def test_a_user_with_another_live_socket_is_not_announced_gone(self) -> None:
        self.enter("dead", "alice")
        self.enter("alive", "alice")
        self.age("dead", 3600)
        left = async_to_sync(presence.sweep)()
        self.assertEqual(left, [])
        self.assertEqual(presence.online_names(self.room), ["alice"])

    def test_a_beat_puts_a_forgotten_socket_back_in_its_group(self) -> None:
        async def scenario() -> dict[str, object]:
            channel = await self.layer.new_channel()
            heartbeat._sockets[channel] = "lobby"
            # What an emptied Redis does to memberships.
            await self.layer.group_discard(group_name("lobby"), channel)
            await heartbeat.beat_once()
            await self.layer.group_send(group_name("lobby"), {"type": "chat.message", "seq": 1, "text": "x"})
            return await self.layer.receive(channel)

        self.assertEqual(async_to_sync(scenario)()["seq"], 1)
