"""Moderation through the one write path: each action is a log entry, and what it says holds in the database."""

from datetime import timedelta
from unittest import mock

from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from chat import protocol, selectors, services
from chat.access import who
from chat.exceptions import ClientError
from chat.identity import Identity
from chat.models import Action, Kind, Membership, Message, Report, Restriction, Role, Room, RoomKind
from chat.store import store_one


class ModerationTestCase(TestCase):
    def setUp(self) -> None:
        self.room = Room.objects.create(name="town")
        self.mod = self.person("mod", Role.MODERATOR)
        self.owner = self.person("owner", Role.OWNER)
        self.ada = self.person("ada", Role.MEMBER)

    def person(self, name: str, role: Role | None = None, room: Room | None = None) -> Identity:
        user = User.objects.get_or_create(username=name)[0]
        if role is not None:
            Membership.objects.create(room=room or self.room, user=user, role=role)
        return Identity(name=name, user=user)

    def moderate(self, by: Identity, action: str, subject: str = "", seconds: int | None = None) -> services.Posted:
        return services.entry_create(
            services.moderation(room=self.room, identity=by, action=action, subject=subject, seconds=seconds)
        )

    def say(self, by: Identity, body: str = "hi", room: Room | None = None) -> services.Posted:
        return store_one(services.draft(room=room or self.room, author=by.name, user=by.user, body=body))

    def refused(self, code: str, call: object, *args: object, **kwargs: object) -> ClientError:
        with self.assertRaises(ClientError) as caught:
            call(*args, **kwargs)  # type: ignore[operator]
        self.assertEqual(caught.exception.code, code)
        return caught.exception


class ModerationEntryTests(ModerationTestCase):
    def test_an_action_is_a_log_entry_with_the_rooms_next_seq(self) -> None:
        self.say(self.ada)
        posted = self.moderate(self.mod, "mute", "ada", seconds=60)
        entry = posted.message
        self.assertEqual(
            (entry.kind, entry.seq, entry.action, entry.subject, entry.seconds), ("moderation", 2, "mute", "ada", 60)
        )
        self.assertEqual(Room.objects.get(pk=self.room.pk).last_seq, 2)

    def test_its_frame_names_the_action_the_person_who_took_it_and_the_seconds(self) -> None:
        posted = self.moderate(self.mod, "ban", "ada")
        frame = selectors.message_payload(posted.message, self.room.name)
        self.assertEqual(
            {key: frame[key] for key in ("type", "room", "seq", "action", "user", "by", "seconds")},
            {
                "type": "moderation",
                "room": "town",
                "seq": 1,
                "action": "ban",
                "user": "ada",
                "by": "mod",
                "seconds": None,
            },
        )

    def test_it_is_replayed_on_resume_like_every_entry(self) -> None:
        self.say(self.ada)
        self.moderate(self.mod, "slow_mode", seconds=30)
        frames, last_seq = selectors.backlog.func(self.room, after=1)
        self.assertEqual(last_seq, 2)
        self.assertEqual(
            [(f["type"], f["action"], f["user"], f["seconds"]) for f in frames], [("moderation", "slow_mode", None, 30)]
        )

    def test_a_kick_or_ban_says_whose_access_it_revokes(self) -> None:
        self.assertEqual(self.moderate(self.mod, "kick", "ada").revokes, who(self.ada.user, None))
        self.assertEqual(self.moderate(self.mod, "ban", "ada").revokes, who(self.ada.user, None))
        self.assertIsNone(self.moderate(self.mod, "mute", "ada").revokes)

    def test_lifting_what_is_not_in_place_stores_nothing(self) -> None:
        posted = self.moderate(self.mod, "unmute", "ada")
        self.assertIsNone(posted.entry)
        self.assertFalse(Message.objects.filter(kind=Kind.MODERATION).exists())


class WhoMayModerateTests(ModerationTestCase):
    def test_a_member_may_not_moderate(self) -> None:
        self.person("bob", Role.MEMBER)
        self.refused(protocol.FORBIDDEN, self.moderate, self.ada, "kick", "bob")
        self.assertFalse(Message.objects.exists())

    def test_a_moderator_may_not_act_on_another_moderator_or_the_owner(self) -> None:
        self.person("mod2", Role.MODERATOR)
        self.refused(protocol.FORBIDDEN, self.moderate, self.mod, "mute", "mod2")
        self.refused(protocol.FORBIDDEN, self.moderate, self.mod, "ban", "owner")

    def test_an_owner_may_act_on_a_moderator(self) -> None:
        self.assertIsNotNone(self.moderate(self.owner, "ban", "mod").entry)

    def test_a_moderator_cannot_be_muted_as_moderators_are_never_held_by_a_mute(self) -> None:
        self.refused(protocol.FORBIDDEN, self.moderate, self.owner, "mute", "mod")

    def test_staff_moderate_every_room_without_being_members(self) -> None:
        staff = User.objects.create(username="root", is_staff=True)
        self.assertIsNotNone(self.moderate(Identity(name="root", user=staff), "ban", "owner").entry)

    def test_nobody_moderates_themselves(self) -> None:
        self.refused(protocol.FORBIDDEN, self.moderate, self.mod, "mute", "mod")

    def test_a_name_nobody_goes_by_here_is_not_found(self) -> None:
        self.refused(protocol.NOT_FOUND, self.moderate, self.mod, "ban", "nobody")

    def test_a_guest_is_found_by_the_name_they_posted_under(self) -> None:
        store_one(services.draft(room=self.room, author="kit (guest)", user=None, body="hi", guest_id="g-kit"))
        posted = self.moderate(self.mod, "ban", "kit (guest)")
        self.assertEqual(posted.revokes, "guest:g-kit")


class BanTests(ModerationTestCase):
    def test_a_ban_is_stored_and_lifted_by_unban(self) -> None:
        self.moderate(self.mod, "ban", "ada", seconds=600)
        until = Restriction.objects.get(action=Action.BAN).until
        assert until is not None
        self.assertAlmostEqual(until, timezone.now() + timedelta(seconds=600), delta=timedelta(seconds=5))
        self.refused(protocol.FORBIDDEN, self.say, self.ada)
        self.moderate(self.mod, "unban", "ada")
        self.assertFalse(Restriction.objects.exists())
        self.assertIsNotNone(self.say(self.ada).entry)

    def test_a_ban_without_seconds_lasts_until_lifted(self) -> None:
        self.moderate(self.mod, "ban", "ada")
        self.assertIsNone(Restriction.objects.get().until)


class MuteTests(ModerationTestCase):
    def test_a_muted_persons_messages_edits_and_reactions_are_answered_muted_with_until(self) -> None:
        seq = self.say(self.ada).message.seq
        self.moderate(self.mod, "mute", "ada", seconds=60)
        error = self.refused(protocol.MUTED, self.say, self.ada)
        self.assertTrue(str(error.extra["until"]).endswith("Z"))
        edit = services.change(room=self.room, identity=self.ada, kind=Kind.EDIT, target=seq, body="x")
        react = services.change(
            room=self.room, identity=self.ada, kind=Kind.REACTION, target=seq, emoji="\N{THUMBS UP SIGN}"
        )
        for change in (edit, react):
            self.refused(protocol.MUTED, store_one, change)

    def test_a_mute_until_lifted_says_until_null(self) -> None:
        self.moderate(self.mod, "mute", "ada")
        self.assertIsNone(self.refused(protocol.MUTED, self.say, self.ada).extra["until"])

    def test_a_mute_ends_by_itself_when_its_time_is_up(self) -> None:
        self.moderate(self.mod, "mute", "ada", seconds=60)
        later = timezone.now() + timedelta(seconds=61)
        with mock.patch("django.utils.timezone.now", return_value=later):
            self.assertIsNotNone(self.say(self.ada).entry)

    def test_unmute_lets_them_write_again(self) -> None:
        self.moderate(self.mod, "mute", "ada")
        self.moderate(self.mod, "unmute", "ada")
        self.assertIsNotNone(self.say(self.ada).entry)


class SlowModeTests(ModerationTestCase):
    def test_a_second_message_within_the_interval_is_answered_slow_mode_with_retry_after(self) -> None:
        self.moderate(self.mod, "slow_mode", seconds=30)
        self.say(self.ada)
        error = self.refused(protocol.SLOW_MODE, self.say, self.ada)
        self.assertIn(error.extra["retry_after"], range(29, 31))

    def test_moderators_are_exempt(self) -> None:
        self.moderate(self.owner, "slow_mode", seconds=30)
        self.say(self.mod)
        self.assertIsNotNone(self.say(self.mod).entry)

    def test_zero_turns_it_off(self) -> None:
        self.moderate(self.mod, "slow_mode", seconds=30)
        self.say(self.ada)
        self.moderate(self.mod, "slow_mode", seconds=0)
        self.assertIsNotNone(self.say(self.ada).entry)
        self.assertEqual(Room.objects.get(pk=self.room.pk).slow_mode_seconds, 0)

    def test_it_holds_for_a_room_object_read_before_it_was_set(self) -> None:
        stale = Room.objects.get(pk=self.room.pk)
        self.moderate(self.mod, "slow_mode", seconds=30)
        self.say(self.ada, room=stale)
        self.refused(protocol.SLOW_MODE, self.say, self.ada, room=stale)


class PrivateRoomTests(ModerationTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.room.kind = RoomKind.PRIVATE
        self.room.save()

    def test_a_non_member_may_not_write(self) -> None:
        self.refused(protocol.FORBIDDEN, self.say, self.person("eve"))

    def test_a_kick_ends_the_membership(self) -> None:
        self.moderate(self.mod, "kick", "ada")
        self.assertFalse(Membership.objects.filter(user=self.ada.user).exists())
        self.refused(protocol.FORBIDDEN, self.say, self.ada)

    def test_a_kick_of_someone_who_is_no_member_is_not_found(self) -> None:
        self.person("eve")
        self.refused(protocol.NOT_FOUND, self.moderate, self.mod, "kick", "eve")


class ReportTests(ModerationTestCase):
    def test_a_report_is_stored_for_the_moderators(self) -> None:
        seq = self.say(self.ada).message.seq
        services.report(room=self.room, identity=self.person("bob"), target=seq, reason="rude")
        self.assertEqual(list(Report.objects.values_list("target_seq", "reason", "by")), [(seq, "rude", "bob")])

    def test_a_report_of_no_message_is_not_found(self) -> None:
        self.refused(protocol.NOT_FOUND, services.report, room=self.room, identity=self.ada, target=99, reason="")
