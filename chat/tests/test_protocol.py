"""The wire protocol: every kind of client frame, every way a frame can be refused, and server frame encoding."""

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

from django.test import SimpleTestCase
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import protocol
from chat.exceptions import ClientError

MAX_LENGTH = 2000
HISTORY_MAX = 100

# A code point outside the Basic Multilingual Plane: four bytes in UTF-8, two code units in UTF-16.
EMOJI = "\U0001f600"


REACTIONS = ("\N{THUMBS UP SIGN}", "\N{EYES}")


def parse(frame: dict[str, Any] | str) -> protocol.ClientFrame:
    text = frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
    return protocol.parse(text, max_length=MAX_LENGTH, history_max=HISTORY_MAX, reactions=REACTIONS)


class ProtocolTestCase(SimpleTestCase):
    def assertRefused(self, frame: dict[str, Any] | str, code: str) -> None:
        with self.assertRaises(ClientError) as caught:
            parse(frame)
        self.assertEqual(caught.exception.code, code, f"frame {str(frame)[:80]!r}")


class ValidFrameTests(ProtocolTestCase):
    def test_a_message_frame_parses_to_its_body_and_client_id(self):
        frame = parse({"type": "message", "body": "hello", "client_id": "c-1"})
        self.assertEqual(frame, protocol.MessageFrame(body="hello", client_id="c-1"))

    def test_a_message_frame_without_client_id_has_none(self):
        self.assertEqual(
            parse({"type": "message", "body": "hello"}), protocol.MessageFrame(body="hello", client_id=None)
        )

    def test_a_message_frame_with_a_null_client_id_has_none(self):
        frame = parse({"type": "message", "body": "hello", "client_id": None})
        self.assertIsNone(frame.client_id)

    def test_a_typing_frame_parses(self):
        self.assertEqual(parse({"type": "typing"}), protocol.TypingFrame())

    def test_a_ping_frame_parses(self):
        self.assertEqual(parse({"type": "ping"}), protocol.PingFrame())

    def test_a_history_frame_keeps_before_and_limit(self):
        self.assertEqual(
            parse({"type": "history", "before": 120, "limit": 30}), protocol.HistoryFrame(before=120, limit=30)
        )

    def test_a_history_frame_without_limit_asks_for_50(self):
        self.assertEqual(parse({"type": "history", "before": 7}), protocol.HistoryFrame(before=7, limit=50))

    def test_a_history_limit_of_exactly_history_max_is_accepted(self):
        self.assertEqual(parse({"type": "history", "before": 7, "limit": HISTORY_MAX}).limit, HISTORY_MAX)

    def test_unknown_keys_in_a_frame_are_ignored(self):
        self.assertEqual(parse({"type": "ping", "extra": [1, 2, {"x": None}]}), protocol.PingFrame())

    def test_decode_returns_the_json_object(self):
        self.assertEqual(protocol.decode('{"type":"ping","n":1}'), {"type": "ping", "n": 1})


class ChangeFrameTests(ProtocolTestCase):
    def test_a_reply_is_a_message_with_the_seq_it_answers(self):
        self.assertEqual(
            parse({"type": "message", "body": "yes", "reply_to": 3}),
            protocol.MessageFrame(body="yes", client_id=None, reply_to=3),
        )

    def test_an_edit_has_a_target_a_cleaned_body_and_a_client_id(self):
        self.assertEqual(
            parse({"type": "edit", "target": 2, "body": " fixed ", "client_id": "e-1"}),
            protocol.EditFrame(target=2, body="fixed", client_id="e-1"),
        )

    def test_a_delete_has_a_target(self):
        self.assertEqual(parse({"type": "delete", "target": 5}), protocol.DeleteFrame(target=5, client_id=None))

    def test_a_reaction_is_on_unless_it_says_otherwise(self):
        self.assertEqual(
            parse({"type": "react", "target": 1, "emoji": REACTIONS[0]}),
            protocol.ReactFrame(target=1, emoji=REACTIONS[0], on=True, client_id=None),
        )
        self.assertFalse(parse({"type": "react", "target": 1, "emoji": REACTIONS[1], "on": False}).on)

    def test_an_emoji_outside_the_reactions_is_a_bad_reaction(self):
        self.assertRefused({"type": "react", "target": 1, "emoji": "\N{PILE OF POO}"}, protocol.BAD_REACTION)

    def test_an_on_that_is_not_a_boolean_is_a_bad_frame(self):
        self.assertRefused({"type": "react", "target": 1, "emoji": REACTIONS[0], "on": 1}, protocol.BAD_FRAME)

    def test_a_target_or_reply_to_that_is_not_a_positive_whole_number_is_a_bad_frame(self):
        for frame in (
            {"type": "edit", "target": "1", "body": "x"},
            {"type": "delete", "target": 0},
            {"type": "delete"},
            {"type": "react", "target": True, "emoji": REACTIONS[0]},
            {"type": "versions", "target": -1},
            {"type": "message", "body": "x", "reply_to": 1.5},
        ):
            self.assertRefused(frame, protocol.BAD_FRAME)

    def test_an_edit_body_follows_the_message_body_rules(self):
        self.assertRefused({"type": "edit", "target": 1, "body": "  "}, protocol.EMPTY)
        self.assertRefused({"type": "edit", "target": 1, "body": "x" * (MAX_LENGTH + 1)}, protocol.TOO_LONG)


class BadJsonTests(ProtocolTestCase):
    def test_text_that_is_not_json_is_bad_json(self):
        for text in ["", "hello", "{", '{"type": "ping"', "{'type': 'ping'}", '{"type": "ping"} trailing']:
            with self.subTest(text=text):
                self.assertRefused(text, protocol.BAD_JSON)

    def test_nan_and_infinities_are_bad_json(self):
        for constant in ["NaN", "Infinity", "-Infinity"]:
            with self.subTest(constant=constant):
                self.assertRefused(f'{{"type": "history", "before": {constant}}}', protocol.BAD_JSON)

    def test_an_integer_with_5000_digits_is_bad_json(self):
        self.assertRefused('{"type": "history", "before": ' + "9" * 5000 + "}", protocol.BAD_JSON)

    def test_json_nested_100000_deep_is_bad_json(self):
        depth = 100_000
        self.assertRefused('{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}", protocol.BAD_JSON)

    def test_objects_nested_100000_deep_are_bad_json(self):
        depth = 100_000
        self.assertRefused('{"a": ' * depth + "1" + "}" * depth, protocol.BAD_JSON)


class BadFrameTests(ProtocolTestCase):
    def test_json_that_is_not_an_object_is_bad_frame(self):
        for text in ["[]", '[{"type": "ping"}]', '"ping"', "42", "4.2", "null", "true"]:
            with self.subTest(text=text):
                self.assertRefused(text, protocol.BAD_FRAME)

    def test_a_frame_without_type_is_bad_frame(self):
        self.assertRefused({"body": "hello"}, protocol.BAD_FRAME)

    def test_a_frame_whose_type_is_not_a_string_is_bad_frame(self):
        for frame_type in [None, 1, True, ["message"], {"name": "message"}]:
            with self.subTest(type=frame_type):
                self.assertRefused({"type": frame_type, "body": "hello"}, protocol.BAD_FRAME)

    def test_a_message_whose_body_is_not_a_string_is_bad_frame(self):
        for body in [None, 1, 1.5, True, ["hello"], {"text": "hello"}]:
            with self.subTest(body=body):
                self.assertRefused({"type": "message", "body": body}, protocol.BAD_FRAME)

    def test_a_message_without_body_is_bad_frame(self):
        self.assertRefused({"type": "message"}, protocol.BAD_FRAME)

    def test_a_history_frame_without_before_is_bad_frame(self):
        self.assertRefused({"type": "history", "limit": 10}, protocol.BAD_FRAME)

    def test_a_history_before_that_is_not_a_positive_whole_number_is_bad_frame(self):
        for before in [0, -1, True, False, 1.0, 2.5, "10", None, [10]]:
            with self.subTest(before=before):
                self.assertRefused({"type": "history", "before": before}, protocol.BAD_FRAME)

    def test_a_history_limit_that_is_not_a_positive_whole_number_is_bad_frame(self):
        for limit in [0, -5, True, 10.0, "10", None]:
            with self.subTest(limit=limit):
                self.assertRefused({"type": "history", "before": 10, "limit": limit}, protocol.BAD_FRAME)

    def test_a_history_limit_over_history_max_is_bad_frame(self):
        self.assertRefused({"type": "history", "before": 10, "limit": HISTORY_MAX + 1}, protocol.BAD_FRAME)


class UnknownTypeTests(ProtocolTestCase):
    def test_a_string_type_that_is_not_a_frame_type_is_unknown_type(self):
        for frame_type in ["shout", "", "Message", "PING", "hello", "ack", "error"]:
            with self.subTest(type=frame_type):
                self.assertRefused({"type": frame_type}, protocol.UNKNOWN_TYPE)


class BodyTests(ProtocolTestCase):
    def body_of(self, body: str) -> str:
        frame = parse({"type": "message", "body": body})
        assert isinstance(frame, protocol.MessageFrame)
        return frame.body

    def test_an_empty_body_is_empty(self):
        self.assertRefused({"type": "message", "body": ""}, protocol.EMPTY)

    def test_a_whitespace_only_body_is_empty(self):
        for body in [" ", "   \n\t  ", "\n\n", "\u3000\u00a0"]:
            with self.subTest(body=body):
                self.assertRefused({"type": "message", "body": body}, protocol.EMPTY)

    def test_surrounding_whitespace_is_trimmed(self):
        self.assertEqual(self.body_of("  \n hello there \t\n"), "hello there")

    def test_a_body_of_max_length_code_points_is_accepted(self):
        body = EMOJI * MAX_LENGTH
        self.assertEqual(self.body_of(body), body)

    def test_a_body_of_max_length_plus_one_code_points_is_too_long(self):
        self.assertRefused({"type": "message", "body": EMOJI * (MAX_LENGTH + 1)}, protocol.TOO_LONG)

    def test_the_length_is_counted_after_trimming(self):
        body = "a" * MAX_LENGTH
        self.assertEqual(self.body_of(f"   {body}\n\n"), body)

    def test_a_nul_byte_is_bad_text(self):
        self.assertRefused({"type": "message", "body": "hel\x00lo"}, protocol.BAD_TEXT)

    def test_other_c0_controls_are_bad_text(self):
        for char in ["\x01", "\x07", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x1f"]:
            with self.subTest(char=hex(ord(char))):
                self.assertRefused({"type": "message", "body": f"hi{char}there"}, protocol.BAD_TEXT)

    def test_delete_and_c1_controls_are_bad_text(self):
        for char in ["\x7f", "\x80", "\x85", "\x9b", "\x9f"]:
            with self.subTest(char=hex(ord(char))):
                self.assertRefused({"type": "message", "body": f"hi{char}there"}, protocol.BAD_TEXT)

    def test_a_control_character_at_the_edge_is_bad_text_not_trimmed_away(self):
        self.assertRefused({"type": "message", "body": "hello\x0b"}, protocol.BAD_TEXT)

    def test_a_lone_surrogate_spelled_as_a_json_escape_is_bad_text(self):
        for escape in ["\\ud800", "\\udfff", "a\\udc00b"]:
            with self.subTest(escape=escape):
                self.assertRefused('{"type": "message", "body": "' + escape + '"}', protocol.BAD_TEXT)

    def test_a_surrogate_pair_spelled_as_json_escapes_is_one_code_point(self):
        self.assertEqual(parse('{"type": "message", "body": "\\ud83d\\ude00"}').body, EMOJI)

    def test_newline_and_tab_inside_a_body_are_kept(self):
        self.assertEqual(self.body_of("line one\nline\ttwo"), "line one\nline\ttwo")

    def test_a_body_is_normalised_to_nfc(self):
        self.assertEqual(self.body_of("Cafe\u0301"), "Caf\u00e9")

    def test_the_length_is_counted_after_nfc_normalisation(self):
        self.assertEqual(self.body_of("e\u0301" * MAX_LENGTH), "\u00e9" * MAX_LENGTH)

    def test_combining_marks_that_do_not_compose_each_count_as_a_code_point(self):
        # "x" has no precomposed forms, so NFC leaves all 20 marks: 21 code points, as docs/protocol.md says.
        body = "x" + "\u0301" * 20
        self.assertEqual(protocol.clean_body(body, 21), body)
        with self.assertRaises(ClientError) as caught:
            protocol.clean_body(body, 20)
        self.assertEqual(caught.exception.code, protocol.TOO_LONG)

    def test_clean_body_uses_the_max_length_it_is_given(self):
        self.assertEqual(protocol.clean_body("abc", 3), "abc")
        with self.assertRaises(ClientError) as caught:
            protocol.clean_body("abcd", 3)
        self.assertEqual(caught.exception.code, protocol.TOO_LONG)


class ClientIdTests(ProtocolTestCase):
    def assertClientIdRefused(self, client_id: object) -> None:
        with self.assertRaises(ClientError) as caught:
            protocol.clean_client_id(client_id)
        self.assertEqual(caught.exception.code, protocol.BAD_FRAME, f"client_id {client_id!r}")

    def test_none_is_no_client_id(self):
        self.assertIsNone(protocol.clean_client_id(None))

    def test_letters_digits_dashes_and_underscores_are_a_client_id(self):
        self.assertEqual(protocol.clean_client_id("abc-DEF_123"), "abc-DEF_123")

    def test_a_client_id_of_only_dashes_and_underscores_is_accepted(self):
        # The rule, as its error detail states it: 1-64 ASCII letters, digits, '-' or '_'.
        for client_id in ["-", "_", "--__"]:
            with self.subTest(client_id=client_id):
                self.assertEqual(protocol.clean_client_id(client_id), client_id)

    def test_a_uuid_is_a_client_id(self):
        client_id = "3f2b8c1e-9a4d-4e6f-8b7a-0c1d2e3f4a5b"
        self.assertEqual(protocol.clean_client_id(client_id), client_id)

    def test_a_client_id_of_64_characters_is_accepted(self):
        self.assertEqual(protocol.clean_client_id("a" * 64), "a" * 64)

    def test_a_client_id_of_65_characters_is_bad_frame(self):
        self.assertClientIdRefused("a" * 65)

    def test_an_empty_client_id_is_bad_frame(self):
        self.assertClientIdRefused("")

    def test_a_client_id_that_is_not_a_string_is_bad_frame(self):
        for client_id in [1, 0, True, 1.5, ["a"], {"id": "a"}]:
            with self.subTest(client_id=client_id):
                self.assertClientIdRefused(client_id)

    def test_a_non_ascii_client_id_is_bad_frame(self):
        # Arabic-Indic digits and accented letters are alphanumeric to Python, but not ASCII.
        for client_id in ["caf\u00e9", "\u0661\u0662\u0663", EMOJI]:
            with self.subTest(client_id=client_id):
                self.assertClientIdRefused(client_id)

    def test_a_client_id_with_spaces_or_punctuation_is_bad_frame(self):
        for client_id in ["a b", " ab", "ab ", "a.b", "a/b", "a\nb", "a\x00b"]:
            with self.subTest(client_id=client_id):
                self.assertClientIdRefused(client_id)

    def test_a_bad_client_id_in_a_message_frame_is_bad_frame(self):
        self.assertRefused({"type": "message", "body": "hello", "client_id": "x" * 65}, protocol.BAD_FRAME)


# JSON values of every kind, nested, and frames whose interesting keys take such values or plausible ones.
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
frame_types = st.sampled_from(["message", "typing", "ping", "history", "hello", ""]) | st.text(max_size=10)
positive_ish = st.integers(min_value=-3, max_value=10**20) | st.booleans() | st.floats()
frames = st.fixed_dictionaries(
    {},
    optional={
        "type": frame_types | json_values,
        "body": st.text() | json_values,
        "client_id": st.text(max_size=70) | st.none() | json_values,
        "before": positive_ish | json_values,
        "limit": positive_ish | json_values,
    },
)
FRAME_CLASSES = (protocol.MessageFrame, protocol.TypingFrame, protocol.PingFrame, protocol.HistoryFrame)
PROPERTY_SETTINGS = hypothesis_settings(max_examples=250, derandomize=True, deadline=None, database=None)


class ParsePropertyTests(SimpleTestCase):
    def assertFrameOrClientError(self, text: str) -> None:
        try:
            frame = parse(text)
        except ClientError as exc:
            self.assertIn(
                exc.code,
                {
                    protocol.BAD_JSON,
                    protocol.BAD_FRAME,
                    protocol.UNKNOWN_TYPE,
                    protocol.EMPTY,
                    protocol.TOO_LONG,
                    protocol.BAD_TEXT,
                },
            )
        else:
            self.assertIsInstance(frame, FRAME_CLASSES)

    @PROPERTY_SETTINGS
    @given(st.text())
    def test_any_text_parses_to_a_frame_or_raises_client_error(self, text):
        self.assertFrameOrClientError(text)

    @PROPERTY_SETTINGS
    @given(json_values)
    def test_any_json_value_parses_to_a_frame_or_raises_client_error(self, value):
        self.assertFrameOrClientError(json.dumps(value))

    @PROPERTY_SETTINGS
    @given(frames, st.booleans())
    def test_any_frame_like_object_parses_to_a_frame_or_raises_client_error(self, frame, ensure_ascii):
        self.assertFrameOrClientError(json.dumps(frame, ensure_ascii=ensure_ascii))

    @PROPERTY_SETTINGS
    @given(st.text(max_size=MAX_LENGTH + 10))
    def test_an_accepted_body_is_nfc_trimmed_non_empty_and_within_max_length(self, body):
        try:
            cleaned = protocol.clean_body(body, MAX_LENGTH)
        except ClientError:
            return
        self.assertTrue(cleaned)
        self.assertEqual(cleaned, cleaned.strip())
        self.assertEqual(cleaned, unicodedata.normalize("NFC", cleaned))
        self.assertLessEqual(len(cleaned), MAX_LENGTH)
        self.assertFalse(any(unicodedata.category(c) in {"Cc", "Cs"} and c not in "\n\t" for c in cleaned))


class EncodeTests(SimpleTestCase):
    def test_encode_is_compact(self):
        self.assertEqual(
            protocol.encode({"type": "pong", "last_seq": 3, "x": [1, 2]}), '{"type":"pong","last_seq":3,"x":[1,2]}'
        )

    def test_encode_keeps_non_ascii_text_as_is(self):
        text = protocol.encode({"body": f"caf\u00e9 \u65e5\u672c {EMOJI}"})
        self.assertEqual(text, f'{{"body":"caf\u00e9 \u65e5\u672c {EMOJI}"}}')

    def test_a_message_frame_has_sent_at_in_utc_ending_with_z(self):
        frame = protocol.message(
            room="general",
            seq=4,
            author="ada",
            body="hi",
            sent_at=datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
            client_id="c1",
        )
        self.assertEqual(frame["sent_at"], "2025-03-04T05:06:07.123456Z")

    def test_a_message_frame_carries_every_field(self):
        frame = protocol.message(
            room="general", seq=4, author="ada", body="hi", sent_at=datetime(2025, 1, 1, tzinfo=UTC), client_id=None
        )
        self.assertEqual(
            frame,
            {
                "type": "message",
                "room": "general",
                "seq": 4,
                "author": "ada",
                "body": "hi",
                "sent_at": "2025-01-01T00:00:00Z",
                "client_id": None,
                "reply_to": None,
                "edited_at": None,
                "deleted": False,
                "reactions": {},
                "state_seq": 4,
                "mentions": [],
            },
        )

    def test_an_encoded_message_frame_decodes_back_to_the_same_frame(self):
        frame = protocol.message(
            room="r",
            seq=1,
            author="a",
            body=f'{EMOJI}\n"quoted"',
            sent_at=datetime(2025, 1, 1, tzinfo=UTC),
            client_id="c",
        )
        self.assertEqual(json.loads(protocol.encode(frame)), frame)

    def test_an_ack_frame_echoes_the_client_id_and_seq(self):
        self.assertEqual(protocol.ack(client_id="c", seq=2), {"type": "ack", "client_id": "c", "seq": 2})

    def test_a_pong_frame_carries_the_last_seq(self):
        self.assertEqual(protocol.pong(last_seq=9), {"type": "pong", "last_seq": 9})

    def test_an_error_frame_carries_code_and_detail(self):
        self.assertEqual(protocol.error(code="empty", detail="d"), {"type": "error", "code": "empty", "detail": "d"})

    def test_a_presence_frame_is_typed_by_its_kind(self):
        self.assertEqual(protocol.presence("join", user="ada"), {"type": "join", "user": "ada"})

    def test_a_hello_frame_carries_room_identity_online_list_and_last_seq(self):
        self.assertEqual(
            protocol.hello(room="r", you="ada", online=["ada"], last_seq=0),
            {
                "type": "hello",
                "room": "r",
                "you": "ada",
                "online": ["ada"],
                "last_seq": 0,
                "last_read": 0,
                "moderate": False,
                "muted": False,
                "muted_until": None,
                "slow_mode": 0,
            },
        )

    def test_a_history_frame_carries_before_messages_and_has_more(self):
        self.assertEqual(
            protocol.history(before=5, messages=[], has_more=False),
            {"type": "history", "before": 5, "messages": [], "has_more": False},
        )
