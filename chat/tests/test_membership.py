"""chat.membership: the rules behind the members API and pages, called directly, and the races they must survive."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from chat import membership, protocol
from chat.exceptions import ClientError
from chat.identity import Identity
from chat.models import Action, Invite, Membership, Report, Restriction, Role, Room, RoomKind
from chat.rooms import direct_room_name
from chat.services import entry_create, message_create, moderation

from .helpers import run_in_threads


def identity(user: User) -> Identity:
    return Identity(name=user.get_username(), user=user)


GUEST = Identity(name="guest-1234", user=None, guest_id="g1")


def person(username: str, **extra: object) -> User:
    return User.objects.create_user(username, **extra)  # type: ignore[arg-type]


def join(room: Room, user: User, role: str = Role.MEMBER) -> User:
    Membership.objects.create(room=room, user=user, role=role)
    return user


class MembershipTestCase(TestCase):
    def assertRefused(self, code: str, call, *args, **kwargs) -> ClientError:
        with self.assertRaises(ClientError) as caught:
            call(*args, **kwargs)
        self.assertEqual(caught.exception.code, code)
        return caught.exception


class RoomCreateTests(MembershipTestCase):
    def test_the_name_is_kept_lowercase(self):
        self.assertEqual(membership.room_create(identity(person("ada")), name="Team", kind="public").name, "team")

    def test_a_signed_in_creator_is_the_only_owner(self):
        ada = person("ada")
        room = membership.room_create(identity(ada), name="team", kind="private")
        self.assertEqual(list(Membership.objects.filter(room=room).values_list("user", "role")), [(ada.pk, "owner")])

    def test_a_guests_room_has_no_members(self):
        membership.room_create(GUEST, name="open", kind="public")
        self.assertFalse(Membership.objects.exists())

    def test_a_guest_may_not_create_a_private_room(self):
        self.assertRefused(protocol.FORBIDDEN, membership.room_create, GUEST, name="team", kind="private")

    def test_a_direct_kind_is_refused(self):
        self.assertRefused(membership.BAD_ROOM, membership.room_create, GUEST, name="x", kind=RoomKind.DIRECT)

    def test_a_taken_name_leaves_the_room_and_its_owner_as_they_were(self):
        ada, eve = person("ada"), person("eve")
        room = membership.room_create(identity(ada), name="team", kind="private")
        self.assertRefused(membership.NAME_TAKEN, membership.room_create, identity(eve), name="team", kind="public")
        self.assertEqual(list(Membership.objects.values_list("room", "user")), [(room.pk, ada.pk)])


class RoomListTests(MembershipTestCase):
    def setUp(self):
        self.ada, self.bob = person("ada"), person("bob")
        now = timezone.now()
        Room.objects.create(name="old", last_activity=now - timedelta(days=1))
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE, last_activity=now)
        join(self.team, self.ada, Role.OWNER)

    def names(self, who: Identity | None) -> list[str]:
        return [room.name for room in membership.room_list(who)]

    def test_a_member_sees_their_private_room_with_their_role(self):
        listed = {room.name: room for room in membership.room_list(identity(self.ada))}
        self.assertEqual((listed["team"].kind, listed["team"].role, listed["old"].role), ("private", "owner", None))

    def test_an_outsider_and_a_guest_see_only_public_rooms(self):
        self.assertEqual((self.names(identity(self.bob)), self.names(GUEST)), (["old"], ["old"]))

    def test_nobody_at_all_sees_nothing(self):
        self.assertEqual(self.names(None), [])

    def test_a_direct_room_carries_the_other_persons_name_for_each_of_them(self):
        dm = membership.direct_room(identity(self.ada), "bob")
        for me, other in [(self.ada, "bob"), (self.bob, "ada")]:
            listed = {room.name: room for room in membership.room_list(identity(me))}
            self.assertEqual(listed[dm.name].other, other)

    def test_rooms_that_mention_the_person_come_first(self):
        message_create(room=Room.objects.get(name="old"), author="bob", body="hi @ada")
        self.assertEqual(self.names(identity(self.ada))[0], "old")

    def test_a_room_links_to_its_page(self):
        self.assertEqual(membership.room_list(GUEST)[0].url, "/chat/old/")


class ReadableRoomTests(MembershipTestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)

    def test_a_private_room_and_a_missing_one_are_refused_alike(self):
        eve = identity(person("eve"))
        private = self.assertRefused(protocol.NOT_FOUND, membership.readable_room, "team", eve)
        missing = self.assertRefused(protocol.NOT_FOUND, membership.readable_room, "nothing", eve)
        self.assertEqual(private.detail, missing.detail)

    def test_a_bad_name_is_not_found_too(self):
        self.assertRefused(protocol.NOT_FOUND, membership.readable_room, "bad.name", GUEST)

    def test_it_never_makes_a_room(self):
        self.assertRefused(protocol.NOT_FOUND, membership.readable_room, "new", GUEST)
        self.assertFalse(Room.objects.filter(name="new").exists())

    def test_a_member_gets_the_room_and_their_rights(self):
        ada = join(self.team, person("ada"), Role.MODERATOR)
        room, rights = membership.readable_room("TEAM", identity(ada))
        self.assertEqual((room, rights.read, rights.moderate), (self.team, True, True))


class MemberListTests(MembershipTestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.ada = join(self.team, person("ada"), Role.OWNER)
        self.zed = join(self.team, person("zed"), Role.MODERATOR)
        self.bea = join(self.team, person("bea"))
        Report.objects.create(room=self.team, target_seq=1, reason="rude", by="bea", who="user:x")
        Report.objects.create(room=Room.objects.create(name="other"), target_seq=1, by="x", who="user:x")

    def listing(self, user: User) -> membership.Members:
        room, rights = membership.readable_room("team", identity(user))
        return membership.member_list(room, identity(user), rights)

    def test_owners_then_moderators_then_members_each_by_name(self):
        self.assertEqual([m.username for m in self.listing(self.bea).members], ["ada", "zed", "bea"])

    def test_an_owner_may_remove_everyone_but_themselves(self):
        self.assertEqual(
            {m.username: m.removable for m in self.listing(self.ada).members}, {"ada": False, "zed": True, "bea": True}
        )

    def test_a_moderator_sees_only_this_rooms_reports(self):
        self.assertEqual([r.reason for r in self.listing(self.zed).reports or []], ["rude"])

    def test_staff_may_give_either_role_and_remove_owners(self):
        listed = self.listing(person("root", is_staff=True))
        self.assertEqual((listed.roles, all(m.removable for m in listed.members)), (["member", "moderator"], True))

    def test_a_banned_owner_is_refused_before_any_listing(self):
        Restriction.objects.create(room=self.team, action=Action.BAN, who=f"user:{self.ada.pk}", by="root")
        self.assertRefused(protocol.NOT_FOUND, membership.readable_room, "team", identity(self.ada))


class MemberAddTests(MembershipTestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.ada = join(self.team, person("ada"), Role.OWNER)
        self.dan = person("dan")

    def test_the_membership_is_made_with_the_role(self):
        made = membership.member_add(self.team, identity(self.ada), username="dan", role="moderator")
        self.assertEqual((made.user, made.role), (self.dan, Role.MODERATOR))

    def test_adding_someone_again_keeps_one_membership(self):
        for role in ["member", "member"]:
            membership.member_add(self.team, identity(self.ada), username="dan", role=role)
        self.assertEqual(Membership.objects.filter(user=self.dan).count(), 1)

    def test_an_owner_cannot_change_their_own_role(self):
        self.assertRefused(
            protocol.FORBIDDEN, membership.member_add, self.team, identity(self.ada), username="ada", role="member"
        )

    def test_an_inactive_user_is_nobody(self):
        person("gone", is_active=False)
        self.assertRefused(
            protocol.NOT_FOUND, membership.member_add, self.team, identity(self.ada), username="gone", role="member"
        )

    def test_a_guest_adds_nobody_to_a_public_room(self):
        room = Room.objects.create(name="open")
        self.assertRefused(protocol.FORBIDDEN, membership.member_add, room, GUEST, username="dan", role="member")

    def test_a_public_rooms_owner_appoints_a_moderator_who_then_moderates(self):
        room = Room.objects.create(name="open")
        join(room, self.ada, Role.OWNER)
        membership.member_add(room, identity(self.ada), username="dan", role="moderator")
        self.assertTrue(membership.readable_room("open", identity(self.dan))[1].moderate)


class LeaveTests(MembershipTestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.ada = join(self.team, person("ada"), Role.OWNER)

    def test_is_self_is_about_a_signed_in_persons_own_username(self):
        self.assertEqual(
            (membership.is_self(identity(self.ada), "ada"), membership.is_self(identity(self.ada), "ADA")),
            (True, False),
        )
        self.assertFalse(membership.is_self(GUEST, GUEST.name))

    def test_the_last_owner_stays(self):
        self.assertRefused(membership.LAST_OWNER, membership.member_leave, self.team, identity(self.ada))
        self.assertTrue(Membership.objects.filter(user=self.ada).exists())

    def test_someone_who_is_no_member_is_refused(self):
        self.assertRefused(protocol.NOT_FOUND, membership.member_leave, self.team, identity(person("eve")))


class ForgetTests(MembershipTestCase):
    def test_a_public_rooms_kicked_member_leaves_its_list(self):
        room = Room.objects.create(name="open")
        join(room, person("dan"), Role.MODERATOR)
        membership.forget(room, "dan")
        self.assertFalse(Membership.objects.exists())

    def test_a_private_rooms_membership_is_the_kicks_to_end_not_forgets(self):
        room = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        join(room, person("dan"))
        membership.forget(room, "dan")
        self.assertTrue(Membership.objects.exists())


class InviteTests(MembershipTestCase):
    def setUp(self):
        self.team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        self.ada = join(self.team, person("ada"), Role.OWNER)
        self.dan = person("dan")
        self.token, self.invite = membership.invite_create(self.team, identity(self.ada))

    def test_each_invite_has_its_own_token(self):
        other, _ = membership.invite_create(self.team, identity(self.ada))
        self.assertNotEqual(other, self.token)

    def test_the_invite_records_who_made_it(self):
        self.assertEqual(self.invite.created_by, self.ada)

    def test_accepting_makes_a_member(self):
        self.assertEqual(membership.invite_accept(self.token, identity(self.dan)), self.team)
        self.assertEqual(Membership.objects.get(user=self.dan).role, Role.MEMBER)

    def test_a_guest_cannot_accept(self):
        self.assertRefused(protocol.FORBIDDEN, membership.invite_accept, self.token, GUEST)

    def test_an_invite_at_its_expiry_is_gone(self):
        Invite.objects.filter(pk=self.invite.pk).update(expires_at=timezone.now())
        self.assertRefused(protocol.NOT_FOUND, membership.invite_accept, self.token, identity(self.dan))

    def test_revoking_counts_only_open_invites(self):
        Invite.objects.create(room=self.team, token_hash="e" * 64, expires_at=timezone.now() - timedelta(days=1))
        self.assertEqual(membership.invite_revoke_all(self.team, identity(self.ada)), 1)
        self.assertEqual(membership.invite_revoke_all(self.team, identity(self.ada)), 0)

    def test_a_kick_of_someone_else_does_not_spoil_the_link(self):
        cy = join(self.team, person("cy"))
        entry_create(moderation(room=self.team, identity=identity(self.ada), action=Action.KICK, subject=cy.username))
        self.assertEqual(membership.invite_accept(self.token, identity(self.dan)), self.team)

    def test_a_kick_from_another_room_does_not_spoil_the_link(self):
        other = Room.objects.create(name="other")
        join(other, self.ada, Role.OWNER)
        entry_create(moderation(room=other, identity=identity(self.ada), action=Action.KICK, subject="dan"))
        self.assertEqual(membership.invite_accept(self.token, identity(self.dan)), self.team)

    def test_a_lifted_ban_still_spoils_links_made_before_it(self):
        ada = identity(self.ada)
        entry_create(moderation(room=self.team, identity=ada, action=Action.BAN, subject="dan"))
        entry_create(moderation(room=self.team, identity=ada, action=Action.UNBAN, subject="dan"))
        self.assertRefused(protocol.NOT_FOUND, membership.invite_accept, self.token, identity(self.dan))
        token, _ = membership.invite_create(self.team, ada)
        self.assertEqual(membership.invite_accept(token, identity(self.dan)), self.team)

    def test_a_link_is_dead_once_its_maker_no_longer_moderates_the_room(self):
        mo = join(self.team, person("mo"), Role.MODERATOR)
        token, _ = membership.invite_create(self.team, identity(mo))
        Membership.objects.filter(user=mo).update(role=Role.MEMBER)
        self.assertRefused(protocol.NOT_FOUND, membership.invite_accept, token, identity(self.dan))
        self.assertFalse(Membership.objects.filter(user=self.dan).exists())

    def test_a_username_no_database_could_look_up_is_a_bad_frame_not_an_error(self):
        for name in ("\ud800", "a\u0000b", ""):
            with self.subTest(name=name):
                self.assertRefused(
                    protocol.BAD_FRAME,
                    membership.member_add,
                    self.team,
                    identity(self.ada),
                    username=name,
                    role="member",
                )

    def test_a_member_may_not_invite(self):
        cy = join(self.team, person("cy"))
        self.assertRefused(protocol.FORBIDDEN, membership.invite_create, self.team, identity(cy))

    def test_a_direct_room_has_no_invites(self):
        dm = membership.direct_room(identity(self.ada), "dan")
        self.assertRefused(membership.DIRECT_ROOM, membership.invite_create, dm, identity(self.ada))

    def test_an_invite_to_a_room_that_became_direct_is_gone(self):
        Room.objects.filter(pk=self.team.pk).update(kind=RoomKind.DIRECT)
        self.assertRefused(protocol.NOT_FOUND, membership.invite_accept, self.token, identity(self.dan))


class DirectRoomTests(MembershipTestCase):
    def setUp(self):
        self.ada, self.bob = person("ada"), person("bob")

    def test_the_room_is_named_after_the_pair_and_is_direct(self):
        room = membership.direct_room(identity(self.bob), "ada")
        self.assertEqual((room.name, room.kind), (direct_room_name(self.ada.pk, self.bob.pk), RoomKind.DIRECT))

    def test_a_lost_membership_comes_back_when_it_is_opened(self):
        room = membership.direct_room(identity(self.ada), "bob")
        Membership.objects.filter(user=self.bob).delete()
        membership.direct_room(identity(self.ada), "bob")
        self.assertEqual(Membership.objects.filter(room=room).count(), 2)

    def test_the_direct_partner_is_the_other_person(self):
        room = membership.direct_room(identity(self.ada), "bob")
        self.assertEqual(membership.direct_partner(room, identity(self.bob)), "ada")

    def test_a_room_that_is_not_direct_has_no_partner(self):
        self.assertIsNone(membership.direct_partner(Room.objects.create(name="open"), identity(self.ada)))

    def test_a_guest_has_no_direct_rooms(self):
        self.assertRefused(protocol.FORBIDDEN, membership.direct_room, GUEST, "ada")

    def test_an_inactive_user_is_nobody(self):
        person("gone", is_active=False)
        self.assertRefused(protocol.NOT_FOUND, membership.direct_room, identity(self.ada), "gone")

    def test_a_room_of_that_name_that_is_not_direct_is_never_used(self):
        Room.objects.create(name=direct_room_name(self.ada.pk, self.bob.pk))  # made by hand, say in the admin
        self.assertRefused(protocol.NOT_FOUND, membership.direct_room, identity(self.ada), "bob")
        self.assertFalse(Membership.objects.exists())

    def test_nobody_may_change_a_direct_rooms_members(self):
        room = membership.direct_room(identity(self.ada), "bob")
        person("eve")
        self.assertRefused(
            membership.DIRECT_ROOM, membership.member_add, room, identity(self.ada), username="eve", role="member"
        )
        self.assertRefused(membership.DIRECT_ROOM, membership.member_leave, room, identity(self.ada))


class RaceTests(TransactionTestCase):
    """What two requests at once must leave behind, each on its own database connection."""

    available_apps = ["chat", "django.contrib.auth", "django.contrib.contenttypes"]

    def test_two_people_creating_one_name_at_once_make_one_room_with_one_owner(self):
        users = [person("ada"), person("bob")]

        def create(index: int) -> str:
            try:
                membership.room_create(identity(users[index]), name="team", kind="private")
            except ClientError as exc:
                return exc.code
            return "created"

        self.assertEqual(sorted(run_in_threads(2, create)), ["created", membership.NAME_TAKEN])
        self.assertEqual(Membership.objects.filter(room__name="team", role=Role.OWNER).count(), 1)

    def test_both_of_a_pair_opening_their_direct_room_at_once_make_one(self):
        ada, bob = person("ada"), person("bob")

        def open_it(index: int) -> int:
            me, other = [(ada, "bob"), (bob, "ada")][index]
            return membership.direct_room(identity(me), other).pk

        self.assertEqual(len(set(run_in_threads(2, open_it))), 1)
        self.assertEqual((Room.objects.count(), Membership.objects.count()), (1, 2))

    def test_two_owners_leaving_at_once_leave_one_owner(self):
        team = Room.objects.create(name="team", kind=RoomKind.PRIVATE)
        owners = [join(team, person("ada"), Role.OWNER), join(team, person("bob"), Role.OWNER)]

        def leave(index: int) -> str:
            try:
                membership.member_leave(team, identity(owners[index]))
            except ClientError as exc:
                return exc.code
            return "left"

        self.assertEqual(sorted(run_in_threads(2, leave)), [membership.LAST_OWNER, "left"])
        self.assertEqual(Membership.objects.filter(room=team, role=Role.OWNER).count(), 1)
