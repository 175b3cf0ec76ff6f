"""The lobby's forms: each refuses what its rule (chat.rooms for room names, chat.identity for nicknames) refuses."""

from django.test import SimpleTestCase

from chat.forms import NicknameForm, RoomForm
from chat.identity import BAD_NICKNAME, NICKNAME_MAX_LENGTH
from chat.rooms import ROOM_NAME_MAX_LENGTH, ROOM_NAME_RULE

# Names each rule refuses: outside the characters, too short, too long.
BAD_ROOM_NAMES = ["bad.name", "a b", "a/b", "caf\u00e9", "\uff21", "a" * (ROOM_NAME_MAX_LENGTH + 1), ""]
BAD_NICKNAMES = ["a", "two words", "a/b", "<b>", "caf\u00e9", "ada (guest)", "a\nb", "a" * (NICKNAME_MAX_LENGTH + 1)]


class RoomFormTests(SimpleTestCase):
    def test_the_room_form_refuses_every_name_the_room_name_rule_refuses(self):
        for name in BAD_ROOM_NAMES:
            with self.subTest(name=name):
                self.assertFalse(RoomForm({"name": name}).is_valid())

    def test_the_room_form_gives_a_valid_name_in_lowercase(self):
        form = RoomForm({"name": "New-Room_2"})
        self.assertTrue(form.is_valid())
        self.assertEqual(form.cleaned_data["name"], "new-room_2")

    def test_a_room_name_outside_the_rule_is_refused_with_the_rule_in_words(self):
        self.assertEqual(RoomForm({"name": "bad.name"}).errors["name"], [f"Use {ROOM_NAME_RULE}."])


class NicknameFormTests(SimpleTestCase):
    def test_the_nickname_form_refuses_every_nickname_outside_the_nickname_rule(self):
        for nickname in BAD_NICKNAMES:
            with self.subTest(nickname=nickname):
                self.assertFalse(NicknameForm({"nickname": nickname}).is_valid())

    def test_the_nickname_form_accepts_the_shortest_and_longest_nicknames_the_rule_allows(self):
        for nickname in ["ab", "a" * NICKNAME_MAX_LENGTH, "ada.l_2-x"]:
            with self.subTest(nickname=nickname):
                self.assertTrue(NicknameForm({"nickname": nickname}).is_valid())

    def test_a_nickname_outside_the_rule_is_refused_with_the_rule_in_words(self):
        self.assertEqual(NicknameForm({"nickname": "two words"}).errors["nickname"], [BAD_NICKNAME])
