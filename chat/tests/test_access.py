"""The one rule (chat.access.decide) and what the database feeds it (rights, visible_rooms)."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from chat import access
from chat.access import Standing, decide
from chat.identity import Identity
from chat.models import Action, Membership, Restriction, Role, Room, RoomKind

PUBLIC, PRIVATE, DIRECT = RoomKind.PUBLIC, RoomKind.PRIVATE, RoomKind.DIRECT


def person(staff: bool = False) -> User:
    return User(pk=7, username="ada", is_staff=staff)


class DecideTests(TestCase):
    def test_everyone_reads_and_writes_a_public_room_guests_included(self) -> None:
        for user in (None, person()):
            rights = decide(user=user, kind=PUBLIC, standing=access.NOBODY)
            self.assertEqual((rights.read, rights.write, rights.moderate), (True, True, False))

    def test_a_private_room_is_closed_to_guests_and_non_members(self) -> None:
        for user in (None, person()):
            self.assertFalse(decide(user=user, kind=PRIVATE, standing=access.NOBODY).read)

    def test_a_member_of_a_private_room_reads_and_writes_it(self) -> None:
        rights = decide(user=person(), kind=PRIVATE, standing=Standing(role=Role.MEMBER))
        self.assertEqual((rights.read, rights.write, rights.moderate), (True, True, False))

    def test_owners_and_moderators_moderate_their_room(self) -> None:
        for role in (Role.OWNER, Role.MODERATOR):
            for kind in (PUBLIC, PRIVATE):
                self.assertTrue(decide(user=person(), kind=kind, standing=Standing(role=role)).moderate)

    def test_staff_read_and_moderate_every_public_and_private_room(self) -> None:
        for kind in (PUBLIC, PRIVATE):
            rights = decide(user=person(staff=True), kind=kind, standing=access.NOBODY)
            self.assertTrue(rights.read and rights.moderate)

    def test_a_direct_room_is_its_two_members_only_and_nobody_moderates_it(self) -> None:
        self.assertFalse(decide(user=person(staff=True), kind=DIRECT, standing=access.NOBODY).read)
        member = decide(user=person(), kind=DIRECT, standing=Standing(role=Role.MEMBER))
        self.assertEqual((member.read, member.write, member.moderate), (True, True, False))

    def test_a_ban_shuts_a_person_out_of_public_and_private_rooms(self) -> None:
        banned = Standing(role=Role.MEMBER, banned=True)
        for kind in (PUBLIC, PRIVATE):
            self.assertFalse(decide(user=person(), kind=kind, standing=banned).read)
        self.assertFalse(decide(user=None, kind=PUBLIC, standing=Standing(banned=True)).read)

    def test_a_mute_leaves_reading_but_not_writing(self) -> None:
        until = timezone.now() + timedelta(minutes=5)
        rights = decide(user=None, kind=PUBLIC, standing=Standing(muted=True, muted_until=until))
        self.assertEqual((rights.read, rights.write, rights.muted_until), (True, False, until))

    def test_a_moderator_is_never_muted(self) -> None:
        rights = decide(user=person(), kind=PUBLIC, standing=Standing(role=Role.MODERATOR, muted=True))
        self.assertTrue(rights.write)

    def test_rank_orders_staff_owner_moderator_member_guest(self) -> None:
        ranks = [
            access.rank(person(staff=True), access.NOBODY),
            access.rank(person(), Standing(role=Role.OWNER)),
            access.rank(person(), Standing(role=Role.MODERATOR)),
            access.rank(person(), Standing(role=Role.MEMBER)),
            access.rank(None, access.NOBODY),
        ]
        self.assertEqual(ranks, sorted(ranks, reverse=True))
        self.assertEqual(len(set(ranks)), 5)


class FromTheDatabaseTests(TestCase):
    def setUp(self) -> None:
        self.ada = User.objects.create(username="ada")
        self.bob = User.objects.create(username="bob")
        self.public = Room.objects.create(name="open")
        self.private = Room.objects.create(name="team", kind=PRIVATE)
        Membership.objects.create(room=self.private, user=self.ada, role=Role.OWNER)

    def identity(self, user: User) -> Identity:
        return Identity(name=user.username, user=user)

    def test_rights_read_the_membership(self) -> None:
        self.assertTrue(access.rights(self.identity(self.ada), self.private).moderate)
        self.assertFalse(access.rights(self.identity(self.bob), self.private).read)

    def test_an_expired_ban_no_longer_counts(self) -> None:
        Restriction.objects.create(
            room=self.public,
            action=Action.BAN,
            who=access.who(self.bob, None),
            name="bob",
            by="ada",
            until=timezone.now() - timedelta(seconds=1),
        )
        self.assertTrue(access.rights(self.identity(self.bob), self.public).read)

    def test_visible_rooms_are_public_ones_and_ones_a_person_belongs_to(self) -> None:
        self.assertEqual(set(access.visible_rooms(self.identity(self.ada))), {self.public, self.private})
        self.assertEqual(set(access.visible_rooms(self.identity(self.bob))), {self.public})
        guest = Identity(name="guest-1234", user=None, guest_id="g1")
        self.assertEqual(set(access.visible_rooms(guest)), {self.public})

    def test_a_room_a_person_is_banned_from_is_not_listed_to_them(self) -> None:
        Restriction.objects.create(
            room=self.public, action=Action.BAN, who=access.who(self.bob, None), name="bob", by="x"
        )
        self.assertEqual(set(access.visible_rooms(self.identity(self.bob))), set())
