"""The pages: the lobby, opening a room, a room, invite links, direct messages, the Mentions page, the guest
nickname, sign-up, log in and log out."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import User
from django.test import Client, TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from chat import membership
from chat.identity import GUEST_SESSION_KEY, NICKNAME_MAX_LENGTH, NICKNAME_RULE, Identity
from chat.membership import LOBBY_ROOMS
from chat.models import Action, Invite, Kind, Membership, Presence, ReadMarker, Restriction, Role, Room, RoomKind
from chat.rooms import ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN, ROOM_NAME_RULE
from chat.services import change, entry_create, message_create, moderation
from chat.views import LOBBY_REFRESH_SECONDS

from .helpers import FAST_HASHING

PASSWORD = "correct-horse-battery-9"


def make_user(username: str = "ada"):
    return get_user_model().objects.create_user(username, password=PASSWORD)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = dict(attrs)
        if element.get("id"):
            self.by_id[str(element["id"])] = element


def element_attrs(response, element_id: str) -> dict[str, str | None]:
    """The attributes of the element with this id in a rendered page, as a browser reads them."""
    parser = _Elements()
    parser.feed(response.content.decode())
    return parser.by_id[element_id]


@FAST_HASHING
class LobbyTests(TestCase):
    def setUp(self):
        self.now = timezone.now()

    def online(self, room: Room, *names: str) -> None:
        for index, name in enumerate(names):
            Presence.objects.create(room=room, connection_id=f"{room.name}-{index}", name=name, seen=self.now)

    def test_the_lobby_answers_200(self):
        self.assertEqual(self.client.get("/").status_code, 200)

    def test_the_lobby_links_every_room(self):
        for name in ["general", "random"]:
            Room.objects.create(name=name)
        response = self.client.get("/")
        self.assertContains(response, 'href="/chat/general/"')
        self.assertContains(response, 'href="/chat/random/"')

    def test_the_lobby_shows_how_many_distinct_names_are_online_in_each_room(self):
        general, random = Room.objects.create(name="general"), Room.objects.create(name="random")
        self.online(general, "ada", "ada", "bob")
        self.online(random, "cy")
        response = self.client.get("/")
        counts = {room.name: room.online for room in response.context["rooms"]}
        self.assertEqual(counts, {"general": 2, "random": 1})
        self.assertContains(response, "2 online")

    def test_a_room_with_no_one_online_shows_0_online(self):
        Room.objects.create(name="general")
        self.assertContains(self.client.get("/"), "0 online")

    def test_stale_presence_is_not_counted_in_the_lobby(self):
        general = Room.objects.create(name="general")
        Presence.objects.create(room=general, connection_id="c1", name="ada", seen=self.now - timedelta(hours=1))
        self.assertEqual([room.online for room in self.client.get("/").context["rooms"]], [0])

    def test_the_lobby_lists_the_most_recently_active_rooms_first_and_never_active_rooms_last_by_name(self):
        Room.objects.create(name="zeta")
        Room.objects.create(name="alpha")
        Room.objects.create(name="old", last_activity=self.now - timedelta(days=1))
        Room.objects.create(name="new", last_activity=self.now)
        names = [room.name for room in self.client.get("/").context["rooms"]]
        self.assertEqual(names, ["new", "old", "alpha", "zeta"])

    def test_the_lobby_lists_at_most_lobby_rooms_rooms(self):
        Room.objects.bulk_create(Room(name=f"room-{index:03}") for index in range(LOBBY_ROOMS + 1))
        self.assertEqual(len(self.client.get("/").context["rooms"]), LOBBY_ROOMS)

    def test_an_empty_lobby_says_there_are_no_rooms(self):
        self.assertContains(self.client.get("/"), "No rooms yet")

    def test_a_guest_sees_their_guest_name_and_the_nickname_form(self):
        response = self.client.get("/")
        guest = self.client.session[GUEST_SESSION_KEY]
        self.assertContains(response, f"You are <strong>{guest}</strong>")
        self.assertContains(response, 'action="/nickname/"')

    def test_a_logged_in_user_is_not_offered_a_nickname(self):
        self.client.force_login(make_user())
        self.assertNotContains(self.client.get("/"), 'action="/nickname/"')

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_an_anonymous_visitor_is_asked_to_log_in(self):
        self.assertContains(self.client.get("/"), "Guests are not allowed here")


class LobbyInputTests(TestCase):
    """The lobby's inputs are rendered from the forms, so the browser checks the rules the server checks."""

    def test_the_room_name_input_takes_its_pattern_and_maxlength_from_the_room_name_rule(self):
        name = element_attrs(self.client.get("/"), "id_name")
        self.assertEqual((name["pattern"], name["maxlength"]), (ROOM_NAME_PATTERN, str(ROOM_NAME_MAX_LENGTH)))

    def test_the_room_name_input_keeps_its_name_placeholder_and_help(self):
        name = element_attrs(self.client.get("/"), "id_name")
        self.assertEqual(
            {key: name.get(key) for key in ["name", "placeholder", "aria-describedby", "autocapitalize", "spellcheck"]},
            {
                "name": "name",
                "placeholder": "e.g. general",
                "aria-describedby": "room-name-help",
                "autocapitalize": "off",
                "spellcheck": "false",
            },
        )

    def test_the_room_name_input_is_required(self):
        self.assertIn("required", element_attrs(self.client.get("/"), "id_name"))

    def test_the_room_name_help_states_the_room_name_rule(self):
        self.assertContains(
            self.client.get("/"), f'<p id="room-name-help" class="help">{ROOM_NAME_RULE}.</p>', html=True
        )

    def test_a_refused_room_name_is_kept_in_the_input(self):
        response = self.client.post("/rooms/", {"name": "bad.name"})
        self.assertEqual(element_attrs(response, "id_name")["value"], "bad.name")

    def test_the_nickname_input_takes_its_maxlength_from_the_nickname_rule(self):
        self.assertEqual(element_attrs(self.client.get("/"), "id_nickname")["maxlength"], str(NICKNAME_MAX_LENGTH))

    def test_the_nickname_input_keeps_its_name_autocomplete_and_help(self):
        nickname = element_attrs(self.client.get("/"), "id_nickname")
        self.assertEqual(
            {key: nickname.get(key) for key in ["name", "autocomplete", "aria-describedby"]},
            {"name": "nickname", "autocomplete": "nickname", "aria-describedby": "nickname-help"},
        )

    def test_the_nickname_help_states_the_nickname_rule(self):
        help_text = f'<p id="nickname-help" class="help">{NICKNAME_RULE}. Shown as “name (guest)”.</p>'
        self.assertContains(self.client.get("/"), help_text, html=True)


@FAST_HASHING
class RoomOpenTests(TestCase):
    def test_opening_a_valid_room_redirects_to_its_lowercase_page(self):
        response = self.client.post("/rooms/", {"name": "General"})
        self.assertRedirects(response, "/chat/general/", fetch_redirect_response=False)

    def test_opening_a_valid_room_creates_it_under_its_lowercase_name(self):
        self.client.post("/rooms/", {"name": "General"})
        self.assertEqual(list(Room.objects.values_list("name", flat=True)), ["general"])

    def test_opening_an_existing_room_in_another_case_creates_no_second_room(self):
        Room.objects.create(name="general")
        self.client.post("/rooms/", {"name": "GENERAL"})
        self.assertEqual(Room.objects.count(), 1)

    def test_surrounding_whitespace_in_a_room_name_is_ignored(self):
        response = self.client.post("/rooms/", {"name": "  general  "})
        self.assertRedirects(response, "/chat/general/", fetch_redirect_response=False)

    def test_an_invalid_room_name_re_renders_the_lobby_with_an_error(self):
        for name in ["bad.name", "a b", "caf\u00e9", "a" * 65, "", "   "]:
            with self.subTest(name=name):
                response = self.client.post("/rooms/", {"name": name})
                self.assertEqual(response.status_code, 200)
                self.assertTemplateUsed(response, "chat/lobby.html")
                self.assertTrue(response.context["room_form"].errors["name"])
                self.assertContains(response, 'class="error" role="alert"')

    def test_an_invalid_room_name_creates_nothing(self):
        self.client.post("/rooms/", {"name": "bad.name"})
        self.assertEqual(Room.objects.count(), 0)

    def test_opening_a_room_needs_a_post(self):
        self.assertEqual(self.client.get("/rooms/").status_code, 405)

    def test_opening_a_room_needs_a_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        self.assertEqual(client.post("/rooms/", {"name": "general"}).status_code, 403)


@FAST_HASHING
class RoomPageTests(TestCase):
    def test_a_room_name_in_another_case_redirects_to_the_lowercase_page(self):
        self.assertRedirects(self.client.get("/chat/General/"), "/chat/general/", fetch_redirect_response=False)

    def test_an_invalid_room_name_is_404(self):
        for path in ["/chat/bad.name/", "/chat/caf%C3%A9/", f"/chat/{'a' * 65}/", "/chat/a%20b/"]:
            with self.subTest(path=path):
                self.assertEqual(self.client.get(path).status_code, 404)

    def test_the_room_page_answers_200(self):
        self.assertEqual(self.client.get("/chat/general/").status_code, 200)

    def test_the_room_page_names_its_room(self):
        self.assertContains(self.client.get("/chat/general/"), 'data-room="general"')

    def test_the_room_page_loads_the_chat_client_script(self):
        self.assertContains(
            self.client.get("/chat/general/"), '<script type="module" src="/static/chat/client.js"></script>', html=True
        )

    def test_the_room_page_tells_the_client_its_name(self):
        response = self.client.get("/chat/general/")
        self.assertContains(response, f'data-you="{self.client.session[GUEST_SESSION_KEY]}"')

    def test_the_room_page_tells_the_client_the_max_message_length(self):
        with self.settings(CHAT_MAX_MESSAGE_LENGTH=321):
            self.assertContains(self.client.get("/chat/general/"), 'data-max-length="321"')

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_an_anonymous_visitor_is_sent_to_log_in(self):
        response = self.client.get("/chat/general/")
        self.assertRedirects(response, "/accounts/login/?next=/chat/general/", fetch_redirect_response=False)

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_a_logged_in_user_gets_the_room(self):
        self.client.force_login(make_user())
        self.assertContains(self.client.get("/chat/general/"), 'data-you="ada"')


@FAST_HASHING
class NicknameTests(TestCase):
    def test_a_guest_nickname_becomes_their_name(self):
        self.client.get("/")
        self.client.post("/nickname/", {"nickname": "ada"})
        self.assertEqual(self.client.session[GUEST_SESSION_KEY], "ada (guest)")

    def test_a_guest_nickname_is_shown_in_the_lobby(self):
        response = self.client.post("/nickname/", {"nickname": "ada"}, follow=True)
        self.assertContains(response, "You are <strong>ada (guest)</strong>")

    def test_setting_a_nickname_redirects_to_the_lobby(self):
        self.assertRedirects(self.client.post("/nickname/", {"nickname": "ada"}), "/")

    def test_a_registered_username_is_refused_as_a_nickname(self):
        make_user("ada")
        self.client.get("/")
        guest = self.client.session[GUEST_SESSION_KEY]
        response = self.client.post("/nickname/", {"nickname": "ADA"}, follow=True)
        self.assertContains(response, "That name belongs to a registered user.")
        self.assertEqual(self.client.session[GUEST_SESSION_KEY], guest)

    def test_a_nickname_outside_the_pattern_is_refused(self):
        response = self.client.post("/nickname/", {"nickname": "two words"}, follow=True)
        self.assertContains(response, "Nicknames are 2-32 letters")
        self.assertNotEqual(self.client.session[GUEST_SESSION_KEY], "two words (guest)")

    def test_a_nickname_over_32_characters_is_refused(self):
        self.client.post("/nickname/", {"nickname": "a" * 33})
        self.assertNotIn("(guest)", self.client.session.get(GUEST_SESSION_KEY, ""))

    def test_a_logged_in_user_cannot_choose_a_nickname(self):
        self.client.force_login(make_user("ada"))
        response = self.client.post("/nickname/", {"nickname": "bob"}, follow=True)
        self.assertContains(response, "Only guests choose a nickname.")
        self.assertNotIn(GUEST_SESSION_KEY, self.client.session)

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_nobody_chooses_a_nickname(self):
        response = self.client.post("/nickname/", {"nickname": "bob"}, follow=True)
        self.assertContains(response, "Only guests choose a nickname.")
        self.assertNotIn(GUEST_SESSION_KEY, self.client.session)

    def test_choosing_a_nickname_needs_a_post(self):
        self.assertEqual(self.client.get("/nickname/").status_code, 405)


@FAST_HASHING
class SignUpTests(TestCase):
    def sign_up(self, username: str, **extra):
        data = {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra}
        return self.client.post("/accounts/signup/", data)

    def test_the_signup_page_answers_200_with_a_form(self):
        self.assertContains(self.client.get("/accounts/signup/"), 'name="username"')

    def test_signing_up_creates_the_user(self):
        self.sign_up("ada")
        self.assertTrue(get_user_model().objects.get(username="ada").check_password(PASSWORD))

    def test_signing_up_logs_the_new_user_in_and_redirects_to_the_lobby(self):
        response = self.sign_up("ada")
        self.assertRedirects(response, "/", fetch_redirect_response=False)
        self.assertEqual(self.client.session[SESSION_KEY], str(get_user_model().objects.get(username="ada").pk))

    def test_a_username_starting_with_guest_dash_is_refused(self):
        for username in ["guest-x", "Guest-1234"]:
            with self.subTest(username=username):
                response = self.sign_up(username)
                self.assertEqual(response.status_code, 200)
                self.assertFormError(response.context["form"], "username", "Usernames may not start with 'guest-'.")

    def test_a_reserved_username_is_refused(self):
        for username in ["system", "System", "admin"]:
            with self.subTest(username=username):
                response = self.sign_up(username)
                self.assertFormError(response.context["form"], "username", "That name is reserved.")

    def test_a_refused_signup_creates_no_user_and_logs_nobody_in(self):
        self.sign_up("system")
        self.assertEqual((get_user_model().objects.count(), SESSION_KEY in self.client.session), (0, False))

    def test_a_taken_username_is_refused_with_a_form_error(self):
        make_user("ada")
        response = self.sign_up("ada")
        self.assertEqual(response.status_code, 200)
        self.assertFormError(response.context["form"], "username", "A user with that username already exists.")

    def test_a_username_taken_in_another_case_is_refused_with_a_form_error(self):
        make_user("ada")
        response = self.sign_up("ADA")
        self.assertEqual(response.status_code, 200)
        self.assertFormError(response.context["form"], "username", "A user with that username already exists.")


@FAST_HASHING
class LogInAndOutTests(TestCase):
    def test_the_login_page_answers_200_with_a_form(self):
        self.assertContains(self.client.get(reverse("login")), 'name="password"')

    def test_logging_in_redirects_to_the_lobby_as_that_user(self):
        user = make_user()
        response = self.client.post(reverse("login"), {"username": "ada", "password": PASSWORD})
        self.assertRedirects(response, "/", fetch_redirect_response=False)
        self.assertEqual(self.client.session[SESSION_KEY], str(user.pk))

    def test_a_wrong_password_does_not_log_in(self):
        make_user()
        response = self.client.post(reverse("login"), {"username": "ada", "password": "wrong"})
        self.assertEqual((response.status_code, SESSION_KEY in self.client.session), (200, False))

    def test_logging_in_follows_next_back_to_the_room(self):
        make_user()
        data = {"username": "ada", "password": PASSWORD, "next": "/chat/general/"}
        self.assertRedirects(self.client.post(reverse("login"), data), "/chat/general/", fetch_redirect_response=False)

    def test_a_logged_in_user_sees_their_name_and_a_log_out_button(self):
        self.client.force_login(make_user())
        response = self.client.get("/")
        self.assertContains(response, "Signed in as <strong>ada</strong>")
        self.assertContains(response, 'action="/accounts/logout/"')

    def test_logging_out_with_a_post_logs_out_and_redirects_to_the_lobby(self):
        self.client.force_login(make_user())
        response = self.client.post(reverse("logout"))
        self.assertRedirects(response, "/", fetch_redirect_response=False)
        self.assertNotIn(SESSION_KEY, self.client.session)

    def test_logging_out_with_a_get_is_refused(self):
        self.client.force_login(make_user())
        self.assertEqual(self.client.get(reverse("logout")).status_code, 405)
        self.assertIn(SESSION_KEY, self.client.session)


@FAST_HASHING
class RoomsJsonTests(TestCase):
    """The lobby's room list as JSON, which keeps an open lobby fresh without a reload."""

    def setUp(self):
        self.now = timezone.now()

    def rooms(self):
        return self.client.get(reverse("api:rooms")).json()["rooms"]

    def test_the_rooms_endpoint_lists_each_room_with_its_link_online_count_and_last_activity(self):
        general = Room.objects.create(name="general", last_activity=datetime(2026, 11, 28, 7, 35, 51, tzinfo=UTC))
        for index, name in enumerate(["ada", "ada", "bob"]):
            Presence.objects.create(room=general, connection_id=f"c{index}", name=name, seen=self.now)
        self.assertEqual(
            self.rooms(),
            [
                {
                    "name": "general",
                    "url": "/chat/general/",
                    "online": 2,
                    "last_activity": "2026-11-28T07:35:51Z",
                    "unread": 0,
                    "mentions": 0,
                    "kind": "public",
                    "role": None,
                    "with": None,
                }
            ],
        )

    def test_the_rooms_endpoint_gives_no_last_activity_for_a_room_without_messages(self):
        Room.objects.create(name="general")
        self.assertEqual(self.rooms()[0]["last_activity"], None)

    def test_the_rooms_endpoint_lists_rooms_in_the_lobbys_order(self):
        Room.objects.create(name="zeta")
        Room.objects.create(name="old", last_activity=self.now - timedelta(days=1))
        Room.objects.create(name="new", last_activity=self.now)
        self.assertEqual([room["name"] for room in self.rooms()], ["new", "old", "zeta"])

    def test_the_rooms_endpoint_does_not_count_stale_presence(self):
        general = Room.objects.create(name="general")
        Presence.objects.create(room=general, connection_id="c1", name="ada", seen=self.now - timedelta(hours=1))
        self.assertEqual(self.rooms()[0]["online"], 0)

    def test_the_rooms_endpoint_is_never_cached(self):
        response = self.client.get(reverse("api:rooms"))
        self.assertIn("no-cache", response["Cache-Control"])

    def test_the_rooms_endpoint_takes_no_put(self):
        self.assertEqual(self.client.put(reverse("api:rooms")).status_code, 405)

    def test_the_lobby_tells_its_script_where_and_how_often_to_refresh(self):
        response = self.client.get("/")
        self.assertContains(response, 'data-src="/api/rooms/"')
        self.assertContains(response, f'data-refresh-seconds="{LOBBY_REFRESH_SECONDS}"')


class RoomsJsonCountsTests(TestCase):
    """Each room's unread and mention counts in the lobby's feed, for the person asking."""

    def setUp(self):
        self.room = Room.objects.create(name="general")
        self.grace = make_user("grace")
        self.client.force_login(self.grace)

    def post(self, body: str, author: str = "bob"):
        return message_create(room=self.room, author=author, body=body).message

    def counts(self, client: Client | None = None) -> tuple[int, int]:
        (room,) = [r for r in (client or self.client).get(reverse("api:rooms")).json()["rooms"]]
        return room["unread"], room["mentions"]

    def test_a_signed_in_person_sees_what_others_wrote_after_their_marker(self):
        self.post("one")
        self.post("two, @grace")
        self.assertEqual(self.counts(), (2, 1))
        ReadMarker.objects.create(room=self.room, who=f"user:{self.grace.pk}", seq=1)
        self.assertEqual(self.counts(), (1, 1))

    def test_own_messages_are_never_unread(self):
        message_create(room=self.room, author="grace", user=self.grace, body="mine")
        self.assertEqual(self.counts(), (0, 0))

    def test_an_edit_that_removes_a_mention_takes_it_off_the_count(self):
        message = self.post("hi @grace")
        bob = Identity(name="bob", user=make_user("bob"))
        message.user = bob.user
        message.save()
        entry_create(change(room=self.room, identity=bob, kind=Kind.EDIT, target=message.seq, body="hi"))
        self.assertEqual(self.counts(), (1, 0))

    def test_a_deleted_message_is_neither_unread_nor_a_mention(self):
        message = self.post("hi @grace")
        staff = Identity(name="admin", user=get_user_model().objects.create_user("root", is_staff=True))
        entry_create(change(room=self.room, identity=staff, kind=Kind.DELETE, target=message.seq))
        self.assertEqual(self.counts(), (0, 0))

    def test_a_guest_has_counts_of_their_own(self):
        guest = Client()
        guest.get("/chat/general/")  # gives the session its guest name and id
        name = guest.session[GUEST_SESSION_KEY]
        # In the room (as their socket would make them), so that @name finds them.
        Presence.objects.create(room=self.room, connection_id="c1", name=name, seen=timezone.now())
        self.post(f"hello @{name}")
        self.assertEqual(self.counts(guest), (1, 1))

    def test_rooms_that_mention_you_come_first(self):
        self.post("see @grace")
        Room.objects.create(name="busy", last_activity=timezone.now() + timedelta(hours=1))
        names = [r["name"] for r in self.client.get(reverse("api:rooms")).json()["rooms"]]
        self.assertEqual(names, ["general", "busy"])


class MentionsPageTests(TestCase):
    def setUp(self):
        self.room = Room.objects.create(name="general")
        self.grace = make_user("grace")
        self.client.force_login(self.grace)

    def test_the_mentions_page_lists_messages_that_mention_you_newest_first_linking_to_each(self):
        first = message_create(room=self.room, author="bob", body="hi @grace").message
        message_create(room=self.room, author="bob", body="nothing here")
        second = message_create(room=self.room, author="bob", body="again @Grace").message
        response = self.client.get(reverse("chat:mentions"))
        body = response.content.decode()
        self.assertLess(body.index("again @Grace"), body.index("hi @grace"))
        self.assertNotIn("nothing here", body)
        self.assertIn(f'href="/chat/general/#seq-{first.seq}"', body)
        self.assertIn(f'href="/chat/general/#seq-{second.seq}"', body)

    def test_a_mention_edited_away_is_not_listed(self):
        bob = Identity(name="bob", user=make_user("bob"))
        message = message_create(room=self.room, author="bob", user=bob.user, body="hi @grace").message
        entry_create(change(room=self.room, identity=bob, kind=Kind.EDIT, target=message.seq, body="hi all"))
        self.assertNotContains(self.client.get(reverse("chat:mentions")), "hi @grace")

    def test_a_mention_in_a_room_you_can_no_longer_read_is_not_listed(self):
        team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        membership = Membership.objects.create(room=team, user=self.grace, role=Role.MEMBER)
        message_create(room=team, author="bob", body="secret for @grace")
        self.assertContains(self.client.get(reverse("chat:mentions")), "secret for @grace")
        membership.delete()
        self.assertNotContains(self.client.get(reverse("chat:mentions")), "secret for @grace")


def person(username: str, **extra) -> User:
    """A user without a password (nothing to hash): these tests sign in with force_login."""
    return User.objects.create_user(username, **extra)


def member_of(room: Room, username: str, role: str = Role.MEMBER) -> User:
    user = User.objects.filter(username=username).first() or person(username)
    Membership.objects.create(room=room, user=user, role=role)
    return user


class LobbySectionTests(TestCase):
    """The lobby lists only the rooms the person can see: rooms, then their direct messages."""

    def setUp(self):
        Room.objects.create(name="general")
        self.team = Room.objects.create(name="secret-team", kind=RoomKind.PRIVATE)
        self.ada = member_of(self.team, "ada", Role.OWNER)

    def test_a_guest_is_not_shown_a_private_room(self):
        response = self.client.get("/")
        self.assertEqual([room.name for room in response.context["rooms"]], ["general"])
        self.assertNotContains(response, "secret-team")

    def test_a_signed_in_outsider_is_not_shown_a_private_room(self):
        self.client.force_login(person("eve"))
        self.assertNotContains(self.client.get("/"), "secret-team")

    def test_a_member_is_shown_their_private_room_marked_private(self):
        self.client.force_login(self.ada)
        response = self.client.get("/")
        self.assertContains(response, 'href="/chat/secret-team/"')
        self.assertContains(response, '<span class="room-kind-tag">private</span>', html=True)

    def test_a_direct_room_is_listed_under_direct_messages_by_the_other_persons_name(self):
        bob = person("bob")
        dm = Room.objects.create(name=f"dm-{self.ada.pk}-{bob.pk}", kind=RoomKind.DIRECT)
        member_of(dm, "ada")
        member_of(dm, "bob")
        self.client.force_login(self.ada)
        response = self.client.get("/")
        self.assertNotIn(dm.name, [room.name for room in response.context["rooms"]])
        (directs,) = [section.rooms for section in response.context["sections"] if section.list_id == "dm-list"]
        self.assertEqual([(room.name, room.other) for room in directs], [(dm.name, "bob")])
        self.assertContains(response, f'<a class="room-link" href="/chat/{dm.name}/">@bob</a>', html=True)

    def test_a_guest_has_no_direct_messages_section_or_box(self):
        response = self.client.get("/")
        self.assertNotContains(response, 'id="dm-list"')
        self.assertNotContains(response, 'id="dm-username"')

    def test_a_signed_in_person_has_a_direct_message_box_going_to_dm(self):
        self.client.force_login(self.ada)
        self.assertEqual(element_attrs(self.client.get("/"), "dm-form")["action"], "/dm/")

    def test_a_guest_may_not_choose_a_private_room(self):
        self.assertIn("disabled", element_attrs(self.client.get("/"), "room-kind-private"))

    def test_a_signed_in_person_may_choose_a_private_room(self):
        self.client.force_login(self.ada)
        self.assertNotIn("disabled", element_attrs(self.client.get("/"), "room-kind-private"))

    def test_public_is_chosen_unless_private_was(self):
        self.assertIn("checked", element_attrs(self.client.get("/"), "room-kind-public"))


@FAST_HASHING
class RoomCreateFormTests(TestCase):
    """The lobby's form creates a room the way POST /api/rooms/ does (chat.membership), or opens a public one."""

    def test_a_signed_in_person_creating_a_room_owns_it(self):
        ada = person("ada")
        self.client.force_login(ada)
        self.client.post("/rooms/", {"name": "team"})
        self.assertEqual(Membership.objects.get(room__name="team").user, ada)

    def test_a_private_room_is_created_private(self):
        self.client.force_login(person("ada"))
        response = self.client.post("/rooms/", {"name": "team", "kind": "private"})
        self.assertRedirects(response, "/chat/team/", fetch_redirect_response=False)
        self.assertEqual(Room.objects.get(name="team").kind, RoomKind.PRIVATE)

    def test_a_guest_asking_for_a_private_room_is_told_to_sign_in_and_gets_none(self):
        response = self.client.post("/rooms/", {"name": "team", "kind": "private"})
        self.assertContains(response, "Sign in to create a private room.")
        self.assertFalse(Room.objects.exists())

    def test_a_guests_public_room_has_no_owner(self):
        self.client.post("/rooms/", {"name": "open"})
        self.assertEqual((Room.objects.count(), Membership.objects.count()), (1, 0))

    def test_opening_a_taken_name_as_public_goes_to_that_room_and_changes_nothing(self):
        Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.client.force_login(person("eve"))
        response = self.client.post("/rooms/", {"name": "team"})
        self.assertRedirects(response, "/chat/team/", fetch_redirect_response=False)
        self.assertFalse(Membership.objects.exists())

    def test_a_taken_name_asked_for_as_private_is_refused(self):
        Room.objects.create(name="team")
        self.client.force_login(person("ada"))
        self.assertContains(self.client.post("/rooms/", {"name": "team", "kind": "private"}), "already a room")

    def test_a_direct_rooms_reserved_name_is_refused(self):
        response = self.client.post("/rooms/", {"name": "dm-1-2"})
        self.assertContains(response, 'class="error" role="alert"')
        self.assertFalse(Room.objects.exists())

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_an_anonymous_post_is_sent_to_log_in(self):
        response = self.client.post("/rooms/", {"name": "team"})
        self.assertRedirects(response, "/accounts/login/?next=/rooms/", fetch_redirect_response=False)
        self.assertFalse(Room.objects.exists())


class PrivateRoomPageTests(TestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.ada = member_of(self.team, "ada", Role.OWNER)

    def test_a_private_room_is_404_to_a_signed_in_outsider(self):
        self.client.force_login(person("eve"))
        self.assertEqual(self.client.get("/chat/team/").status_code, 404)

    def test_a_private_room_is_404_to_a_guest(self):
        self.assertEqual(self.client.get("/chat/team/").status_code, 404)

    def test_a_private_room_answers_an_outsider_with_the_page_of_an_unknown_reserved_name(self):
        self.client.force_login(person("eve"))
        private, missing = self.client.get("/chat/team/"), self.client.get("/chat/dm-1-2/")
        self.assertEqual((private.status_code, private.content), (missing.status_code, missing.content))

    def test_an_unknown_reserved_name_is_404_and_makes_no_room(self):
        self.assertEqual(self.client.get("/chat/dm-1-2/").status_code, 404)
        self.assertFalse(Room.objects.filter(name="dm-1-2").exists())

    def test_a_banned_member_gets_404(self):
        Restriction.objects.create(room=self.team, action=Action.BAN, who=f"user:{self.ada.pk}", by="root")
        self.client.force_login(self.ada)
        self.assertEqual(self.client.get("/chat/team/").status_code, 404)

    def test_a_member_gets_the_page_with_its_kind_and_role(self):
        self.client.force_login(self.ada)
        room = element_attrs(self.client.get("/chat/team/"), "room")
        self.assertEqual((room["data-kind"], room["data-role"], room["data-moderator"]), ("private", "owner", "true"))

    def test_staff_get_a_private_rooms_page(self):
        self.client.force_login(person("root", is_staff=True))
        self.assertEqual(self.client.get("/chat/team/").status_code, 200)

    def test_a_private_room_has_a_members_panel_reading_its_members_api(self):
        self.client.force_login(self.ada)
        panel = element_attrs(self.client.get("/chat/team/"), "members-panel")
        self.assertEqual(
            (panel["data-src"], panel["data-invites"]), ("/api/rooms/team/members/", "/api/rooms/team/invites/")
        )

    def test_the_members_panel_carries_a_csrf_token_for_its_writes(self):
        self.client.force_login(self.ada)
        self.assertContains(self.client.get("/chat/team/"), 'name="csrfmiddlewaretoken"')

    def test_a_public_room_has_no_members_panel_for_those_who_do_not_moderate_it(self):
        self.assertNotContains(self.client.get("/chat/general/"), 'id="members-panel"')

    def test_a_public_rooms_owner_gets_the_members_panel(self):
        room = Room.objects.create(name="open")
        member_of(room, "ada", Role.OWNER)
        self.client.force_login(self.ada)
        self.assertContains(self.client.get("/chat/open/"), 'id="members-panel"')


class InvitePageTests(TestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.ada = member_of(self.team, "ada", Role.OWNER)
        self.dan = person("dan")
        self.token, self.invite = membership.invite_create(self.team, Identity(name="ada", user=self.ada))
        self.url = f"/invite/{self.token}/"

    def open_as(self, user: User, url: str | None = None):
        self.client.force_login(user)
        return self.client.get(url or self.url)

    def is_member(self, user: User) -> bool:
        return Membership.objects.filter(room=self.team, user=user).exists()

    def test_a_signed_in_person_becomes_a_member_and_goes_to_the_room(self):
        response = self.open_as(self.dan)
        self.assertRedirects(response, "/chat/team/", fetch_redirect_response=False)
        self.assertEqual(Membership.objects.get(room=self.team, user=self.dan).role, Role.MEMBER)

    def test_the_invited_person_then_reads_the_room(self):
        self.open_as(self.dan)
        self.assertEqual(self.client.get("/chat/team/").status_code, 200)

    def test_a_member_opening_it_keeps_their_role(self):
        self.open_as(self.ada)
        self.assertEqual(Membership.objects.get(room=self.team, user=self.ada).role, Role.OWNER)

    def test_a_link_works_for_several_people(self):
        self.open_as(self.dan)
        self.open_as(person("cy"))
        self.assertEqual(Membership.objects.filter(room=self.team).count(), 3)

    def test_a_guest_is_sent_to_log_in_and_back(self):
        response = self.client.get(self.url)
        self.assertRedirects(response, f"/accounts/login/?next={self.url}", fetch_redirect_response=False)
        self.assertFalse(Membership.objects.filter(room=self.team).exclude(user=self.ada).exists())

    @FAST_HASHING
    def test_logging_in_from_the_link_comes_back_to_it_and_joins(self):
        make_user("bea")
        response = self.client.post(
            reverse("login"), {"username": "bea", "password": PASSWORD, "next": self.url}, follow=True
        )
        self.assertEqual(response.redirect_chain[-1], ("/chat/team/", 302))
        self.assertTrue(Membership.objects.filter(room=self.team, user__username="bea").exists())

    def test_a_forged_token_is_404(self):
        self.assertEqual(self.open_as(self.dan, "/invite/forged-token-0123456789/").status_code, 404)
        self.assertFalse(self.is_member(self.dan))

    def test_a_tampered_token_is_404(self):
        tampered = self.token[:-1] + ("A" if self.token[-1] != "A" else "B")
        self.assertEqual(self.open_as(self.dan, f"/invite/{tampered}/").status_code, 404)
        self.assertFalse(self.is_member(self.dan))

    def test_the_stored_hash_is_no_token(self):
        self.assertEqual(self.open_as(self.dan, f"/invite/{self.invite.token_hash}/").status_code, 404)

    def test_an_expired_token_is_404(self):
        Invite.objects.filter(pk=self.invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        self.assertEqual(self.open_as(self.dan).status_code, 404)
        self.assertFalse(self.is_member(self.dan))

    def test_a_revoked_token_is_404(self):
        membership.invite_revoke_all(self.team, Identity(name="ada", user=self.ada))
        self.assertEqual(self.open_as(self.dan).status_code, 404)
        self.assertFalse(self.is_member(self.dan))

    def kick(self, user: User) -> None:
        ada = Identity(name="ada", user=self.ada)
        entry_create(moderation(room=self.team, identity=ada, action=Action.KICK, subject=user.username))

    def test_a_person_kicked_after_the_link_was_made_cannot_come_back_through_it(self):
        self.open_as(self.dan)
        self.kick(self.dan)
        self.assertFalse(self.is_member(self.dan))
        self.assertEqual(self.client.get(self.url).status_code, 404)
        self.assertFalse(self.is_member(self.dan))

    def test_a_person_kicked_before_a_link_was_made_may_use_the_new_one(self):
        self.open_as(self.dan)
        self.kick(self.dan)
        token, _ = membership.invite_create(self.team, Identity(name="ada", user=self.ada))
        self.assertRedirects(self.client.get(f"/invite/{token}/"), "/chat/team/", fetch_redirect_response=False)

    def test_a_person_banned_since_the_link_was_made_cannot_use_it(self):
        entry_create(
            moderation(room=self.team, identity=Identity(name="ada", user=self.ada), action=Action.BAN, subject="dan")
        )
        self.assertEqual(self.open_as(self.dan).status_code, 404)
        self.assertFalse(self.is_member(self.dan))

    def test_a_person_banned_now_cannot_use_any_link(self):
        Restriction.objects.create(
            room=self.team,
            action=Action.BAN,
            who=f"user:{self.dan.pk}",
            by="ada",
            created=timezone.now() - timedelta(days=9),
        )
        self.assertEqual(self.open_as(self.dan).status_code, 404)

    def test_an_invite_link_needs_a_get(self):
        self.client.force_login(self.dan)
        self.assertEqual(self.client.post(self.url).status_code, 405)


class DirectMessageTests(TestCase):
    def setUp(self):
        self.ada, self.bob = person("ada"), person("bob")
        self.name = f"dm-{min(self.ada.pk, self.bob.pk)}-{max(self.ada.pk, self.bob.pk)}"

    def test_opening_a_direct_message_makes_the_pairs_room_and_goes_there(self):
        self.client.force_login(self.ada)
        self.assertRedirects(self.client.get("/dm/bob/"), f"/chat/{self.name}/", fetch_redirect_response=False)
        room = Room.objects.get(name=self.name)
        self.assertEqual(room.kind, RoomKind.DIRECT)
        self.assertEqual(
            set(Membership.objects.filter(room=room).values_list("user__username", "role")),
            {("ada", Role.MEMBER), ("bob", Role.MEMBER)},
        )

    def test_the_pair_has_one_room_whoever_opens_it(self):
        self.client.force_login(self.ada)
        self.client.get("/dm/bob/")
        self.client.force_login(self.bob)
        self.assertRedirects(self.client.get("/dm/ada/"), f"/chat/{self.name}/", fetch_redirect_response=False)
        self.assertEqual((Room.objects.count(), Membership.objects.count()), (1, 2))

    def test_the_direct_room_page_is_named_after_the_other_person(self):
        self.client.force_login(self.ada)
        response = self.client.get("/dm/bob/", follow=True)
        self.assertContains(response, "<title>@bob · chatsite</title>", html=True)
        self.assertEqual(element_attrs(response, "room")["data-with"], "bob")

    def test_a_third_person_gets_404_from_the_direct_room_page(self):
        self.client.force_login(self.ada)
        self.client.get("/dm/bob/")
        self.client.force_login(person("eve"))
        self.assertEqual(self.client.get(f"/chat/{self.name}/").status_code, 404)

    def test_a_direct_room_has_no_members_panel(self):
        self.client.force_login(self.ada)
        self.assertNotContains(self.client.get("/dm/bob/", follow=True), 'id="members-panel"')

    def test_an_unknown_username_is_404(self):
        self.client.force_login(self.ada)
        self.assertEqual(self.client.get("/dm/nobody/").status_code, 404)
        self.assertFalse(Room.objects.exists())

    def test_yourself_is_404(self):
        self.client.force_login(self.ada)
        self.assertEqual(self.client.get("/dm/ada/").status_code, 404)
        self.assertFalse(Room.objects.exists())

    def test_a_guest_is_sent_to_log_in_and_back(self):
        response = self.client.get("/dm/bob/")
        self.assertRedirects(response, "/accounts/login/?next=/dm/bob/", fetch_redirect_response=False)
        self.assertFalse(Room.objects.exists())

    def test_the_lobbys_box_goes_to_the_persons_direct_message_url(self):
        self.client.force_login(self.ada)
        self.assertRedirects(self.client.get("/dm/?username=bob"), "/dm/bob/", fetch_redirect_response=False)

    def test_an_empty_box_goes_back_to_the_lobby(self):
        self.assertRedirects(self.client.get("/dm/?username="), "/", fetch_redirect_response=False)

    def test_a_name_no_url_can_hold_is_nobody(self):
        self.client.force_login(self.ada)
        self.assertEqual(self.client.get("/dm/?username=a/b").status_code, 404)
