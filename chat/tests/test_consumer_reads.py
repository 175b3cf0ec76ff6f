"""Read markers over the room socket: the read frame, hello's last_read, and who is told when one moves."""

from asgiref.sync import sync_to_async

from chat.fanout import hub
from chat.models import ReadMarker

from .test_consumers import ConsumerTestCase, Socket


class ReadMarkerTests(ConsumerTestCase):
    async def say(self, socket: Socket, count: int) -> int:
        seq = 0
        for index in range(count):
            await socket.send({"type": "message", "body": f"m{index}", "client_id": f"m-{index}"})
            seq = (await socket.receive_type("ack"))["seq"]
        return seq

    async def read(self, socket: Socket, seq: object) -> None:
        await socket.send({"type": "read", "seq": seq})

    async def test_hello_says_last_read_0_to_someone_who_never_read_the_room(self) -> None:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        self.assertEqual(ada.hello["last_read"], 0)

    async def test_a_read_that_moves_the_marker_is_answered_with_the_stored_seq(self) -> None:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        await self.say(ada, 3)
        await self.read(ada, 2)
        self.assertEqual(await ada.receive_type("read"), {"type": "read", "room": "lobby", "seq": 2})

    async def test_the_marker_only_moves_forward_and_a_read_behind_it_is_not_answered(self) -> None:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        await self.say(ada, 3)
        await self.read(ada, 3)
        await ada.receive_type("read")
        await self.read(ada, 1)
        await ada.assert_no_messages()
        await ada.assert_silent()
        marker = await sync_to_async(ReadMarker.objects.get)()
        self.assertEqual(marker.seq, 3)

    async def test_a_read_past_the_last_seq_is_clamped_to_it(self) -> None:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        await self.say(ada, 2)
        await self.read(ada, 1000)
        self.assertEqual((await ada.receive_type("read"))["seq"], 2)

    async def test_a_read_in_an_empty_room_stores_nothing_and_is_not_answered(self) -> None:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        await self.read(ada, 5)
        await ada.assert_silent()
        self.assertEqual(await sync_to_async(ReadMarker.objects.count)(), 0)

    async def test_a_read_reaches_the_persons_other_sockets_and_nobody_elses(self) -> None:
        cookie = await self.login_cookie("ada")
        laptop = await self.open("lobby", cookie=cookie)
        phone = await self.open("lobby", cookie=cookie)
        bob = await self.open("lobby", cookie=await self.login_cookie("bob"))
        await self.say(bob, 2)
        await self.read(laptop, 2)
        self.assertEqual((await laptop.receive_type("read"))["seq"], 2)
        self.assertEqual((await phone.receive_type("read"))["seq"], 2)
        while not await bob.communicator.receive_nothing(timeout=0.2):
            self.assertNotEqual((await bob.receive())["type"], "read")

    async def test_the_marker_survives_a_reconnect_in_hello(self) -> None:
        cookie = await self.login_cookie("ada")
        ada = await self.open("lobby", cookie=cookie)
        await self.say(ada, 4)
        await self.read(ada, 3)
        await ada.receive_type("read")
        await ada.communicator.disconnect()
        again = await self.open("lobby", cookie=cookie)
        self.assertEqual(again.hello["last_read"], 3)

    async def test_a_socket_whose_layer_lost_events_is_sent_the_stored_marker_once_caught_up(self) -> None:
        cookie = await self.login_cookie("ada")
        ada = await self.open("lobby", cookie=cookie)
        await self.say(ada, 3)
        await self.read(ada, 2)
        await ada.receive_type("read")
        # Moved on another process whose broadcast this one never got: only the store knows.
        await sync_to_async(ReadMarker.objects.update)(seq=3)
        for member in list(hub.rooms["lobby"].members.values()):
            member.resync()
        self.assertEqual(await ada.receive_type("read"), {"type": "read", "room": "lobby", "seq": 3})

    async def test_markers_are_per_room(self) -> None:
        cookie = await self.login_cookie("ada")
        lobby = await self.open("lobby", cookie=cookie)
        await self.say(lobby, 2)
        await self.read(lobby, 2)
        await lobby.receive_type("read")
        other = await self.open("other", cookie=cookie)
        self.assertEqual(other.hello["last_read"], 0)

    async def test_a_guests_marker_follows_their_session(self) -> None:
        guest = await self.open("lobby")
        await self.say(guest, 1)
        await self.read(guest, 1)
        await guest.receive_type("read")
        marker = await sync_to_async(ReadMarker.objects.get)()
        self.assertTrue(marker.who.startswith("guest:"))

    async def test_a_bad_seq_is_a_bad_frame(self) -> None:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        for seq in (-1, "3", 1.5, True, None):
            await self.read(ada, seq)
            self.assertEqual((await ada.receive_type("error"))["code"], "bad_frame", seq)
