"""Edits, deletes, reactions and replies: each an entry of the room's log, through the one write path.

The rules are the store's (they need the message's state, read under the room's lock); these tests go through
chat.services as the admin and the consumer do.
"""

from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from chat import protocol, selectors, services
from chat.exceptions import ClientError
from chat.identity import Identity
from chat.models import Kind, Message, Room
from chat.services import change, entry_create
from chat.store import Change, Draft, Posted, store_all

from .helpers import ChatTransactionTestCase, run_in_threads

THUMBS = "\N{THUMBS UP SIGN}"
EYES = "\N{EYES}"


def guest(name: str = "ada (guest)", guest_id: str | None = "g-ada") -> Identity:
    return Identity(name=name, user=None, guest_id=guest_id)


def say(room: Room, who: Identity, body: str = "hello", **extra: Any) -> Posted:
    return entry_create(
        services.draft(room=room, author=who.name, user=who.user, guest_id=who.guest_id, body=body, **extra)
    )


def edit(room: Room, who: Identity, target: int, body: str, **extra: Any) -> Posted:
    return entry_create(change(room=room, identity=who, kind=Kind.EDIT, target=target, body=body, **extra))


def delete(room: Room, who: Identity, target: int, **extra: Any) -> Posted:
    return entry_create(change(room=room, identity=who, kind=Kind.DELETE, target=target, **extra))


def react(room: Room, who: Identity, target: int, emoji: str = THUMBS, on: bool = True, **extra: Any) -> Posted:
    return entry_create(change(room=room, identity=who, kind=Kind.REACTION, target=target, emoji=emoji, on=on, **extra))


def message(room: Room, seq: int) -> Message:
    return Message.objects.get(room=room, seq=seq)


class EntryTestCase(ChatTransactionTestCase):
    """Transactional: the log readers are database_sync_to_async helpers, which need real commits."""

    available_apps = ["chat", "django.contrib.auth", "django.contrib.contenttypes"]

    def setUp(self) -> None:
        self.room = Room.objects.create(name="general")
        self.ada = guest()

    def assertRefused(self, code: str, call: Any, *args: Any, **kwargs: Any) -> None:
        before = Message.objects.count()
        with self.assertRaises(ClientError) as caught:
            call(*args, **kwargs)
        self.assertEqual(caught.exception.code, code)
        self.assertEqual(Message.objects.count(), before, "a refused change stored nothing")


class EditTests(EntryTestCase):
    def test_an_edit_is_an_entry_with_the_next_seq_and_changes_the_message_state(self) -> None:
        say(self.room, self.ada, "helo")
        posted = edit(self.room, self.ada, 1, "hello")
        self.assertEqual((posted.message.seq, posted.message.kind, posted.message.target_seq), (2, Kind.EDIT, 1))
        target = message(self.room, 1)
        self.assertEqual((target.body, target.state_seq, target.first_body), ("hello", 2, "helo"))
        self.assertIsNotNone(target.edited_at)

    def test_a_message_frame_carries_its_state_after_an_edit(self) -> None:
        say(self.room, self.ada, "helo")
        edit(self.room, self.ada, 1, "hello")
        frame = selectors.message_payload(message(self.room, 1), "general")
        self.assertEqual((frame["body"], frame["state_seq"], frame["deleted"]), ("hello", 2, False))
        self.assertTrue(frame["edited_at"].endswith("Z"))

    def test_the_edit_frame_names_its_target_and_editor(self) -> None:
        say(self.room, self.ada, "helo")
        posted = edit(self.room, self.ada, 1, "hello")
        frame = selectors.message_payload(posted.message, "general")
        self.assertEqual(
            {k: frame[k] for k in ("type", "seq", "target", "body", "by")},
            {"type": "edit", "seq": 2, "target": 1, "body": "hello", "by": "ada (guest)"},
        )

    def test_editing_someone_elses_message_is_forbidden(self) -> None:
        say(self.room, self.ada)
        self.assertRefused(protocol.FORBIDDEN, edit, self.room, guest("bob (guest)", "g-bob"), 1, "mine now")

    def test_a_guest_with_the_same_nickname_cannot_edit_another_guests_message(self) -> None:
        say(self.room, self.ada)
        self.assertRefused(protocol.FORBIDDEN, edit, self.room, guest("ada (guest)", "g-other"), 1, "mine now")

    def test_a_signed_in_user_edits_by_user_id(self) -> None:
        user = get_user_model().objects.create(username="grace")
        grace = Identity(name="grace", user=user)
        say(self.room, grace)
        edit(self.room, grace, 1, "edited")
        self.assertEqual(message(self.room, 1).body, "edited")
        self.assertRefused(protocol.FORBIDDEN, edit, self.room, guest("grace", None), 1, "no")

    def test_nobody_edits_a_message_the_system_posted(self) -> None:
        services.message_create(room=self.room, author="system", body="notice")
        self.assertRefused(protocol.FORBIDDEN, edit, self.room, guest("system", None), 1, "no")

    @override_settings(CHAT_EDIT_SECONDS=60)
    def test_an_edit_after_the_edit_window_is_too_late(self) -> None:
        say(self.room, self.ada)
        Message.objects.filter(seq=1).update(created=timezone.now() - timedelta(seconds=61))
        self.assertRefused(protocol.TOO_LATE, edit, self.room, self.ada, 1, "late")

    @override_settings(CHAT_EDIT_SECONDS=0)
    def test_an_edit_window_of_zero_never_closes(self) -> None:
        say(self.room, self.ada)
        Message.objects.filter(seq=1).update(created=timezone.now() - timedelta(days=400))
        edit(self.room, self.ada, 1, "still mine")
        self.assertEqual(message(self.room, 1).body, "still mine")

    def test_editing_a_deleted_message_is_gone(self) -> None:
        say(self.room, self.ada)
        delete(self.room, self.ada, 1)
        self.assertRefused(protocol.GONE, edit, self.room, self.ada, 1, "back")

    def test_editing_a_seq_that_is_not_a_message_is_not_found(self) -> None:
        say(self.room, self.ada)
        react(self.room, self.ada, 1)
        self.assertRefused(protocol.NOT_FOUND, edit, self.room, self.ada, 2, "no")
        self.assertRefused(protocol.NOT_FOUND, edit, self.room, self.ada, 99, "no")

    def test_an_edit_body_follows_the_message_rules(self) -> None:
        say(self.room, self.ada)
        self.assertRefused(protocol.EMPTY, edit, self.room, self.ada, 1, "   ")

    def test_the_versions_are_the_first_body_then_each_edit(self) -> None:
        say(self.room, self.ada, "one")
        edit(self.room, self.ada, 1, "two")
        edit(self.room, self.ada, 1, "three")
        found = async_to_sync(selectors.versions)(self.room, target=1)
        self.assertEqual([v["body"] for v in found], ["one", "two", "three"])


class DeleteTests(EntryTestCase):
    def test_a_delete_erases_the_body_of_the_message_and_of_its_edits(self) -> None:
        say(self.room, self.ada, "secret")
        edit(self.room, self.ada, 1, "more secret")
        react(self.room, self.ada, 1)
        posted = delete(self.room, self.ada, 1)
        self.assertEqual(posted.message.seq, 4)
        target = message(self.room, 1)
        self.assertEqual((target.body, target.first_body, target.reactions), ("", None, None))
        self.assertIsNotNone(target.deleted_at)
        self.assertEqual(target.author, "ada (guest)", "the tombstone keeps who and when")
        self.assertFalse(Message.objects.filter(body__contains="secret").exists())

    def test_no_frame_of_a_deleted_message_carries_its_body(self) -> None:
        say(self.room, self.ada, "secret")
        edit(self.room, self.ada, 1, "more secret")
        delete(self.room, self.ada, 1)
        frames, _ = async_to_sync(selectors.backlog)(self.room, after=None)
        self.assertEqual([f["type"] for f in frames], ["message", "edit", "delete"])
        self.assertNotIn("secret", protocol.encode({"frames": frames}))
        self.assertEqual((frames[0]["deleted"], frames[0]["reactions"], frames[0]["state_seq"]), (True, {}, 3))

    def test_deleting_someone_elses_message_is_forbidden(self) -> None:
        say(self.room, self.ada)
        self.assertRefused(protocol.FORBIDDEN, delete, self.room, guest("bob (guest)", "g-bob"), 1)

    def test_staff_delete_anyones_message(self) -> None:
        say(self.room, self.ada)
        staff = get_user_model().objects.create(username="mod", is_staff=True)
        posted = delete(self.room, Identity(name="mod", user=staff), 1)
        self.assertEqual((posted.message.author, message(self.room, 1).is_deleted), ("mod", True))

    def test_deleting_a_deleted_message_writes_nothing_and_answers_the_delete_seq(self) -> None:
        say(self.room, self.ada)
        delete(self.room, self.ada, 1)
        again = delete(self.room, self.ada, 1)
        self.assertEqual((again.created, again.ack_seq, Message.objects.count()), (False, 2, 2))


class ReactionTests(EntryTestCase):
    def test_reactions_list_names_in_the_order_they_reacted(self) -> None:
        say(self.room, self.ada)
        react(self.room, guest("bob (guest)", "g-bob"), 1)
        react(self.room, self.ada, 1)
        react(self.room, self.ada, 1, EYES)
        frame = selectors.message_payload(message(self.room, 1), "general")
        self.assertEqual(frame["reactions"], {THUMBS: ["bob (guest)", "ada (guest)"], EYES: ["ada (guest)"]})
        self.assertEqual(frame["state_seq"], 4)

    def test_reacting_again_writes_nothing_and_answers_the_seq_that_made_it_so(self) -> None:
        say(self.room, self.ada)
        react(self.room, self.ada, 1)
        again = react(self.room, self.ada, 1)
        self.assertEqual((again.created, again.ack_seq, Message.objects.count()), (False, 2, 2))

    def test_taking_back_a_reaction_never_made_answers_null(self) -> None:
        say(self.room, self.ada)
        posted = react(self.room, self.ada, 1, on=False)
        self.assertEqual((posted.created, posted.ack_seq, Message.objects.count()), (False, None, 1))

    def test_taking_back_a_reaction_twice_answers_the_seq_that_took_it_back(self) -> None:
        say(self.room, self.ada)
        react(self.room, self.ada, 1)
        react(self.room, self.ada, 1, on=False)
        again = react(self.room, self.ada, 1, on=False)
        self.assertEqual((again.created, again.ack_seq), (False, 3))
        self.assertEqual(selectors.message_payload(message(self.room, 1), "general")["reactions"], {})

    def test_reacting_to_a_deleted_message_is_gone(self) -> None:
        say(self.room, self.ada)
        delete(self.room, self.ada, 1)
        self.assertRefused(protocol.GONE, react, self.room, self.ada, 1)

    def test_an_emoji_outside_the_reactions_setting_is_a_bad_reaction(self) -> None:
        say(self.room, self.ada)
        self.assertRefused(protocol.BAD_REACTION, react, self.room, self.ada, 1, "\N{PILE OF POO}")


class ReplyTests(EntryTestCase):
    def test_a_reply_names_its_target_and_quotes_it(self) -> None:
        say(self.room, self.ada, "question?")
        posted = say(self.room, self.ada, "answer", reply_to=1)
        frames, _ = async_to_sync(selectors.backlog)(self.room, after=1)
        self.assertEqual(posted.message.reply_to_seq, 1)
        self.assertEqual(frames[0]["reply_to"], 1)
        self.assertEqual(frames[0]["quote"], {"author": "ada (guest)", "body": "question?", "deleted": False})

    def test_replying_to_a_deleted_message_is_gone(self) -> None:
        say(self.room, self.ada)
        delete(self.room, self.ada, 1)
        self.assertRefused(protocol.GONE, say, self.room, self.ada, "late", reply_to=1)

    def test_replying_to_a_seq_that_is_not_a_message_of_this_room_is_not_found(self) -> None:
        other = Room.objects.create(name="other")
        say(other, self.ada)
        self.assertRefused(protocol.NOT_FOUND, say, self.room, self.ada, "where", reply_to=1)


class ResendTests(EntryTestCase):
    def test_a_resent_change_of_each_kind_answers_its_original_seq_and_writes_nothing(self) -> None:
        say(self.room, self.ada)
        for send in (
            lambda: edit(self.room, self.ada, 1, "two", client_id="e-1"),
            lambda: react(self.room, self.ada, 1, client_id="r-1"),
            lambda: delete(self.room, self.ada, 1, client_id="d-1"),
        ):
            first, count = send(), Message.objects.count()
            again = send()
            self.assertEqual((again.created, again.ack_seq, Message.objects.count()), (False, first.ack_seq, count))

    def test_a_resent_reply_answers_its_original_seq(self) -> None:
        say(self.room, self.ada)
        first = say(self.room, self.ada, "re", reply_to=1, client_id="m-2")
        again = say(self.room, self.ada, "re", reply_to=1, client_id="m-2")
        self.assertEqual((again.created, again.ack_seq), (False, first.ack_seq))


class BatchTests(EntryTestCase):
    def test_a_batch_mixing_kinds_takes_gapless_seqs_and_answers_each_draft(self) -> None:
        bob = guest("bob (guest)", "g-bob")
        say(self.room, self.ada, "one")
        drafts: list[Draft | Change] = [
            change(room=self.room, identity=bob, kind=Kind.REACTION, target=1, emoji=THUMBS),
            services.draft(room=self.room, author="bob", user=None, guest_id="g-bob", body="two", client_id=None),
            change(room=self.room, identity=bob, kind=Kind.EDIT, target=1, body="stolen"),  # forbidden
            change(room=self.room, identity=self.ada, kind=Kind.REACTION, target=1, emoji=THUMBS),
            change(room=self.room, identity=self.ada, kind=Kind.EDIT, target=1, body="uno"),
        ]
        outcomes = store_all(drafts)
        self.assertIsInstance(outcomes[2], ClientError)
        self.assertEqual([o.ack_seq for o in outcomes if isinstance(o, Posted)], [2, 3, 4, 5])
        self.assertEqual(list(Message.objects.values_list("seq", flat=True)), [1, 2, 3, 4, 5])
        target = message(self.room, 1)
        self.assertEqual((target.body, target.state_seq), ("uno", 5))
        self.assertEqual([p[1] for p in (target.reactions or {})[THUMBS]], ["bob (guest)", "ada (guest)"])

    def test_a_delete_in_the_same_batch_as_an_edit_erases_the_edit_it_follows(self) -> None:
        say(self.room, self.ada, "one")
        outcomes = store_all(
            [
                change(room=self.room, identity=self.ada, kind=Kind.EDIT, target=1, body="oops secret"),
                change(room=self.room, identity=self.ada, kind=Kind.DELETE, target=1),
            ]
        )
        edited = outcomes[0]
        self.assertIsInstance(edited, Posted)
        self.assertEqual(edited.message.body, "", "the edit's broadcast carries no erased body")  # type: ignore[union-attr]
        self.assertFalse(Message.objects.filter(body__contains="secret").exists())


class LogTests(EntryTestCase):
    @override_settings(CHAT_BACKLOG_LIMIT=2)
    def test_a_fresh_backlog_counts_messages_not_reactions(self) -> None:
        for body in ("one", "two", "three"):
            say(self.room, self.ada, body)
        for emoji in (THUMBS, EYES):
            react(self.room, self.ada, 2, emoji)
        frames, last_seq = async_to_sync(selectors.backlog)(self.room, after=None)
        self.assertEqual([f["seq"] for f in frames], [2, 3, 4, 5])
        self.assertEqual(last_seq, 5)

    def test_history_holds_entries_of_every_kind_and_limit_counts_entries(self) -> None:
        say(self.room, self.ada)
        react(self.room, self.ada, 1)
        edit(self.room, self.ada, 1, "two")
        say(self.room, self.ada, "three")
        frames, has_more = async_to_sync(selectors.history)(self.room, before=4, limit=2)
        self.assertEqual(([f["type"] for f in frames], has_more), (["reaction", "edit"], True))


class ConcurrentWriterTests(ChatTransactionTestCase):
    """Writers in their own threads and connections, as several server processes are: seqs stay gapless."""

    def test_concurrent_writers_mixing_every_kind_leave_gapless_seqs_and_consistent_state(self) -> None:
        room = Room.objects.create(name="general")
        people = [guest(f"p{i} (guest)", f"g-{i}") for i in range(6)]
        for who in people:
            say(room, who, "first")

        def write(index: int) -> None:
            who = people[index]
            mine = index + 1  # each person's own first message
            for round_ in range(5):
                say(room, who, f"r{round_}")
                edit(room, who, mine, f"edit {round_}")
                for target in range(1, len(people) + 1):
                    try:
                        react(room, who, target, THUMBS, on=round_ % 2 == 0)
                    except ClientError as exc:  # another writer deleted it meanwhile
                        self.assertEqual(exc.code, protocol.GONE)
            if index % 2:
                delete(room, who, mine)

        run_in_threads(len(people), write)
        room.refresh_from_db()
        seqs = list(Message.objects.filter(room=room).values_list("seq", flat=True))
        self.assertEqual(seqs, list(range(1, room.last_seq + 1)))
        for target in range(1, len(people) + 1):
            first = message(room, target)
            folded = Message.objects.filter(room=room, target_seq=target).order_by("-seq").first()
            self.assertEqual(first.state_seq, folded and folded.seq, f"message {target}'s state_seq is its last entry")
            if first.is_deleted:
                self.assertEqual(first.body, "")
            else:
                self.assertEqual(first.body, "edit 4")
                self.assertEqual(sorted(p[1] for p in (first.reactions or {})[THUMBS]), sorted(p.name for p in people))
