"""Who is posting: registered users by username, guests by a session name that always reads as a guest."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import TestCase, override_settings

from chat.exceptions import ClientError
from chat.identity import GUEST_SESSION_KEY, identify, new_guest_name, set_nickname

from .helpers import FAST_HASHING

GUEST_NAME = r"\Aguest-\d{4}\Z"


@FAST_HASHING
class IdentifyTests(TestCase):
    def setUp(self):
        self.session = SessionStore()

    def test_a_logged_in_user_posts_as_their_username(self):
        user = get_user_model().objects.create_user("ada", password="x-pass-123")
        identity = identify(user, self.session)
        self.assertEqual((identity.name, identity.user, identity.is_guest), ("ada", user, False))

    def test_a_logged_in_user_gets_no_guest_name_in_the_session(self):
        user = get_user_model().objects.create_user("ada", password="x-pass-123")
        identify(user, self.session)
        self.assertNotIn(GUEST_SESSION_KEY, self.session)

    def test_an_anonymous_visitor_is_a_guest_named_guest_nnnn(self):
        identity = identify(AnonymousUser(), self.session)
        self.assertRegex(identity.name, GUEST_NAME)
        self.assertTrue(identity.is_guest)
        self.assertIsNone(identity.user)

    def test_the_guest_name_is_stored_in_the_session(self):
        identity = identify(AnonymousUser(), self.session)
        self.assertEqual(self.session[GUEST_SESSION_KEY], identity.name)

    def test_a_guest_keeps_the_same_name_on_every_visit(self):
        names = {identify(AnonymousUser(), self.session).name for _ in range(20)}
        self.assertEqual(len(names), 1)

    def test_a_guest_without_a_session_still_gets_a_guest_name(self):
        self.assertRegex(identify(None, None).name, GUEST_NAME)

    def test_a_session_holding_a_non_string_name_gets_a_fresh_guest_name(self):
        self.session[GUEST_SESSION_KEY] = 1234
        self.assertRegex(identify(AnonymousUser(), self.session).name, GUEST_NAME)

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_an_anonymous_visitor_has_no_identity(self):
        self.assertIsNone(identify(AnonymousUser(), self.session))

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_a_logged_in_user_still_posts_as_their_username(self):
        user = get_user_model().objects.create_user("ada", password="x-pass-123")
        self.assertEqual(identify(user, self.session).name, "ada")

    def test_new_guest_names_are_four_digit_guest_names(self):
        for _ in range(200):
            self.assertRegex(new_guest_name(), GUEST_NAME)


@FAST_HASHING
class SetNicknameTests(TestCase):
    def setUp(self):
        self.session = SessionStore()

    def assertNicknameRefused(self, nickname: str, code: str) -> None:
        with self.assertRaises(ClientError) as caught:
            set_nickname(self.session, nickname)
        self.assertEqual(caught.exception.code, code, f"nickname {nickname!r}")
        self.assertNotIn(GUEST_SESSION_KEY, self.session)

    def test_a_nickname_is_displayed_as_a_guest(self):
        self.assertEqual(set_nickname(self.session, "ada"), "ada (guest)")

    def test_a_nickname_becomes_the_session_guest_name(self):
        set_nickname(self.session, "ada")
        self.assertEqual(identify(AnonymousUser(), self.session).name, "ada (guest)")

    def test_surrounding_whitespace_in_a_nickname_is_trimmed(self):
        self.assertEqual(set_nickname(self.session, "  ada.l_2-x  "), "ada.l_2-x (guest)")

    def test_nicknames_of_2_and_32_characters_are_allowed(self):
        for nickname in ["ab", "a" * 32]:
            with self.subTest(nickname=nickname):
                self.assertEqual(set_nickname(self.session, nickname), f"{nickname} (guest)")

    def test_nicknames_outside_the_pattern_are_bad_nicknames(self):
        for nickname in ["", "a", "a" * 33, "two words", "caf\u00e9", "a/b", "<b>", "ada (guest)", "a\nb"]:
            with self.subTest(nickname=nickname):
                self.assertNicknameRefused(nickname, "bad_nickname")

    def test_a_nickname_starting_with_guest_dash_is_a_bad_nickname(self):
        for nickname in ["guest-1234", "Guest-ada", "GUEST-x"]:
            with self.subTest(nickname=nickname):
                self.assertNicknameRefused(nickname, "bad_nickname")

    def test_reserved_names_are_taken(self):
        for nickname in ["system", "System", "admin", "ADMIN"]:
            with self.subTest(nickname=nickname):
                self.assertNicknameRefused(nickname, "nickname_taken")

    def test_a_registered_username_is_taken(self):
        get_user_model().objects.create_user("ada", password="x-pass-123")
        self.assertNicknameRefused("ada", "nickname_taken")

    def test_a_registered_username_is_taken_in_any_case(self):
        get_user_model().objects.create_user("Ada", password="x-pass-123")
        self.assertNicknameRefused("aDA", "nickname_taken")

    def test_a_refused_nickname_keeps_the_previous_guest_name(self):
        set_nickname(self.session, "ada")
        with self.assertRaises(ClientError):
            set_nickname(self.session, "system")
        self.assertEqual(self.session[GUEST_SESSION_KEY], "ada (guest)")
