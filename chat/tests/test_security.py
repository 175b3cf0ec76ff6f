"""No way into a private room for anyone outside it, whatever they try.

Every path is tried as each kind of outsider: a signed-in non-member, a guest, a member who was kicked, a member
who was banned, a member of another private room. The room holds a message with a marker that must appear in no
answer to any of them. The same probes run in-process (the suite's database, SQLite in `make test`) and against
two real server processes on PostgreSQL and Redis (`make test-services`), where a kick on one process must shut
the person out on the other.

Also here: invite tokens forged, tampered with, expired, revoked and reused after a kick; CSRF on every write;
role escalation.
"""

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client, TransactionTestCase
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat import membership, services
from chat.identity import Identity
from chat.models import Invite, Membership, Message, Role, Room, RoomKind
from chat.rooms import direct_room_name
from chatsite.asgi import application

from .servers import Server, collect_static, require_redis_and_postgres

SECRET = "classified-4242"
ROOM = "vault"
OTHER = "elsewhere"
OUTSIDERS = ("eve", "guest", "kit", "bo", "oscar")
CSRF_TOKEN = "a" * 32  # any 32-character alphanumeric secret is a valid CSRF cookie; the header must match it


@dataclass
class Answer:
    status: int
    text: str


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def invite_url(room: Room, by: Identity) -> str:
    token, _ = membership.invite_create(room, by)
    return f"/invite/{token}/"


def build_world() -> dict[str, str]:
    """The private room and its people; the session cookie of each person (guests have none)."""
    users = get_user_model().objects
    people = {name: users.create_user(name) for name in ("olga", "max", "mia", "eve", "kit", "bo", "oscar")}
    vault = Room.objects.create(name=ROOM, kind=RoomKind.PRIVATE)
    for name, role in (("olga", Role.OWNER), ("max", Role.MODERATOR), ("mia", Role.MEMBER)):
        Membership.objects.create(room=vault, user=people[name], role=role)
    for name in ("kit", "bo"):
        Membership.objects.create(room=vault, user=people[name], role=Role.MEMBER)
    elsewhere = Room.objects.create(name=OTHER, kind=RoomKind.PRIVATE)
    Membership.objects.create(room=elsewhere, user=people["oscar"], role=Role.OWNER)
    olga = Identity(name="olga", user=people["olga"])
    # Mentions an outsider too: their Mentions page must not show it.
    services.message_create(room=vault, author="olga", user=people["olga"], body=f"{SECRET} for @eve and @kit")
    # An invite made before kit's kick: it must not let kit back in.
    url = invite_url(vault, olga)
    services.entry_create(services.moderation(room=vault, identity=olga, action="kick", subject="kit"))
    services.entry_create(services.moderation(room=vault, identity=olga, action="ban", subject="bo"))
    cookies = {name: session_cookie(user) for name, user in people.items()}
    cookies["kit-invite"] = url
    direct = Room.objects.create(name=direct_room_name(people["olga"].pk, people["mia"].pk), kind=RoomKind.DIRECT)
    for name in ("olga", "mia"):
        Membership.objects.create(room=direct, user=people[name], role=Role.MEMBER)
    services.message_create(room=direct, author="olga", user=people["olga"], body=f"{SECRET} between us")
    cookies["direct"] = direct.name
    return cookies


# The HTTP probes: (method, path, JSON body). Every one must answer without the secret; the status each must have
# is in EXPECTED_HTTP.
HTTP_PROBES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", f"/chat/{ROOM}/", None),
    ("GET", "/", None),
    ("GET", "/api/rooms/", None),
    ("GET", "/mentions/", None),
    ("GET", f"/api/rooms/{ROOM}/members/", None),
    ("POST", f"/api/rooms/{ROOM}/members/", {"username": "eve", "role": "member"}),
    ("POST", f"/api/rooms/{ROOM}/members/", {"username": "eve", "role": "moderator"}),
    ("DELETE", f"/api/rooms/{ROOM}/members/mia/", None),
    ("POST", f"/api/rooms/{ROOM}/invites/", None),
    ("DELETE", f"/api/rooms/{ROOM}/invites/", None),
    ("POST", "/api/rooms/", {"name": ROOM, "kind": "public"}),
]


def expected_status(method: str, path: str, person: str) -> set[int]:
    """404 for anything of the room (as if it did not exist); the lobby and the feeds answer, without it."""
    if method == "POST" and path == "/api/rooms/":
        return {409}  # the name is taken: names are unique, and the asker gave it
    if path in ("/", "/api/rooms/", "/mentions/"):
        return {200}
    return {404}


class Probes:
    """What every transport answers: one HTTP request, or the first thing a socket gets."""

    cookies: dict[str, str]

    def http(self, method: str, path: str, person: str, body: dict[str, Any] | None = None) -> Answer:
        raise NotImplementedError

    async def socket(self, path: str, person: str) -> tuple[int | None, str]:
        """The close code the socket got before any frame (None if it got a frame), and all text it got."""
        raise NotImplementedError


class InProcess(Probes):
    def __init__(self, cookies: dict[str, str]) -> None:
        self.cookies = cookies

    def client(self, person: str, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        if person in self.cookies and person != "guest":
            client.cookies["sessionid"] = self.cookies[person]
        return client

    def http(self, method: str, path: str, person: str, body: dict[str, Any] | None = None) -> Answer:
        client = self.client(person)
        data = json.dumps(body) if body is not None else None
        response = client.generic(method, path, data=data or "", content_type="application/json")
        return Answer(response.status_code, response.content.decode())

    async def socket(self, path: str, person: str) -> tuple[int | None, str]:
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if person != "guest":
            headers.append((b"cookie", f"sessionid={self.cookies[person]}".encode()))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        try:
            await communicator.connect(timeout=3)
            output = await communicator.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                return output["code"], ""
            return None, output.get("text", "")
        finally:
            await communicator.disconnect()


class OverTheNetwork(Probes):
    """Two real server processes; requests alternate between them."""

    def __init__(self, cookies: dict[str, str], servers: list[Server]) -> None:
        self.cookies = cookies
        self.servers = servers
        self.turn = 0

    def base(self) -> str:
        self.turn += 1
        return self.servers[self.turn % len(self.servers)].url

    def headers(self, person: str, *, csrf: bool = True) -> dict[str, str]:
        cookie = f"csrftoken={CSRF_TOKEN}"
        if person != "guest":
            cookie += f"; sessionid={self.cookies[person]}"
        headers = {"Cookie": cookie, "Content-Type": "application/json"}
        if csrf:
            headers["X-CSRFToken"] = CSRF_TOKEN
        return headers

    def http(self, method: str, path: str, person: str, body: dict[str, Any] | None = None) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.base() + path, data=data, method=method, headers=self.headers(person)
        )
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read().decode())

    async def socket(self, path: str, person: str) -> tuple[int | None, str]:
        base = self.base()
        headers = {} if person == "guest" else {"Cookie": f"sessionid={self.cookies[person]}"}
        try:
            url = base.replace("http", "ws", 1) + path
            async with connect(url, origin=base, additional_headers=headers) as ws:  # type: ignore[arg-type]
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=5)
                except ConnectionClosed:
                    return ws.close_code, ""
                return None, str(text)
        except InvalidStatus as exc:
            return exc.response.status_code, ""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class OutsiderChecks:
    """The probes, for a TestCase that sets ``self.probes`` in setUp."""

    probes: Probes

    def assertNoSecret(self, text: str, what: str) -> None:
        self.assertNotIn(SECRET, text, what)  # type: ignore[attr-defined]

    def test_no_http_path_shows_an_outsider_anything_of_the_room(self) -> None:
        for person in OUTSIDERS:
            for method, path, body in HTTP_PROBES:
                with self.subTest(person=person, method=method, path=path, body=body):  # type: ignore[attr-defined]
                    answer = self.probes.http(method, path, person, body)
                    self.assertNoSecret(answer.text, f"{method} {path}")
                    self.assertIn(answer.status, expected_status(method, path, person), answer.text[:300])  # type: ignore[attr-defined]
                    if path in ("/", "/api/rooms/"):
                        self.assertNotIn(f'"{ROOM}"', answer.text)  # type: ignore[attr-defined]
                        self.assertNotIn(f"#{ROOM}", answer.text)  # type: ignore[attr-defined]

    def test_nothing_an_outsider_tried_changed_the_room(self) -> None:
        for person in OUTSIDERS:
            for method, path, body in HTTP_PROBES:
                self.probes.http(method, path, person, body)
        members = sorted(Membership.objects.filter(room__name=ROOM).values_list("user__username", "role"))
        # bo is banned, so still a member who cannot read: a ban outlives leaving and coming back.
        self.assertEqual(members, [("bo", "member"), ("max", "moderator"), ("mia", "member"), ("olga", "owner")])  # type: ignore[attr-defined]
        self.assertFalse(Invite.objects.filter(room__name=ROOM, created_by__username__in=OUTSIDERS).exists())  # type: ignore[attr-defined]

    def test_the_direct_room_of_two_others_is_closed_to_everyone_else(self) -> None:
        direct = self.probes.cookies["direct"]
        for person in (*OUTSIDERS, "max"):
            with self.subTest(person=person):  # type: ignore[attr-defined]
                answer = self.probes.http("GET", f"/chat/{direct}/", person)
                self.assertEqual(answer.status, 404)  # type: ignore[attr-defined]
                self.assertNoSecret(answer.text, "the direct room's page")

    def test_a_kicked_member_cannot_come_back_through_an_invite_made_before(self) -> None:
        answer = self.probes.http("GET", self.probes.cookies["kit-invite"], "kit")
        self.assertEqual(answer.status, 404)  # type: ignore[attr-defined]
        self.assertFalse(Membership.objects.filter(room__name=ROOM, user__username="kit").exists())  # type: ignore[attr-defined]

    async def test_every_socket_path_is_closed_with_4403_before_any_frame(self) -> None:
        direct = self.probes.cookies["direct"]
        paths = [f"/ws/chat/{ROOM}/", f"/ws/chat/{ROOM}/?after=0", f"/ws/chat/{direct}/", f"/ws/chat/{direct}/?after=0"]
        for person in OUTSIDERS:
            for path in paths:
                code, text = await self.probes.socket(path, person)
                self.assertEqual(code, 4403, f"{person} {path}: {text[:200]}")  # type: ignore[attr-defined]
                self.assertNoSecret(text, f"{person} {path}")


class OutsidersInProcessTests(OutsiderChecks, TransactionTestCase):
    def setUp(self) -> None:
        self.probes = InProcess(build_world())


class OutsidersOnTwoProcessesTests(OutsiderChecks, TransactionTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_redis_and_postgres()
        collect_static()  # the pages are loaded from servers with debug off

    def setUp(self) -> None:
        cookies = build_world()
        servers = [Server().start(), Server().start()]
        for server in servers:
            self.addCleanup(server.stop)
        self.probes = OverTheNetwork(cookies, servers)

    async def test_a_member_kicked_on_one_process_is_refused_on_the_other(self) -> None:
        @sync_to_async
        def kick_mia() -> None:
            olga = Identity(name="olga", user=get_user_model().objects.get(username="olga"))
            vault = Room.objects.get(name=ROOM)
            services.entry_create(services.moderation(room=vault, identity=olga, action="kick", subject="mia"))

        code, _ = await self.probes.socket(f"/ws/chat/{ROOM}/", "mia")
        self.assertIsNone(code)  # a member: let in
        await kick_mia()
        for _ in range(2):  # one attempt on each process
            code, text = await self.probes.socket(f"/ws/chat/{ROOM}/?after=0", "mia")
            self.assertEqual(code, 4403)
            self.assertNoSecret(text, "after the kick")


class InviteTokenTests(TransactionTestCase):
    def setUp(self) -> None:
        self.cookies = build_world()
        self.probes = InProcess(self.cookies)
        self.olga = Identity(name="olga", user=get_user_model().objects.get(username="olga"))
        self.vault = Room.objects.get(name=ROOM)

    def use(self, url: str, person: str = "eve") -> Answer:
        return self.probes.http("GET", url, person)

    def assertRefused(self, url: str) -> None:
        answer = self.use(url)
        self.assertEqual(answer.status, 404)
        self.assertNoSecret(answer.text)
        self.assertFalse(Membership.objects.filter(room=self.vault, user__username="eve").exists())

    def assertNoSecret(self, text: str) -> None:
        self.assertNotIn(SECRET, text)

    def test_a_good_invite_makes_a_member_and_leads_to_the_room(self) -> None:
        answer = self.probes.client("eve").get(invite_url(self.vault, self.olga))
        self.assertRedirects(answer, f"/chat/{ROOM}/", fetch_redirect_response=False)
        self.assertTrue(Membership.objects.filter(room=self.vault, user__username="eve").exists())

    def test_a_forged_token_is_refused(self) -> None:
        self.assertRefused("/invite/" + "x" * 32 + "/")

    def test_a_tampered_token_is_refused(self) -> None:
        url = invite_url(self.vault, self.olga)
        token = url.split("/")[2]
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        self.assertRefused(f"/invite/{tampered}/")

    def test_an_expired_token_is_refused(self) -> None:
        url = invite_url(self.vault, self.olga)
        Invite.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        self.assertRefused(url)

    def test_a_revoked_token_is_refused(self) -> None:
        url = invite_url(self.vault, self.olga)
        membership.invite_revoke_all(self.vault, self.olga)
        self.assertRefused(url)

    def test_a_guest_is_sent_to_log_in_first(self) -> None:
        url = invite_url(self.vault, self.olga)
        answer = self.probes.client("guest").get(url)
        self.assertEqual(answer.status_code, 302)
        self.assertIn(f"next={url}", answer["Location"])


class CsrfTests(TransactionTestCase):
    """A write with the session cookie but without the CSRF token is refused and changes nothing."""

    WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/rooms/", {"name": "made-by-csrf", "kind": "private"}),
        ("POST", f"/api/rooms/{ROOM}/members/", {"username": "eve", "role": "member"}),
        ("DELETE", f"/api/rooms/{ROOM}/members/mia/", None),
        ("POST", f"/api/rooms/{ROOM}/invites/", None),
        ("DELETE", f"/api/rooms/{ROOM}/invites/", None),
    ]

    def test_every_write_without_the_token_is_403_and_stores_nothing(self) -> None:
        probes = InProcess(build_world())
        before = (Membership.objects.count(), Invite.objects.count(), Room.objects.count(), Message.objects.count())
        for method, path, body in self.WRITES:
            with self.subTest(method=method, path=path):
                client = probes.client("olga", csrf=True)
                data = json.dumps(body) if body is not None else ""
                response = client.generic(method, path, data=data, content_type="application/json")
                self.assertEqual(response.status_code, 403, response.content[:200])
        after = (Membership.objects.count(), Invite.objects.count(), Room.objects.count(), Message.objects.count())
        self.assertEqual(after, before)


class EscalationTests(TransactionTestCase):
    def setUp(self) -> None:
        self.probes = InProcess(build_world())

    def test_a_moderator_cannot_make_a_moderator(self) -> None:
        answer = self.probes.http(
            "POST", f"/api/rooms/{ROOM}/members/", "max", {"username": "eve", "role": "moderator"}
        )
        self.assertEqual(answer.status, 403)
        self.assertFalse(Membership.objects.filter(user__username="eve", room__name=ROOM).exists())

    def test_a_moderator_cannot_promote_a_member(self) -> None:
        answer = self.probes.http(
            "POST", f"/api/rooms/{ROOM}/members/", "max", {"username": "mia", "role": "moderator"}
        )
        self.assertEqual(answer.status, 403)
        self.assertEqual(Membership.objects.get(user__username="mia", room__name=ROOM).role, Role.MEMBER)

    def test_a_member_cannot_kick(self) -> None:
        answer = self.probes.http("DELETE", f"/api/rooms/{ROOM}/members/max/", "mia")
        self.assertEqual(answer.status, 403)
        self.assertTrue(Membership.objects.filter(user__username="max", room__name=ROOM).exists())

    def test_a_member_cannot_make_invites(self) -> None:
        self.assertEqual(self.probes.http("POST", f"/api/rooms/{ROOM}/invites/", "mia").status, 403)

    def test_a_guest_cannot_create_a_private_room(self) -> None:
        answer = self.probes.http("POST", "/api/rooms/", "guest", {"name": "guests-only", "kind": "private"})
        self.assertEqual(answer.status, 403)
        self.assertFalse(Room.objects.filter(name="guests-only").exists())

    async def test_a_member_cannot_moderate_over_the_socket(self) -> None:
        headers = [
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"cookie", f"sessionid={self.probes.cookies['mia']}".encode()),
        ]
        communicator = WebsocketCommunicator(application, f"/ws/chat/{ROOM}/", headers=headers)
        try:
            await communicator.connect(timeout=3)
            await communicator.receive_json_from(timeout=3)  # hello
            await communicator.send_json_to({"type": "moderate", "action": "kick", "user": "max"})
            while (frame := await communicator.receive_json_from(timeout=3))["type"] != "error":
                pass
            self.assertEqual(frame["code"], "forbidden")
        finally:
            await communicator.disconnect()
        self.assertTrue(await sync_to_async(Membership.objects.filter(user__username="max").exists)())
