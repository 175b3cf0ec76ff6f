"""Two real server processes sharing Redis and PostgreSQL: delivery, presence and resume across processes.

Runs where the suite runs on PostgreSQL with REDIS_URL set (`make test-scale`, and CI's second pass).
"""

import asyncio
import itertools
import time

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client, TransactionTestCase

from chat.models import Membership, Message, Role, Room, RoomKind

from .helpers import eventually
from .servers import RedisServer, Server, require_redis_and_postgres
from .wsclient import ChatClient

# Short enough that a killed process's users are swept within seconds, not the production minute.
FAST_PRESENCE = {"CHAT_HEARTBEAT_SECONDS": "1", "CHAT_PRESENCE_TTL_SECONDS": "4"}
ROOM = "scale"


def session_cookie(username: str) -> str:
    user = get_user_model().objects.create_user(username=username, password="unused-password-42")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class TwoProcessCase(TransactionTestCase):
    """Two server processes, A and B, on the test database and Redis; no traceback in either's log."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_redis_and_postgres()

    def setUp(self) -> None:
        self.a = Server(env=FAST_PRESENCE).start()
        self.b = Server(env=FAST_PRESENCE).start()
        self.addCleanup(self.b.stop)
        self.addCleanup(self.a.stop)

    def tearDown(self) -> None:
        for server in (self.a, self.b):
            log = server.log()
            self.assertNotIn("Traceback", log, f"server {server.url} logged a traceback:\n{log}")

    async def clients(self, *names: str) -> list[ChatClient]:
        cookies = [await sync_to_async(session_cookie)(name) for name in names]
        return [ChatClient(room=ROOM, cookie=cookie) for cookie in cookies]


class TwoProcessTests(TwoProcessCase):
    async def test_a_message_sent_on_one_process_reaches_a_client_on_the_other(self) -> None:
        alice, bob = await self.clients("alice", "bob")
        await alice.connect(self.a.url)
        await bob.connect(self.b.url)
        try:
            await alice.send("from a")
            await bob.send("from b")
            for client in (alice, bob):
                await eventually(lambda c=client: len(c.view) == 2, timeout=10, what="both messages")
                self.assertEqual(sorted(m["body"] for m in client.view.values()), ["from a", "from b"])
        finally:
            await alice.close()
            await bob.close()

    async def test_a_read_on_one_process_reaches_the_same_persons_socket_on_the_other(self) -> None:
        cookie = await sync_to_async(session_cookie)("alice")
        (bob,) = await self.clients("bob")
        laptop, phone = ChatClient(room=ROOM, cookie=cookie), ChatClient(room=ROOM, cookie=cookie)
        await laptop.connect(self.a.url)
        await phone.connect(self.b.url)
        await bob.connect(self.b.url)
        try:
            await bob.send("one")
            await bob.send("two")
            await eventually(lambda: len(laptop.view) == 2, timeout=10, what="both messages on the laptop")
            await laptop.mark_read(2)
            await eventually(lambda: phone.reads == [2], timeout=10, what="the phone's read frame")
            self.assertEqual(laptop.reads, [2])
            # Broadcast from process A after the read, so it reaches bob after anything the read sent him.
            await laptop.send("three")
            await eventually(lambda: len(bob.view) == 3, timeout=10, what="the third message")
            self.assertEqual(bob.reads, [])
        finally:
            for client in (laptop, phone, bob):
                await client.close()

    async def test_the_online_list_is_one_list_across_processes(self) -> None:
        alice, bob, carol = await self.clients("alice", "bob", "carol")
        await alice.connect(self.a.url)
        await bob.connect(self.b.url)
        await carol.connect(self.a.url)
        try:
            self.assertEqual(carol.online, {"alice", "bob", "carol"})
            for client in (alice, bob):
                await eventually(lambda c=client: c.online == {"alice", "bob", "carol"}, timeout=10, what="carol")
        finally:
            for client in (alice, bob, carol):
                await client.close()

    async def test_killing_a_process_loses_no_acknowledged_message_and_its_users_leave(self) -> None:
        alice, bob, carol, dave = await self.clients("alice", "bob", "carol", "dave")
        await alice.connect(self.a.url)
        await carol.connect(self.a.url)
        await dave.connect(self.a.url)  # dave's client never comes back after the crash
        await bob.connect(self.b.url)
        senders = (alice, bob, carol)
        per_sender = 60
        try:
            counter = itertools.count()
            for round_ in range(per_sender):
                for client in senders:
                    await client.send(f"{client.you} {round_} #{next(counter)}")
                if round_ == per_sender // 3:
                    await sync_to_async(self.a.kill)()
                    for client in (alice, carol):
                        await client.close()
                        await client.connect(self.b.url)  # the load balancer's other process
                await asyncio.sleep(0.01)

            await eventually(lambda: all(not c.outbox for c in senders), timeout=20, what="every message acked")
            self.assertEqual((alice.connections, carol.connections), (2, 2))
            rows = await sync_to_async(
                lambda: list(Message.objects.filter(room__name=ROOM).values_list("seq", "body", "client_id"))
            )()
            seqs = [seq for seq, _, _ in rows]
            self.assertEqual(seqs, list(range(1, len(rows) + 1)), "seq 1..max without a gap")
            self.assertEqual(len(rows), per_sender * len(senders), "every message stored exactly once")
            acked = {cid: seq for c in senders for cid, seq in c.acked.items()}
            self.assertEqual(acked, {cid: seq for seq, _, cid in rows})
            expected = {seq: body for seq, body, _ in rows}
            for client in senders:
                await client.ping()  # the pong's last_seq makes the client fetch any tail it missed
                await eventually(lambda c=client: len(c.view) == len(expected), timeout=20, what="full view")
                self.assertEqual({seq: m["body"] for seq, m in client.view.items()}, expected)

            await eventually(lambda: "dave" not in bob.online, timeout=20, what="dave's leave after the crash")
            self.assertEqual(bob.online, {"alice", "bob", "carol"})
            online = await sync_to_async(
                lambda: sorted(set(Room.objects.get(name=ROOM).presences.values_list("name", flat=True)))
            )()
            self.assertEqual(online, ["alice", "bob", "carol"])
        finally:
            for client in (alice, bob, carol, dave):
                await client.close()


class RedisRestartTests(TransactionTestCase):
    """The harness owns this Redis, so restarting it disturbs nothing else on the machine."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_redis_and_postgres()

    def setUp(self) -> None:
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        env = {**FAST_PRESENCE, "REDIS_URL": self.redis.url}
        self.a = Server(env=env).start()
        self.b = Server(env=env).start()
        self.addCleanup(self.b.stop)
        self.addCleanup(self.a.stop)

    def tearDown(self) -> None:
        for server in (self.a, self.b):
            self.assertIsNone(server.process.poll() if server.process else None, "a server process exited")
            log = server.log()
            self.assertNotIn("Traceback", log, f"server {server.url} logged a traceback:\n{log}")

    async def test_after_an_empty_redis_restart_every_client_receives_live_messages_again(self) -> None:
        cookies = [await sync_to_async(session_cookie)(name) for name in ("alice", "bob")]
        alice, bob = (ChatClient(room=ROOM, cookie=cookie) for cookie in cookies)
        await alice.connect(self.a.url)
        await bob.connect(self.b.url)
        try:
            await alice.send("before")
            await eventually(lambda: len(bob.view) == 1, timeout=10, what="the first message")

            await sync_to_async(self.redis.kill)()
            await alice.send("while redis is down")  # stored and acked: the log does not need Redis
            await eventually(lambda: not alice.outbox, timeout=10, what="an ack while Redis is down")
            await sync_to_async(self.redis.start)()

            # Within a few seconds of Redis returning, live delivery works again both ways, with no reconnect.
            loop = asyncio.get_running_loop()
            back = loop.time()
            await eventually(lambda: self.a.healthy() and self.b.healthy(), timeout=10, what="healthz")
            sent = 0
            while loop.time() - back < 15 and not (
                any(m["body"].startswith("live a") for m in bob.view.values())
                and any(m["body"].startswith("live b") for m in alice.view.values())
            ):
                sent += 1
                await alice.send(f"live a {sent}")
                await bob.send(f"live b {sent}")
                await asyncio.sleep(0.5)
            self.assertTrue(any(m["body"].startswith("live a") for m in bob.view.values()), "b never got live")
            self.assertTrue(any(m["body"].startswith("live b") for m in alice.view.values()), "a never got live")
            self.assertEqual((alice.connections, bob.connections), (1, 1))
            # And the message sent during the outage reached bob too, from the log.
            await bob.ping()
            await eventually(
                lambda: "while redis is down" in [m["body"] for m in bob.view.values()],
                timeout=10,
                what="the outage message",
            )
        finally:
            await alice.close()
            await bob.close()


def private_room(name: str, **roles: str) -> None:
    room = Room.objects.create(name=name, kind=RoomKind.PRIVATE)
    for username, role in roles.items():
        Membership.objects.create(room=room, user=get_user_model().objects.get(username=username), role=role)


class TwoProcessAccessTests(TwoProcessCase):
    """A kick, ban or mute taken on one process holds on the other: it is in the database, and its entry reaches
    every socket of the person there."""

    async def test_a_kick_on_one_process_closes_the_persons_sockets_on_both_within_a_second(self) -> None:
        mod, ada = await self.clients("mod", "ada")
        await sync_to_async(private_room)(ROOM, mod=Role.MODERATOR, ada=Role.MEMBER)
        phone = ChatClient(room=ROOM, cookie=ada.cookie)
        await mod.connect(self.a.url)
        await ada.connect(self.a.url)
        await phone.connect(self.b.url)
        try:
            kicked = time.monotonic()
            await mod.moderate("kick", "ada")
            await eventually(lambda: not ada.connected and not phone.connected, timeout=1.0, what="both closed")
            self.assertLess(time.monotonic() - kicked, 1.0)
            self.assertEqual((ada.close_codes, phone.close_codes), ([4403], [4403]))
            with self.assertRaises(ConnectionError):
                await phone.connect(self.b.url)  # closed with 4403 again: no hello
        finally:
            for client in (mod, ada, phone):
                await client.close()

    async def test_a_mute_on_one_process_refuses_the_persons_messages_on_the_other(self) -> None:
        mod, ada = await self.clients("mod", "ada")
        await sync_to_async(private_room)(ROOM, mod=Role.MODERATOR, ada=Role.MEMBER)
        await mod.connect(self.a.url)
        await ada.connect(self.b.url)
        try:
            muted = await mod.moderate("mute", "ada", seconds=600)
            await eventually(lambda: muted in mod.acked, what="the mute's ack")
            said = await ada.send("still here?")
            await eventually(lambda: said in ada.refused, timeout=10, what="the refusal")
            self.assertEqual(ada.refused[said], "muted")
        finally:
            await mod.close()
            await ada.close()

    async def test_a_ban_on_one_process_closes_the_persons_sockets_on_both_and_keeps_them_out(self) -> None:
        mod, ada = await self.clients("mod", "ada")

        @sync_to_async
        def public_room_with_a_moderator() -> None:
            room = Room.objects.create(name=ROOM)
            Membership.objects.create(room=room, user=get_user_model().objects.get(username="mod"), role=Role.MODERATOR)

        await public_room_with_a_moderator()
        phone = ChatClient(room=ROOM, cookie=ada.cookie)
        await mod.connect(self.b.url)
        await ada.connect(self.a.url)
        await phone.connect(self.b.url)
        try:
            banned = time.monotonic()
            await mod.moderate("ban", "ada")
            await eventually(lambda: not ada.connected and not phone.connected, timeout=1.0, what="both closed")
            self.assertLess(time.monotonic() - banned, 1.0)
            self.assertEqual((ada.close_codes, phone.close_codes), ([4403], [4403]))
            for server in (self.a, self.b):
                with self.assertRaises(ConnectionError):
                    await ada.connect(server.url)
        finally:
            for client in (mod, ada, phone):
                await client.close()
