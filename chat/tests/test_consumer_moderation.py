"""Access and moderation over the room socket: 4403 before any frame, moderate and report frames, kicks and bans
closing the person's sockets, mutes and slow mode answered with their error frames."""

import asyncio
import json
import time
from typing import Any
from unittest import mock

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat import protocol, services
from chat.fanout import hub
from chat.identity import Identity
from chat.models import Membership, Message, Report, Role, Room, RoomKind
from chat.store import store_one

from .helpers import QUIET_SECONDS
from .test_consumers import TIMEOUT, ConsumerTestCase, Socket


@sync_to_async
def make_room(name: str, kind: str = RoomKind.PUBLIC, **roles: Role) -> None:
    room = Room.objects.create(name=name, kind=kind)
    for username, role in roles.items():
        user = User.objects.get_or_create(username=username)[0]
        Membership.objects.create(room=room, user=user, role=role)


class ModerationSocketTestCase(ConsumerTestCase):
    async def refused_with(self, socket: Socket) -> Any:
        """Connect and return the first thing the server sends, which must be a close."""
        connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
        self.assertTrue(connected)  # accepted first, so that the page sees the close code
        return await socket.communicator.receive_output(timeout=TIMEOUT)

    async def closed_with(self, socket: Socket, code: int) -> None:
        while True:
            output = await socket.communicator.receive_output(timeout=TIMEOUT)
            if output["type"] == "websocket.close":
                self.assertEqual(output["code"], code)
                return

    async def moderate(self, socket: Socket, action: str, user: str | None = None, **extra: Any) -> dict[str, Any]:
        """Send a moderate frame; its answer (an ack or an error)."""
        await socket.send({"type": "moderate", "action": action, "user": user, "client_id": f"mod-{action}", **extra})
        while True:
            frame = await socket.receive()
            if frame["type"] in ("ack", "error"):
                return frame


class ConnectTests(ModerationSocketTestCase):
    async def test_a_non_member_of_a_private_room_is_closed_with_4403_before_any_frame(self) -> None:
        await make_room("team", RoomKind.PRIVATE, ada=Role.OWNER)
        for cookie in (await self.login_cookie("eve"), None):
            socket = await self.connect("/ws/chat/team/", cookie=cookie)
            self.assertEqual(await self.refused_with(socket), {"type": "websocket.close", "code": 4403})

    async def test_a_member_of_a_private_room_gets_its_hello(self) -> None:
        await make_room("team", RoomKind.PRIVATE, ada=Role.MEMBER)
        socket = await self.open("team", cookie=await self.login_cookie("ada"))
        self.assertEqual(socket.hello["room"], "team")

    async def test_a_direct_rooms_name_that_is_no_room_is_4403_like_one_that_is_and_is_not_made(self) -> None:
        socket = await self.connect("/ws/chat/dm-1-2/", cookie=await self.login_cookie("ada"))
        self.assertEqual(await self.refused_with(socket), {"type": "websocket.close", "code": 4403})
        self.assertFalse(await sync_to_async(Room.objects.filter(name="dm-1-2").exists)())

    async def test_a_banned_person_is_closed_with_4403_and_an_unbanned_one_comes_back(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        bob_cookie = await self.login_cookie("bob")
        self.assertEqual((await self.moderate(mod, "ban", "bob"))["type"], "ack")
        refused = await self.refused_with(await self.connect("/ws/chat/town/", cookie=bob_cookie))
        self.assertEqual(refused["code"], 4403)
        self.assertEqual((await self.moderate(mod, "unban", "bob"))["type"], "ack")
        await self.open("town", cookie=bob_cookie)


class KickAndBanTests(ModerationSocketTestCase):
    async def test_a_kick_closes_each_of_the_persons_sockets_with_4403_within_a_second(self) -> None:
        await make_room("team", RoomKind.PRIVATE, mod=Role.MODERATOR, ada=Role.MEMBER, bob=Role.MEMBER)
        mod = await self.open("team", cookie=await self.login_cookie("mod"))
        ada_cookie = await self.login_cookie("ada")
        tabs = [await self.open("team", cookie=ada_cookie) for _ in range(2)]
        bob = await self.open("team", cookie=await self.login_cookie("bob"))
        started = time.monotonic()
        self.assertEqual((await self.moderate(mod, "kick", "ada"))["type"], "ack")
        for tab in tabs:
            await self.closed_with(tab, protocol.CLOSE_FORBIDDEN)
        self.assertLess(time.monotonic() - started, 1.0)
        notice = await bob.receive_type("moderation")
        self.assertEqual((notice["action"], notice["user"], notice["by"]), ("kick", "ada", "mod"))
        self.assertFalse(await sync_to_async(Membership.objects.filter(user__username="ada").exists)())

    async def test_a_kicked_member_cannot_reconnect_or_resume(self) -> None:
        await make_room("team", RoomKind.PRIVATE, mod=Role.MODERATOR, ada=Role.MEMBER)
        mod = await self.open("team", cookie=await self.login_cookie("mod"))
        ada_cookie = await self.login_cookie("ada")
        await self.moderate(mod, "kick", "ada")
        for query in ("", "?after=0"):
            socket = await self.connect(f"/ws/chat/team/{query}", cookie=ada_cookie)
            self.assertEqual((await self.refused_with(socket))["code"], 4403)

    async def test_a_kick_from_a_public_room_disconnects_and_they_may_come_back(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        ada_cookie = await self.login_cookie("ada")
        ada = await self.open("town", cookie=ada_cookie)
        await ada.send({"type": "message", "body": "hi", "client_id": "c1"})
        await ada.receive_type("ack")
        await self.moderate(mod, "kick", "ada")
        await self.closed_with(ada, protocol.CLOSE_FORBIDDEN)
        await self.open("town", cookie=ada_cookie)

    async def test_a_kick_whose_live_event_was_lost_closes_the_socket_when_it_catches_up(self) -> None:
        await make_room("team", RoomKind.PRIVATE, mod=Role.MODERATOR, ada=Role.MEMBER)
        ada = await self.open("team", cookie=await self.login_cookie("ada"))

        def kick_without_broadcast() -> None:
            mod = User.objects.get(username="mod")
            room = Room.objects.get(name="team")
            store_one(services.moderation(room=room, identity=Identity("mod", mod), action="kick", subject="ada"))

        await sync_to_async(kick_without_broadcast)()
        for member in hub.rooms["team"].members.values():
            member.resync()  # what the fan-out does once the layer answers again
        await self.closed_with(ada, protocol.CLOSE_FORBIDDEN)


class ModerateFrameTests(ModerationSocketTestCase):
    async def test_a_member_is_answered_forbidden_and_nothing_is_stored(self) -> None:
        await make_room("town")
        ada = await self.open("town", cookie=await self.login_cookie("ada"))
        await self.open("town", cookie=await self.login_cookie("bob"))
        answer = await self.moderate(ada, "mute", "bob")
        self.assertEqual((answer["type"], answer["code"]), ("error", protocol.FORBIDDEN))
        self.assertFalse(await sync_to_async(Message.objects.exists)())

    async def test_a_bad_moderate_frame_is_answered_bad_frame(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        for frame in (
            {"action": "explode", "user": "x"},
            {"action": "mute"},
            {"action": "slow_mode"},
            {"action": "ban", "user": "x", "seconds": -1},
            {"action": "ban", "user": "x", "seconds": True},
        ):
            with self.subTest(frame=frame):
                await mod.send({"type": "moderate", **frame})
                self.assertEqual((await mod.receive_type("error"))["code"], protocol.BAD_FRAME)

    async def test_the_action_is_acked_with_its_seq_and_shown_to_the_room(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        ada = await self.open("town", cookie=await self.login_cookie("ada"))
        answer = await self.moderate(mod, "slow_mode", seconds=10)
        self.assertEqual(answer, {"type": "ack", "client_id": "mod-slow_mode", "seq": 1})
        notice = await ada.receive_type("moderation")
        self.assertEqual((notice["seq"], notice["user"], notice["seconds"]), (1, None, 10))

    async def test_a_resume_replays_moderation_entries(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        await self.moderate(mod, "slow_mode", seconds=5)
        again = await self.open("town", query="?after=0", cookie=await self.login_cookie("ada"))
        self.assertEqual((await again.receive_type("moderation"))["action"], "slow_mode")


class MuteAndSlowModeTests(ModerationSocketTestCase):
    async def test_a_muted_persons_message_is_answered_muted_with_until(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        ada = await self.open("town", cookie=await self.login_cookie("ada"))
        await self.moderate(mod, "mute", "ada", seconds=300)
        await ada.receive_type("moderation")
        await ada.send({"type": "message", "body": "hi", "client_id": "c1"})
        error = await ada.receive_type("error")
        self.assertEqual(error["code"], protocol.MUTED)
        self.assertTrue(error["until"].endswith("Z"))

    async def test_slow_mode_answers_a_second_message_with_retry_after(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        ada = await self.open("town", cookie=await self.login_cookie("ada"))
        await self.moderate(mod, "slow_mode", seconds=60)
        for n in (1, 2):
            await ada.send({"type": "message", "body": f"hi {n}", "client_id": f"c{n}"})
        await ada.receive_type("ack")
        error = await ada.receive_type("error")
        self.assertEqual(error["code"], protocol.SLOW_MODE)
        self.assertGreater(error["retry_after"], 50)


class ReportTests(ModerationSocketTestCase):
    async def test_a_report_is_acked_stored_and_not_broadcast(self) -> None:
        await make_room("town")
        ada = await self.open("town", cookie=await self.login_cookie("ada"))
        bob = await self.open("town", cookie=await self.login_cookie("bob"))
        await ada.send({"type": "message", "body": "rude", "client_id": "c1"})
        seq = (await ada.receive_each("ack", "message"))["ack"]["seq"]
        await bob.receive_type("message")
        await bob.send({"type": "report", "target": seq, "reason": "rude words"})
        self.assertEqual(await bob.receive_type("ack"), {"type": "ack", "client_id": None, "seq": None})
        self.assertEqual(await sync_to_async(Report.objects.count)(), 1)
        await ada.assert_no_messages()

    async def test_a_reason_over_500_characters_is_a_bad_frame(self) -> None:
        await make_room("town")
        ada = await self.open("town", cookie=await self.login_cookie("ada"))
        await ada.send({"type": "report", "target": 1, "reason": "x" * 501})
        self.assertEqual((await ada.receive_type("error"))["code"], protocol.BAD_FRAME)


class RevokeTests(ModerationSocketTestCase):
    async def test_a_revoke_closes_only_that_persons_sockets(self) -> None:
        await make_room("team", RoomKind.PRIVATE, ada=Role.MEMBER, bob=Role.MEMBER)
        ada = await self.open("team", cookie=await self.login_cookie("ada"))
        bob = await self.open("team", cookie=await self.login_cookie("bob"))

        @sync_to_async
        def ada_leaves() -> None:
            room = Room.objects.get(name="team")
            services.revoke(room, f"user:{User.objects.get(username='ada').pk}")

        await ada_leaves()
        await self.closed_with(ada, protocol.CLOSE_FORBIDDEN)
        await bob.send({"type": "ping"})
        self.assertEqual((await bob.receive_type("pong"))["type"], "pong")


class RaceTests(ModerationSocketTestCase):
    """What reaches a person whose access ends while their socket connects, or in the batch that ends it."""

    async def outputs_until_close(self, socket: Socket) -> list[dict[str, Any]]:
        """Everything the socket is handed up to its close, and anything handed after it (which a real server
        might still write before its close frame)."""
        frames: list[dict[str, Any]] = []
        closed = False
        while not closed or not await socket.communicator.receive_nothing(timeout=QUIET_SECONDS):
            output = await socket.communicator.receive_output(timeout=TIMEOUT)
            closed = closed or output["type"] == "websocket.close"
            frames.append(output if output["type"] == "websocket.close" else json.loads(output["text"]))
        return frames

    async def test_a_kick_committed_just_after_the_connects_access_check_closes_it_before_any_frame(self) -> None:
        await make_room("team", RoomKind.PRIVATE, mod=Role.MODERATOR, eve=Role.MEMBER)
        original = services.room_for

        def check_then_kick(name: str, identity: Identity) -> Any:
            found = original(name, identity)
            mod = Identity("mod", User.objects.get(username="mod"))
            services.entry_create(services.moderation(room=found[0], identity=mod, action="kick", subject="eve"))
            return found

        socket = await self.connect("/ws/chat/team/", cookie=await self.login_cookie("eve"))
        with mock.patch.object(services, "room_for", check_then_kick):
            await socket.communicator.connect(timeout=TIMEOUT)
            outputs = await self.outputs_until_close(socket)
        self.assertEqual(outputs, [{"type": "websocket.close", "code": 4403}])

    async def test_nothing_committed_with_a_ban_reaches_the_banned_person(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        await self.open("town", cookie=await self.login_cookie("mod"))
        eve = await self.open("town", cookie=await self.login_cookie("eve"))
        room = await sync_to_async(Room.objects.get)(name="town")
        mod = Identity("mod", await sync_to_async(User.objects.get)(username="mod"))
        ban = services.moderation(room=room, identity=mod, action="ban", subject="eve")
        # eve has to have posted, to be found by name as a guest would; she is a user here, found by username.
        after = services.draft(room=room, author="mod", user=mod.user, body="said after the ban")
        await asyncio.gather(services.apost(ban), services.apost(after))
        frames = await self.outputs_until_close(eve)
        self.assertEqual(frames[-1], {"type": "websocket.close", "code": 4403})
        self.assertNotIn("said after the ban", json.dumps(frames))

    async def test_a_member_removed_without_any_event_is_closed_at_the_next_ping(self) -> None:
        await make_room("team", RoomKind.PRIVATE, eve=Role.MEMBER)
        eve = await self.open("team", cookie=await self.login_cookie("eve"))
        await sync_to_async(Membership.objects.filter(user__username="eve").delete)()  # as if its revoke were lost
        await eve.send({"type": "ping"})
        await self.closed_with(eve, protocol.CLOSE_FORBIDDEN)

    async def test_a_moderate_frame_naming_nobody_a_database_could_look_up_is_a_bad_frame(self) -> None:
        await make_room("town", mod=Role.MODERATOR)
        mod = await self.open("town", cookie=await self.login_cookie("mod"))
        for user in ("\\ud800", "\\u0000", "   ", "x" * 151):
            with self.subTest(user=user):
                await mod.communicator.send_to(text_data=f'{{"type":"moderate","action":"ban","user":"{user}"}}')
                self.assertEqual((await mod.receive_type("error"))["code"], protocol.BAD_FRAME)
        await mod.send({"type": "ping"})
        await mod.receive_type("pong")
