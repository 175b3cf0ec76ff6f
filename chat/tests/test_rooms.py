"""Room names: which names are valid, their canonical form, and the channel-layer group they map to."""

from channels.layers import BaseChannelLayer
from django.test import SimpleTestCase

from chat.rooms import group_name, normalize_room_name


class NormalizeRoomNameTests(SimpleTestCase):
    def test_a_valid_name_is_lowercased(self):
        self.assertEqual(normalize_room_name("General-Chat_2"), "general-chat_2")

    def test_a_lowercase_name_is_unchanged(self):
        self.assertEqual(normalize_room_name("general"), "general")

    def test_a_single_character_name_is_valid(self):
        self.assertEqual(normalize_room_name("X"), "x")

    def test_a_name_of_64_characters_is_valid(self):
        self.assertEqual(normalize_room_name("A" * 64), "a" * 64)

    def test_a_name_of_65_characters_is_not(self):
        self.assertIsNone(normalize_room_name("a" * 65))

    def test_a_name_of_10000_characters_is_not(self):
        self.assertIsNone(normalize_room_name("a" * 10_000))

    def test_an_empty_name_is_not(self):
        self.assertIsNone(normalize_room_name(""))

    def test_a_name_with_a_dot_slash_or_space_is_not(self):
        for name in ["bad.name", ".", "..", "a/b", "/", "a b", " general", "general ", "general\n"]:
            with self.subTest(name=name):
                self.assertIsNone(normalize_room_name(name))

    def test_a_non_ascii_name_is_not(self):
        # Letters and digits to Python, but not to the room-name pattern.
        for name in ["caf\u00e9", "\u65e5\u672c", "\u0661\u0662", "\uff21", "stra\u00dfe", "\u0130stanbul"]:
            with self.subTest(name=name):
                self.assertIsNone(normalize_room_name(name))

    def test_a_name_that_is_not_a_string_is_not(self):
        for name in [None, 42, b"general", ["general"], {"name": "general"}]:
            with self.subTest(name=name):
                self.assertIsNone(normalize_room_name(name))


class GroupNameTests(SimpleTestCase):
    def test_a_room_group_is_the_name_behind_a_chat_prefix(self):
        self.assertEqual(group_name("general"), "chat.general")

    def test_every_valid_room_maps_to_a_valid_channel_layer_group(self):
        layer = BaseChannelLayer()
        for raw in ["a", "A" * 64, "with-dash_and_underscore", "0123"]:
            with self.subTest(raw=raw):
                self.assertTrue(layer.require_valid_group_name(group_name(normalize_room_name(raw))))
