"""Mentions: which @names a body mentions, who they resolve to, and how edits and deletes change them."""

from django.contrib.auth import get_user_model
from django.test import SimpleTestCase

from chat import mentions, selectors
from chat.identity import Identity
from chat.models import Kind, Mention, Message, Presence, ReadMarker, Room
from chat.services import change, draft, entry_create
from chat.store import who

from .helpers import ChatTransactionTestCase


class CandidateTests(SimpleTestCase):
    def test_an_at_name_is_a_candidate_lowercased(self):
        self.assertEqual(mentions.candidates("hi @Grace"), ["grace"])

    def test_an_at_inside_a_word_is_not_a_mention(self):
        self.assertEqual(mentions.candidates("write to ada@name.org"), [])

    def test_sentence_punctuation_after_a_name_is_not_part_of_it(self):
        self.assertEqual(mentions.candidates("thanks @grace. and @bob, @eve!"), ["grace", "bob", "eve"])

    def test_a_name_mentioned_twice_is_one_candidate(self):
        self.assertEqual(mentions.candidates("@ada @ADA"), ["ada"])


class MentionTestCase(ChatTransactionTestCase):
    available_apps = ["chat", "django.contrib.auth", "django.contrib.contenttypes"]

    def setUp(self):
        self.room = Room.objects.create(name="general")
        users = get_user_model().objects
        self.ada = Identity(name="ada", user=users.create(username="ada"))
        self.grace = Identity(name="Grace", user=users.create(username="Grace"))

    def post(self, body: str, identity: Identity | None = None) -> Message:
        identity = identity or self.ada
        d = draft(room=self.room, author=identity.name, user=identity.user, body=body, guest_id=identity.guest_id)
        return entry_create(d).message

    def edit(self, message: Message, body: str, identity: Identity | None = None) -> Message:
        c = change(room=self.room, identity=identity or self.ada, kind=Kind.EDIT, target=message.seq, body=body)
        entry = entry_create(c).entry
        assert entry is not None
        return entry

    def frame(self, seq: int) -> dict:
        return selectors.payloads([Message.objects.get(room=self.room, seq=seq)], self.room)[0]


class ResolveTests(MentionTestCase):
    def test_a_username_is_mentioned_case_insensitively_as_it_is_spelled(self):
        self.assertEqual(self.post("hi @grace").mentions, ["Grace"])

    def test_a_name_nobody_has_mentions_nobody(self):
        self.assertIsNone(self.post("hi @nobody").mentions)

    def test_a_guest_nickname_in_the_room_is_mentioned_as_its_author_name(self):
        bob = Identity(name="bob (guest)", user=None, guest_id="g1")
        self.post("hello", bob)
        self.assertEqual(self.post("hi @Bob").mentions, ["bob (guest)"])

    def test_a_present_guest_can_be_mentioned_before_they_wrote(self):
        Presence.objects.create(room=self.room, connection_id="c1", name="guest-1234", seen="2026-01-01T00:00Z")
        self.assertEqual(self.post("hi @guest-1234").mentions, ["guest-1234"])

    def test_the_message_frame_lists_its_mentions(self):
        message = self.post("@grace and @ada")
        self.assertEqual(self.frame(message.seq)["mentions"], ["Grace", "ada"])


class EditAndDeleteTests(MentionTestCase):
    def test_an_edit_that_adds_a_mention_names_them_as_new(self):
        message = self.post("hi")
        edit = self.edit(message, "hi @grace")
        frame = self.frame(edit.seq)
        self.assertEqual((frame["mentions"], frame["new_mentions"]), (["Grace"], ["Grace"]))
        self.assertEqual(self.frame(message.seq)["mentions"], ["Grace"])

    def test_re_editing_a_mention_back_in_does_not_make_it_new_again(self):
        message = self.post("hi @grace")
        self.edit(message, "hi")
        again = self.edit(message, "hi @grace!")
        self.assertEqual(self.frame(again.seq)["new_mentions"], [])
        self.assertEqual(Mention.objects.count(), 1)

    def test_an_edit_that_removes_a_mention_no_longer_counts_it(self):
        message = self.post("hi @grace")
        self.edit(message, "hi")
        self.assertFalse(Mention.objects.get().active)
        self.assertEqual(self.frame(message.seq)["mentions"], [])

    def test_a_deleted_message_mentions_nobody(self):
        message = self.post("hi @grace")
        entry_create(change(room=self.room, identity=self.ada, kind=Kind.DELETE, target=message.seq))
        self.assertFalse(Mention.objects.get().active)
        self.assertEqual(self.frame(message.seq)["mentions"], [])

    def test_an_authors_own_name_is_listed_but_never_counted(self):
        message = self.post("note to self @ada")
        self.assertEqual(message.mentions, ["ada"])
        self.assertEqual(Mention.objects.count(), 0)


class UnreadCountTests(MentionTestCase):
    def counts(self, identity: Identity) -> tuple[int, int]:
        found = selectors.unread_counts([self.room], identity)
        return found[self.room.pk]

    def test_everything_others_wrote_is_unread_for_someone_who_never_read(self):
        self.post("one")
        self.post("two @grace")
        self.post("mine", self.grace)
        self.assertEqual(self.counts(self.grace), (2, 1))

    def test_messages_up_to_the_marker_are_read(self):
        self.post("one @grace")
        two = self.post("two")
        ReadMarker.objects.create(room=self.room, who=who(self.grace.user, None), seq=two.seq - 1)
        self.assertEqual(self.counts(self.grace), (1, 0))

    def test_a_deleted_message_is_not_unread(self):
        message = self.post("one @grace")
        entry_create(change(room=self.room, identity=self.ada, kind=Kind.DELETE, target=message.seq))
        self.assertEqual(self.counts(self.grace), (0, 0))

    def test_an_edit_that_adds_a_mention_counts_it(self):
        message = self.post("one")
        self.edit(message, "one @grace")
        self.assertEqual(self.counts(self.grace), (1, 1))

    def test_a_guest_has_counts_of_their_own(self):
        bob = Identity(name="bob (guest)", user=None, guest_id="g1")
        self.post("from bob", bob)
        self.post("@bob hi")
        self.assertEqual(self.counts(bob), (1, 1))
