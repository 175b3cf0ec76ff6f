"""Edits, deletes, reactions and replies over the room socket: acks, errors, live frames, resume and history."""

from typing import Any

from asgiref.sync import sync_to_async
from django.test import override_settings

from chat import services
from chat.models import Message

from .test_consumers import ConsumerTestCase, Socket

THUMBS = "\N{THUMBS UP SIGN}"


class EntryFrameTests(ConsumerTestCase):
    async def two_in_a_room(self) -> tuple[Socket, Socket]:
        ada = await self.open("lobby", cookie=await self.login_cookie("ada"))
        bob = await self.open("lobby", cookie=await self.login_cookie("bob"))
        await ada.receive_type("join")
        return ada, bob

    async def say(self, socket: Socket, body: str = "hello", **extra: Any) -> int:
        await socket.send({"type": "message", "body": body, "client_id": f"m-{body}", **extra})
        return (await socket.receive_type("ack"))["seq"]

    async def test_every_socket_gets_each_change_live_once_the_sender_included(self) -> None:
        ada, bob = await self.two_in_a_room()
        seq = await self.say(ada, "helo")
        await bob.receive_type("message")
        await ada.send({"type": "edit", "target": seq, "body": "hello", "client_id": "e-1"})
        await bob.send({"type": "react", "target": seq, "emoji": THUMBS, "on": True, "client_id": "r-1"})
        await ada.send({"type": "delete", "target": seq, "client_id": "d-1"})
        for socket in (ada, bob):
            edit = await socket.receive_type("edit")
            reaction = await socket.receive_type("reaction")
            delete = await socket.receive_type("delete")
            self.assertEqual((edit["target"], edit["body"], edit["by"]), (seq, "hello", "ada"))
            self.assertEqual((reaction["emoji"], reaction["user"], reaction["on"]), (THUMBS, "bob", True))
            self.assertEqual((delete["seq"], delete["by"]), (seq + 3, "ada"))
        await ada.assert_no_messages()

    async def test_a_change_is_acked_with_the_seq_of_its_entry_and_a_resend_gets_the_same_ack(self) -> None:
        ada, _ = await self.two_in_a_room()
        seq = await self.say(ada)
        frame = {"type": "react", "target": seq, "emoji": THUMBS, "client_id": "r-1"}
        await ada.send(frame)
        first = await ada.receive_type("ack")
        await ada.send(frame)
        again = await ada.receive_type("ack")
        self.assertEqual(first, {"type": "ack", "client_id": "r-1", "seq": seq + 1})
        self.assertEqual(again, first)
        self.assertEqual(await sync_to_async(Message.objects.count)(), 2)

    async def test_a_reaction_already_made_without_a_client_id_is_acked_with_the_seq_that_made_it(self) -> None:
        ada, _ = await self.two_in_a_room()
        seq = await self.say(ada)
        for _ in range(2):
            await ada.send({"type": "react", "target": seq, "emoji": THUMBS})
        acks = [await ada.receive_type("ack") for _ in range(2)]
        self.assertEqual([a["seq"] for a in acks], [seq + 1, seq + 1])

    async def test_editing_someone_elses_message_is_answered_forbidden_and_stores_nothing(self) -> None:
        ada, bob = await self.two_in_a_room()
        seq = await self.say(ada)
        await bob.send({"type": "edit", "target": seq, "body": "mine", "client_id": "e-1"})
        error = await bob.receive_type("error")
        self.assertEqual(error["code"], "forbidden")
        self.assertEqual(await sync_to_async(Message.objects.count)(), 1)

    async def test_each_rule_answers_its_own_error_code(self) -> None:
        ada, bob = await self.two_in_a_room()
        seq = await self.say(ada)
        cases = [
            ({"type": "edit", "target": 99, "body": "x"}, "not_found"),
            ({"type": "delete", "target": seq}, "forbidden"),
            ({"type": "react", "target": seq, "emoji": "\N{PILE OF POO}"}, "bad_reaction"),
            ({"type": "react", "target": seq, "emoji": THUMBS, "on": "yes"}, "bad_frame"),
            ({"type": "edit", "target": 0, "body": "x"}, "bad_frame"),
            ({"type": "message", "body": "re", "reply_to": 99}, "not_found"),
        ]
        for frame, code in cases:
            await bob.send(frame)
            self.assertEqual((await bob.receive_type("error"))["code"], code, frame)
        await ada.send({"type": "delete", "target": seq})
        await ada.receive_type("ack")
        for frame in (
            {"type": "edit", "target": seq, "body": "x"},
            {"type": "react", "target": seq, "emoji": THUMBS},
            {"type": "message", "body": "re", "reply_to": seq},
            {"type": "versions", "target": seq},
        ):
            await ada.send(frame)
            self.assertEqual((await ada.receive_type("error"))["code"], "gone", frame)

    @override_settings(CHAT_RATE_LIMIT_BURST=2, CHAT_RATE_LIMIT_PER_SECOND=0.001)
    async def test_changes_count_against_the_rate_limit_like_messages(self) -> None:
        ada, _ = await self.two_in_a_room()
        seq = await self.say(ada)
        await ada.send({"type": "react", "target": seq, "emoji": THUMBS})
        await ada.receive_type("ack")
        await ada.send({"type": "edit", "target": seq, "body": "again"})
        self.assertEqual((await ada.receive_type("error"))["code"], "rate_limited")

    async def test_a_reply_carries_its_target_and_a_quote(self) -> None:
        ada, bob = await self.two_in_a_room()
        seq = await self.say(ada, "question")
        await bob.receive_type("message")
        await bob.send({"type": "message", "body": "answer", "client_id": "m-2", "reply_to": seq})
        reply = await ada.receive_type("message")
        while reply["body"] != "answer":  # ada's own "question" came first
            reply = await ada.receive_type("message")
        self.assertEqual(reply["reply_to"], seq)
        self.assertEqual(reply["quote"], {"author": "ada", "body": "question", "deleted": False})

    async def test_versions_lists_the_bodies_a_message_had(self) -> None:
        ada, _ = await self.two_in_a_room()
        seq = await self.say(ada, "one")
        await ada.send({"type": "edit", "target": seq, "body": "two"})
        await ada.receive_type("ack")
        await ada.send({"type": "versions", "target": seq})
        answer = await ada.receive_type("versions")
        self.assertEqual([v["body"] for v in answer["versions"]], ["one", "two"])

    async def test_a_resume_carries_changes_and_each_message_in_its_current_state(self) -> None:
        ada, _ = await self.two_in_a_room()
        first = await self.say(ada, "one")
        await self.say(ada, "two")
        await ada.send({"type": "edit", "target": first, "body": "uno"})
        await ada.send({"type": "react", "target": first + 1, "emoji": THUMBS})
        await ada.receive_type("ack")
        await ada.receive_type("ack")
        late = await self.open("lobby", query=f"?after={first}", cookie=await self.login_cookie("cy"))
        frames = [await late.receive() for _ in range(3)]
        self.assertEqual([(f["type"], f["seq"]) for f in frames], [("message", 2), ("edit", 3), ("reaction", 4)])
        self.assertEqual((frames[0]["reactions"], frames[0]["state_seq"]), ({THUMBS: ["ada"]}, 4))
        self.assertEqual(late.hello["last_seq"], 4)

    async def test_history_answers_entries_of_every_kind(self) -> None:
        ada, _ = await self.two_in_a_room()
        seq = await self.say(ada)
        await ada.send({"type": "react", "target": seq, "emoji": THUMBS})
        await ada.receive_type("ack")
        await ada.send({"type": "history", "before": 3, "limit": 10})
        history = await ada.receive_type("history")
        self.assertEqual([m["type"] for m in history["messages"]], ["message", "reaction"])

    async def test_a_delete_made_outside_the_socket_reaches_it_live(self) -> None:
        ada, _ = await self.two_in_a_room()
        seq = await self.say(ada)

        def moderate() -> None:
            from django.contrib.auth import get_user_model

            from chat.identity import Identity
            from chat.models import Room

            staff = get_user_model().objects.create(username="mod", is_staff=True)
            services.message_delete(
                room=Room.objects.get(name="lobby"), seq=seq, identity=Identity(name="mod", user=staff)
            )

        await sync_to_async(moderate)()
        delete = await ada.receive_type("delete")
        self.assertEqual((delete["target"], delete["by"]), (seq, "mod"))
