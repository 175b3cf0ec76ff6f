"""The HTTP API (chat.api): every endpoint's answers and errors, CSRF on every write, and no private room leaking
to anyone outside it. The rules behind the answers are tested in test_membership.py."""

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from chat.events import REVOKE_EVENT
from chat.models import Action, Invite, Kind, Membership, Message, Report, Restriction, Role, Room, RoomKind
from chat.tests.helpers import RoomListener

JSON = "application/json"


def make_user(username: str, **extra: Any) -> User:
    return User.objects.create_user(username, **extra)


def room_with(name: str, kind: str = RoomKind.PRIVATE, **roles: str) -> Room:
    """A room whose members are ``username=role``, made by hand (not through the API under test)."""
    room = Room.objects.create(name=name, kind=kind)
    for username, role in roles.items():
        user = User.objects.filter(username=username).first() or make_user(username)
        Membership.objects.create(room=room, user=user, role=role)
    return room


def signed_in(username: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(User.objects.filter(username=username).first() or make_user(username))
    return client


def csrf_headers(client: Client) -> dict[str, str]:
    """The header a page's script sends: the csrftoken cookie's value, which any page sets."""
    client.get("/")
    return {"X-CSRFToken": client.cookies["csrftoken"].value}


class ApiTestCase(TestCase):
    def post(self, client: Client, path: str, data: dict[str, Any] | None = None, **extra: Any):
        return client.post(path, data or {}, content_type=JSON, **extra)

    def assertError(self, response, status: int, code: str) -> None:
        self.assertEqual(response.status_code, status, response.content)
        body = response.json()
        self.assertEqual(body["error"], code)
        self.assertIsInstance(body["detail"], str)


class SessionAuthTests(ApiTestCase):
    def test_a_request_without_a_session_cookie_is_answered_as_a_guest(self):
        Room.objects.create(name="general")
        response = Client().get("/api/rooms/")
        self.assertEqual([room["name"] for room in response.json()["rooms"]], ["general"])

    def test_a_guests_first_request_gives_them_a_session(self):
        response = Client().get("/api/rooms/")
        self.assertIn("sessionid", response.cookies)

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_an_anonymous_request_is_401_login_required(self):
        self.assertError(Client().get("/api/rooms/"), 401, "login_required")

    @override_settings(CHAT_ALLOW_GUESTS=False)
    def test_with_guests_off_a_signed_in_person_is_served(self):
        self.assertEqual(signed_in("ada").get("/api/rooms/").status_code, 200)

    def test_the_openapi_docs_are_at_api_docs(self):
        self.assertEqual(self.client.get("/api/docs").status_code, 200)

    def test_the_openapi_schema_lists_every_endpoint(self):
        paths = self.client.get("/api/openapi.json").json()["paths"]
        self.assertEqual(
            set(paths),
            {
                "/api/rooms/",
                "/api/rooms/{room}/members/",
                "/api/rooms/{room}/members/{username}/",
                "/api/rooms/{room}/invites/",
            },
        )


class CsrfTests(ApiTestCase):
    """Every write needs the CSRF token; without it the answer is 403 csrf_failed and nothing changes."""

    def setUp(self):
        self.room = room_with("team", ada=Role.OWNER, bob=Role.MEMBER)
        self.ada = signed_in("ada", csrf=True)
        self.invite = Invite.objects.create(
            room=self.room, token_hash="0" * 64, expires_at=timezone.now() + timedelta(days=1)
        )

    def test_creating_a_room_without_the_token_is_403_and_creates_nothing(self):
        self.assertError(self.post(self.ada, "/api/rooms/", {"name": "new"}), 403, "csrf_failed")
        self.assertFalse(Room.objects.filter(name="new").exists())

    def test_a_guest_creating_a_room_without_the_token_is_403(self):
        guest = Client(enforce_csrf_checks=True)
        self.assertError(self.post(guest, "/api/rooms/", {"name": "new"}), 403, "csrf_failed")
        self.assertFalse(Room.objects.filter(name="new").exists())

    def test_adding_a_member_without_the_token_is_403_and_adds_nobody(self):
        make_user("cy")
        response = self.post(self.ada, "/api/rooms/team/members/", {"username": "cy"})
        self.assertError(response, 403, "csrf_failed")
        self.assertFalse(Membership.objects.filter(user__username="cy").exists())

    def test_removing_a_member_without_the_token_is_403_and_removes_nobody(self):
        self.assertError(self.ada.delete("/api/rooms/team/members/bob/"), 403, "csrf_failed")
        self.assertTrue(Membership.objects.filter(room=self.room, user__username="bob").exists())

    def test_leaving_without_the_token_is_403_and_keeps_the_membership(self):
        bob = signed_in("bob", csrf=True)
        self.assertError(bob.delete("/api/rooms/team/members/bob/"), 403, "csrf_failed")
        self.assertTrue(Membership.objects.filter(room=self.room, user__username="bob").exists())

    def test_creating_an_invite_without_the_token_is_403_and_creates_none(self):
        self.assertError(self.post(self.ada, "/api/rooms/team/invites/"), 403, "csrf_failed")
        self.assertEqual(Invite.objects.count(), 1)

    def test_revoking_invites_without_the_token_is_403_and_revokes_none(self):
        self.assertError(self.ada.delete("/api/rooms/team/invites/"), 403, "csrf_failed")
        self.invite.refresh_from_db()
        self.assertIsNone(self.invite.revoked_at)

    def test_a_wrong_token_is_refused_too(self):
        response = self.post(self.ada, "/api/rooms/", {"name": "new"}, headers={"X-CSRFToken": "x" * 32})
        self.assertError(response, 403, "csrf_failed")

    def test_with_the_pages_token_a_write_goes_through(self):
        response = self.post(self.ada, "/api/rooms/", {"name": "new"}, headers=csrf_headers(self.ada))
        self.assertEqual(response.status_code, 201)

    def test_reading_needs_no_token(self):
        self.assertEqual(self.ada.get("/api/rooms/team/members/").status_code, 200)


class RoomCreateTests(ApiTestCase):
    def test_a_signed_in_person_creates_a_public_room_and_owns_it(self):
        response = self.post(signed_in("ada"), "/api/rooms/", {"name": "General", "kind": "public"})
        self.assertEqual(
            (response.status_code, response.json()), (201, {"name": "general", "kind": "public", "role": "owner"})
        )
        self.assertEqual(Membership.objects.get(room__name="general").role, Role.OWNER)

    def test_a_signed_in_person_creates_a_private_room(self):
        response = self.post(signed_in("ada"), "/api/rooms/", {"name": "team", "kind": "private"})
        self.assertEqual(response.json(), {"name": "team", "kind": "private", "role": "owner"})
        self.assertEqual(Room.objects.get(name="team").kind, RoomKind.PRIVATE)

    def test_the_kind_defaults_to_public(self):
        self.assertEqual(self.post(signed_in("ada"), "/api/rooms/", {"name": "team"}).json()["kind"], "public")

    def test_a_guest_creates_a_public_room_without_an_owner(self):
        response = self.post(self.client, "/api/rooms/", {"name": "open", "kind": "public"})
        self.assertEqual(response.json(), {"name": "open", "kind": "public", "role": None})
        self.assertFalse(Membership.objects.exists())

    def test_a_guest_asking_for_a_private_room_is_403_and_gets_none(self):
        self.assertError(self.post(self.client, "/api/rooms/", {"name": "hide", "kind": "private"}), 403, "forbidden")
        self.assertFalse(Room.objects.exists())

    def test_a_bad_name_is_400_bad_room(self):
        for name in ["bad.name", "a b", "", "a" * 65]:
            with self.subTest(name=name):
                self.assertError(self.post(signed_in("ada"), "/api/rooms/", {"name": name}), 400, "bad_room")

    def test_a_direct_rooms_reserved_name_is_400_bad_room(self):
        self.assertError(self.post(signed_in("ada"), "/api/rooms/", {"name": "dm-1-2"}), 400, "bad_room")
        self.assertFalse(Room.objects.exists())

    def test_a_taken_name_is_409_name_taken_in_any_case(self):
        Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.assertError(self.post(signed_in("ada"), "/api/rooms/", {"name": "TEAM"}), 409, "name_taken")
        self.assertFalse(Membership.objects.exists())

    def test_a_direct_kind_is_400_bad_request(self):
        self.assertError(
            self.post(signed_in("ada"), "/api/rooms/", {"name": "x", "kind": "direct"}), 400, "bad_request"
        )

    def test_a_body_without_a_name_is_400_bad_request_naming_the_field(self):
        response = self.post(signed_in("ada"), "/api/rooms/", {"kind": "public"})
        self.assertError(response, 400, "bad_request")
        self.assertEqual(response.json()["detail"], "name: Field required")


class RoomListTests(ApiTestCase):
    def names(self, client: Client) -> list[str]:
        return [room["name"] for room in client.get("/api/rooms/").json()["rooms"]]

    def setUp(self):
        Room.objects.create(name="general")
        self.team = room_with("team", ada=Role.OWNER, bob=Role.MODERATOR)

    def test_each_room_has_its_kind_and_the_requesters_role(self):
        rooms = {room["name"]: room for room in signed_in("bob").get("/api/rooms/").json()["rooms"]}
        self.assertEqual(
            {name: (room["kind"], room["role"], room["with"]) for name, room in rooms.items()},
            {"general": ("public", None, None), "team": ("private", "moderator", None)},
        )

    def test_a_direct_room_names_the_other_person(self):
        bob = User.objects.get(username="bob")
        dm = room_with(f"dm-1-{bob.pk}", RoomKind.DIRECT, ada=Role.MEMBER, bob=Role.MEMBER)
        rooms = {room["name"]: room for room in signed_in("ada").get("/api/rooms/").json()["rooms"]}
        self.assertEqual((rooms[dm.name]["kind"], rooms[dm.name]["with"]), ("direct", "bob"))

    def test_a_private_room_is_not_listed_to_a_signed_in_outsider(self):
        self.assertEqual(self.names(signed_in("eve")), ["general"])

    def test_a_private_room_is_not_listed_to_a_guest(self):
        self.assertEqual(self.names(self.client), ["general"])

    def test_a_private_room_is_not_listed_to_staff_who_are_not_members(self):
        make_user("root", is_staff=True)
        self.assertEqual(self.names(signed_in("root")), ["general"])

    def test_a_direct_room_is_listed_to_its_two_people_only(self):
        room_with("dm-1-2", RoomKind.DIRECT, ada=Role.MEMBER, cy=Role.MEMBER)
        self.assertIn("dm-1-2", self.names(signed_in("cy")))
        self.assertNotIn("dm-1-2", self.names(signed_in("bob")))

    def test_a_room_the_person_is_banned_from_is_not_listed(self):
        eve = make_user("eve")
        Restriction.objects.create(
            room=Room.objects.get(name="general"), action=Action.BAN, who=f"user:{eve.pk}", by="x"
        )
        self.assertEqual(self.names(signed_in("eve")), [])

    def test_a_private_rooms_messages_count_for_its_members_only(self):
        Message.objects.create(room=self.team, seq=1, author="bob", body="@eve secret")
        self.team.last_seq = 1
        self.team.save()
        rooms = {room["name"]: room for room in signed_in("ada").get("/api/rooms/").json()["rooms"]}
        self.assertEqual(rooms["team"]["unread"], 1)
        self.assertNotIn("team", self.names(signed_in("eve")))


class MembersListTests(ApiTestCase):
    def setUp(self):
        self.room = room_with("team", ada=Role.OWNER, bob=Role.MODERATOR, cy=Role.MEMBER)
        Report.objects.create(room=self.room, target_seq=3, reason="spam", by="cy", who="user:3")

    def test_a_member_sees_the_members_with_their_roles_owners_first(self):
        body = signed_in("cy").get("/api/rooms/team/members/").json()
        self.assertEqual(
            [(m["username"], m["role"]) for m in body["members"]],
            [("ada", "owner"), ("bob", "moderator"), ("cy", "member")],
        )

    def test_a_member_sees_no_reports_and_may_change_nothing(self):
        body = signed_in("cy").get("/api/rooms/team/members/").json()
        self.assertEqual((body["reports"], body["manage"], body["roles"], body["role"]), (None, False, [], "member"))
        self.assertFalse(any(m["removable"] for m in body["members"]))

    def test_a_moderator_sees_the_reports_and_may_add_members_only(self):
        body = signed_in("bob").get("/api/rooms/team/members/").json()
        self.assertEqual([(r["target"], r["reason"], r["by"]) for r in body["reports"]], [(3, "spam", "cy")])
        self.assertEqual((body["manage"], body["roles"]), (True, ["member"]))

    def test_a_moderator_may_remove_members_but_not_owners_or_moderators(self):
        body = signed_in("bob").get("/api/rooms/team/members/").json()
        self.assertEqual(
            {m["username"]: m["removable"] for m in body["members"]}, {"ada": False, "bob": False, "cy": True}
        )

    def test_an_owner_may_give_either_role(self):
        self.assertEqual(signed_in("ada").get("/api/rooms/team/members/").json()["roles"], ["member", "moderator"])

    def test_staff_see_a_private_rooms_members_and_reports(self):
        make_user("root", is_staff=True)
        body = signed_in("root").get("/api/rooms/team/members/").json()
        self.assertEqual((len(body["members"]), len(body["reports"]), body["role"]), (3, 1, None))

    def test_a_signed_in_outsider_gets_404(self):
        self.assertError(signed_in("eve").get("/api/rooms/team/members/"), 404, "not_found")

    def test_a_guest_gets_404(self):
        self.assertError(self.client.get("/api/rooms/team/members/"), 404, "not_found")

    def test_a_private_room_and_no_room_answer_alike(self):
        eve = signed_in("eve")
        self.assertEqual(eve.get("/api/rooms/team/members/").json(), eve.get("/api/rooms/nothing/members/").json())

    def test_someone_kicked_from_the_room_gets_404(self):
        Membership.objects.filter(user__username="cy").delete()
        self.assertError(signed_in("cy").get("/api/rooms/team/members/"), 404, "not_found")

    def test_a_guest_may_list_a_public_rooms_members(self):
        room_with("open", RoomKind.PUBLIC, ada=Role.OWNER)
        body = self.client.get("/api/rooms/open/members/").json()
        self.assertEqual(([m["username"] for m in body["members"]], body["reports"]), (["ada"], None))


class MemberAddTests(ApiTestCase):
    def setUp(self):
        self.room = room_with("team", ada=Role.OWNER, bob=Role.MODERATOR, cy=Role.MEMBER)
        make_user("dan")

    def add(self, by: str, username: str = "dan", role: str = "member"):
        return self.post(signed_in(by), "/api/rooms/team/members/", {"username": username, "role": role})

    def role_of(self, username: str) -> str | None:
        return Membership.objects.filter(room=self.room, user__username=username).values_list("role", flat=True).first()

    def test_an_owner_adds_a_member(self):
        response = self.add("ada")
        self.assertEqual((response.status_code, response.json()), (201, {"username": "dan", "role": "member"}))
        self.assertEqual(self.role_of("dan"), Role.MEMBER)

    def test_an_owner_adds_a_moderator(self):
        self.assertEqual(self.add("ada", role="moderator").status_code, 201)
        self.assertEqual(self.role_of("dan"), Role.MODERATOR)

    def test_an_owner_makes_a_member_a_moderator_and_back(self):
        self.add("ada", "cy", "moderator")
        self.assertEqual(self.role_of("cy"), Role.MODERATOR)
        self.add("ada", "cy", "member")
        self.assertEqual(self.role_of("cy"), Role.MEMBER)

    def test_a_moderator_adds_a_member(self):
        self.assertEqual(self.add("bob").status_code, 201)
        self.assertEqual(self.role_of("dan"), Role.MEMBER)

    def test_a_moderator_adding_a_moderator_is_403(self):
        self.assertError(self.add("bob", role="moderator"), 403, "forbidden")
        self.assertIsNone(self.role_of("dan"))

    def test_a_moderator_promoting_a_member_is_403(self):
        self.assertError(self.add("bob", "cy", "moderator"), 403, "forbidden")
        self.assertEqual(self.role_of("cy"), Role.MEMBER)

    def test_a_moderator_demoting_a_moderator_is_403(self):
        User.objects.get(username="dan")
        Membership.objects.create(room=self.room, user=User.objects.get(username="dan"), role=Role.MODERATOR)
        self.assertError(self.add("bob", "dan", "member"), 403, "forbidden")
        self.assertEqual(self.role_of("dan"), Role.MODERATOR)

    def test_nobody_demotes_an_owner_through_the_api_but_staff(self):
        Membership.objects.create(room=self.room, user=User.objects.get(username="dan"), role=Role.OWNER)
        self.assertError(self.add("ada", "dan", "member"), 403, "forbidden")
        make_user("root", is_staff=True)
        self.assertEqual(self.add("root", "dan", "moderator").status_code, 201)

    def test_a_member_adding_anyone_is_403(self):
        self.assertError(self.add("cy"), 403, "forbidden")
        self.assertIsNone(self.role_of("dan"))

    def test_an_outsider_gets_404_and_adds_nobody(self):
        self.assertError(self.add("eve"), 404, "not_found")
        self.assertIsNone(self.role_of("dan"))

    def test_an_outsider_adding_themselves_gets_404(self):
        self.assertError(self.add("eve", "eve"), 404, "not_found")
        self.assertIsNone(self.role_of("eve"))

    def test_a_guest_gets_404(self):
        self.assertError(self.post(self.client, "/api/rooms/team/members/", {"username": "dan"}), 404, "not_found")

    def test_an_unknown_username_is_404(self):
        self.assertError(self.add("ada", "nobody"), 404, "not_found")

    def test_the_owner_role_cannot_be_given_here(self):
        self.assertError(self.add("ada", role="owner"), 400, "bad_request")

    def test_a_direct_room_takes_no_members(self):
        ada, dan = User.objects.get(username="ada"), User.objects.get(username="dan")
        room_with(f"dm-{ada.pk}-{dan.pk}", RoomKind.DIRECT, ada=Role.MEMBER, dan=Role.MEMBER)
        response = self.post(signed_in("ada"), f"/api/rooms/dm-{ada.pk}-{dan.pk}/members/", {"username": "cy"})
        self.assertError(response, 400, "direct_room")

    def test_a_direct_room_is_404_to_an_outsider(self):
        ada, dan = User.objects.get(username="ada"), User.objects.get(username="dan")
        room_with(f"dm-{ada.pk}-{dan.pk}", RoomKind.DIRECT, ada=Role.MEMBER, dan=Role.MEMBER)
        response = self.post(signed_in("cy"), f"/api/rooms/dm-{ada.pk}-{dan.pk}/members/", {"username": "cy"})
        self.assertError(response, 404, "not_found")

    def test_in_a_public_room_a_member_adding_is_403(self):
        room_with("open", RoomKind.PUBLIC, ada=Role.OWNER)
        response = self.post(signed_in("cy"), "/api/rooms/open/members/", {"username": "dan"})
        self.assertError(response, 403, "forbidden")


class LeaveTests(ApiTestCase):
    def setUp(self):
        self.room = room_with("team", ada=Role.OWNER, cy=Role.MEMBER)

    def test_a_member_leaves_with_a_delete_of_their_own_name(self):
        self.assertEqual(signed_in("cy").delete("/api/rooms/team/members/cy/").status_code, 204)
        self.assertFalse(Membership.objects.filter(user__username="cy").exists())

    def test_leaving_writes_no_moderation_entry(self):
        signed_in("cy").delete("/api/rooms/team/members/cy/")
        self.assertFalse(Message.objects.filter(kind=Kind.MODERATION).exists())

    async def test_leaving_a_private_room_closes_your_sockets_to_it(self):
        cy = await User.objects.aget(username="cy")
        await self.async_client.aforce_login(cy)
        async with RoomListener("team") as listener:
            await self.async_client.delete("/api/rooms/team/members/cy/")
            event = await listener.receive()
        self.assertEqual((event["type"], event["person"]), (REVOKE_EVENT, f"user:{cy.pk}"))

    async def test_leaving_a_public_room_you_still_read_closes_nothing(self):
        room = await Room.objects.acreate(name="open")
        cy = await User.objects.aget(username="cy")
        await Membership.objects.acreate(room=room, user=cy, role=Role.MODERATOR)
        await self.async_client.aforce_login(cy)
        async with RoomListener("open") as listener:
            response = await self.async_client.delete("/api/rooms/open/members/cy/")
            self.assertIsNone(await listener.receive_or_none())
        self.assertEqual(response.status_code, 204)

    def test_the_last_owner_may_not_leave(self):
        self.assertError(signed_in("ada").delete("/api/rooms/team/members/ada/"), 400, "last_owner")
        self.assertTrue(Membership.objects.filter(user__username="ada").exists())

    def test_an_owner_leaves_when_another_owner_stays(self):
        Membership.objects.create(room=self.room, user=make_user("bea"), role=Role.OWNER)
        self.assertEqual(signed_in("ada").delete("/api/rooms/team/members/ada/").status_code, 204)

    def test_leaving_a_room_you_cannot_read_is_404(self):
        self.assertError(signed_in("eve").delete("/api/rooms/team/members/eve/"), 404, "not_found")

    def test_leaving_a_public_room_you_are_no_member_of_is_404(self):
        Room.objects.create(name="open")
        self.assertError(signed_in("eve").delete("/api/rooms/open/members/eve/"), 404, "not_found")

    def test_nobody_leaves_a_direct_room(self):
        room_with("dm-1-2", RoomKind.DIRECT, cy=Role.MEMBER, dan=Role.MEMBER)
        self.assertError(signed_in("cy").delete("/api/rooms/dm-1-2/members/cy/"), 400, "direct_room")


class KickTests(TransactionTestCase):
    """A DELETE of someone else is a kick: a moderation entry through the socket path's writer (which commits on
    its own database thread, hence real commits here)."""

    def setUp(self):
        self.room = room_with("team", ada=Role.OWNER, bob=Role.MODERATOR, cy=Role.MEMBER, dan=Role.MEMBER)

    def member(self, username: str) -> bool:
        return Membership.objects.filter(room=self.room, user__username=username).exists()

    async def kick(self, by: str, username: str):
        client = self.async_client
        await client.aforce_login(await User.objects.aget(username=by))
        return await client.delete(f"/api/rooms/team/members/{username}/")

    async def test_an_owner_removes_a_member_with_a_kick_entry_in_the_log(self):
        response = await self.kick("ada", "cy")
        self.assertEqual(response.status_code, 204)
        entry = await Message.objects.aget(room=self.room, kind=Kind.MODERATION)
        self.assertEqual((entry.action, entry.subject, entry.author), (Action.KICK, "cy", "ada"))
        self.assertFalse(await Membership.objects.filter(room=self.room, user__username="cy").aexists())

    async def test_the_kick_is_broadcast_to_the_room_and_shuts_the_person_out(self):
        async with RoomListener("team") as listener:
            await self.kick("bob", "cy")
            event = await listener.receive()
        cy = await User.objects.aget(username="cy")
        self.assertEqual(event.get("revokes"), f"user:{cy.pk}")

    async def test_a_member_kicking_is_403_and_removes_nobody(self):
        response = await self.kick("cy", "dan")
        self.assertEqual((response.status_code, response.json()["error"]), (403, "forbidden"))
        self.assertTrue(await Membership.objects.filter(room=self.room, user__username="dan").aexists())

    async def test_a_moderator_kicking_an_owner_is_403(self):
        response = await self.kick("bob", "ada")
        self.assertEqual((response.status_code, response.json()["error"]), (403, "forbidden"))
        self.assertFalse(await Message.objects.filter(kind=Kind.MODERATION).aexists())

    async def test_an_outsider_kicking_is_404(self):
        await User.objects.acreate(username="eve")
        response = await self.kick("eve", "cy")
        self.assertEqual((response.status_code, response.json()["error"]), (404, "not_found"))
        self.assertTrue(await Membership.objects.filter(room=self.room, user__username="cy").aexists())

    async def test_kicking_someone_who_is_no_member_is_404(self):
        await User.objects.acreate(username="eve")
        response = await self.kick("ada", "eve")
        self.assertEqual((response.status_code, response.json()["error"]), (404, "not_found"))

    async def test_kicking_from_a_public_room_takes_them_off_its_member_list(self):
        room = await Room.objects.acreate(name="open")
        dan = await User.objects.aget(username="dan")
        ada = await User.objects.aget(username="ada")
        await Membership.objects.acreate(room=room, user=ada, role=Role.OWNER)
        await Membership.objects.acreate(room=room, user=dan, role=Role.MODERATOR)
        await self.async_client.aforce_login(ada)
        response = await self.async_client.delete("/api/rooms/open/members/dan/")
        self.assertEqual(response.status_code, 204)
        self.assertFalse(await Membership.objects.filter(room=room, user=dan).aexists())


class InviteApiTests(ApiTestCase):
    def setUp(self):
        self.room = room_with("team", ada=Role.OWNER, bob=Role.MODERATOR, cy=Role.MEMBER)

    def test_an_owner_creates_an_invite_link_with_its_expiry(self):
        response = self.post(signed_in("ada"), "/api/rooms/team/invites/")
        self.assertEqual(response.status_code, 201)
        body = response.json()
        self.assertRegex(body["url"], r"^/invite/[A-Za-z0-9_-]{43}/$")
        invite = Invite.objects.get()
        # Given to the millisecond.
        self.assertLess(abs(datetime.fromisoformat(body["expires_at"]) - invite.expires_at), timedelta(milliseconds=1))

    def test_only_the_tokens_hash_is_stored(self):
        token = self.post(signed_in("ada"), "/api/rooms/team/invites/").json()["url"].split("/")[2]
        self.assertEqual(Invite.objects.get().token_hash, hashlib.sha256(token.encode()).hexdigest())

    def test_a_moderator_creates_an_invite_link(self):
        self.assertEqual(self.post(signed_in("bob"), "/api/rooms/team/invites/").status_code, 201)

    @override_settings(CHAT_INVITE_SECONDS=60)
    def test_an_invite_expires_after_chat_invite_seconds(self):
        self.post(signed_in("ada"), "/api/rooms/team/invites/")
        invite = Invite.objects.get()
        self.assertEqual((invite.expires_at - invite.created).total_seconds(), 60)

    def test_a_member_creating_an_invite_is_403(self):
        self.assertError(self.post(signed_in("cy"), "/api/rooms/team/invites/"), 403, "forbidden")
        self.assertFalse(Invite.objects.exists())

    def test_an_outsider_creating_an_invite_is_404(self):
        self.assertError(self.post(signed_in("eve"), "/api/rooms/team/invites/"), 404, "not_found")
        self.assertFalse(Invite.objects.exists())

    def test_a_guest_creating_an_invite_is_404(self):
        self.assertError(self.post(self.client, "/api/rooms/team/invites/"), 404, "not_found")

    def test_revoking_marks_every_open_invite_revoked(self):
        ada = signed_in("ada")
        for _ in range(2):
            self.post(ada, "/api/rooms/team/invites/")
        self.assertEqual(ada.delete("/api/rooms/team/invites/").status_code, 204)
        self.assertFalse(Invite.objects.filter(revoked_at__isnull=True).exists())

    def test_a_revoked_link_no_longer_works(self):
        ada = signed_in("ada")
        url = self.post(ada, "/api/rooms/team/invites/").json()["url"]
        ada.delete("/api/rooms/team/invites/")
        self.assertEqual(signed_in("dan").get(url).status_code, 404)

    def test_revoking_leaves_other_rooms_invites_open(self):
        room_with("other", ada=Role.OWNER)
        ada = signed_in("ada")
        self.post(ada, "/api/rooms/other/invites/")
        ada.delete("/api/rooms/team/invites/")
        self.assertIsNone(Invite.objects.get(room__name="other").revoked_at)

    def test_a_member_revoking_is_403(self):
        self.assertError(signed_in("cy").delete("/api/rooms/team/invites/"), 403, "forbidden")

    def test_an_outsider_revoking_is_404(self):
        self.assertError(signed_in("eve").delete("/api/rooms/team/invites/"), 404, "not_found")

    def test_a_direct_room_has_no_invites(self):
        room_with("dm-1-2", RoomKind.DIRECT, ada=Role.MEMBER, dan=Role.MEMBER)
        self.assertError(self.post(signed_in("ada"), "/api/rooms/dm-1-2/invites/"), 400, "direct_room")


class OutsiderTests(ApiTestCase):
    """Every endpoint answers a private room's outsiders exactly as it answers a room that does not exist."""

    def setUp(self):
        room_with("team", ada=Role.OWNER, cy=Role.MEMBER)
        make_user("eve")
        banned = make_user("ban")
        room = Room.objects.get(name="team")
        Membership.objects.create(room=room, user=banned, role=Role.MEMBER)
        Restriction.objects.create(room=room, action=Action.BAN, who=f"user:{banned.pk}", by="ada")

    def answers(self, client: Client, room: str) -> list[tuple[int, Any]]:
        calls = [
            client.get(f"/api/rooms/{room}/members/"),
            self.post(client, f"/api/rooms/{room}/members/", {"username": "eve"}),
            client.delete(f"/api/rooms/{room}/members/cy/"),
            self.post(client, f"/api/rooms/{room}/invites/"),
            client.delete(f"/api/rooms/{room}/invites/"),
        ]
        return [(response.status_code, response.json()) for response in calls]

    def test_a_signed_in_outsider_gets_404_from_every_endpoint(self):
        eve = signed_in("eve")
        self.assertEqual(self.answers(eve, "team"), self.answers(eve, "nothing"))
        self.assertEqual({status for status, _ in self.answers(eve, "team")}, {404})

    def test_a_guest_gets_404_from_every_endpoint(self):
        self.assertEqual({status for status, _ in self.answers(self.client, "team")}, {404})

    def test_a_banned_member_gets_404_from_every_endpoint(self):
        self.assertEqual({status for status, _ in self.answers(signed_in("ban"), "team")}, {404})

    def test_nothing_an_outsider_sends_changes_the_room(self):
        self.answers(signed_in("eve"), "team")
        self.assertEqual(Membership.objects.count(), 3)
        self.assertFalse(Invite.objects.exists())
