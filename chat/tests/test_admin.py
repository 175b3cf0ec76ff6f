"""The admin: a message added there goes through the write path; the stored log can be read but never edited."""

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings

from chat import events, protocol, selectors
from chat.identity import Identity
from chat.models import Kind, Membership, Message, Restriction, Role, Room, RoomKind
from chat.services import entry_create, message_create, moderation, report

from .helpers import FAST_HASHING, RoomListener

ADD_URL = "/admin/chat/message/add/"
CHANGELIST_URL = "/admin/chat/message/"


@FAST_HASHING
class AdminTestCase(TestCase):
    def setUp(self):
        self.admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "x-pass-123")
        self.client.force_login(self.admin)
        self.room = Room.objects.create(name="general")

    def add(self, body: str, room: Room | None = None):
        return self.client.post(ADD_URL, {"room": (room or self.room).pk, "body": body})


class MessageAddTests(AdminTestCase):
    def test_the_add_form_asks_only_for_room_and_body(self):
        form = self.client.get(ADD_URL).context["adminform"].form
        self.assertEqual(list(form.fields), ["room", "body"])

    def test_an_added_message_gets_the_room_next_seq(self):
        for body in ["one", "two"]:
            message_create(room=self.room, author="ada", body=body)
        self.add("three")
        self.assertEqual(Message.objects.get(body="three").seq, 3)

    def test_an_added_message_advances_the_room_last_seq(self):
        self.add("hello")
        self.room.refresh_from_db()
        self.assertEqual(self.room.last_seq, 1)

    def test_an_added_message_is_authored_by_the_admin_username(self):
        self.add("hello")
        message = Message.objects.get()
        self.assertEqual((message.author, message.user), ("boss", self.admin))

    def test_an_added_message_body_is_cleaned_like_any_other(self):
        self.add("  Cafe\u0301  ")
        self.assertEqual(Message.objects.get().body, "Caf\u00e9")

    def test_adding_a_message_redirects_away_from_the_form(self):
        self.assertEqual(self.add("hello").status_code, 302)

    def test_adding_a_message_stores_exactly_one_row(self):
        self.add("hello")
        self.assertEqual(Message.objects.count(), 1)

    def test_the_admin_log_records_the_stored_message(self):
        self.add("hello")
        entry = LogEntry.objects.get()
        self.assertEqual((entry.action_flag, entry.object_id), (ADDITION, str(Message.objects.get().pk)))

    def test_an_added_message_is_broadcast_to_the_room(self):
        async def scenario():
            async with RoomListener("general") as listener:
                await sync_to_async(self.add)("hello")
                return await listener.receive(), await listener.receive_or_none()

        event, nothing_more = async_to_sync(scenario)()
        message = Message.objects.get()
        expected = {
            "type": events.MESSAGE_EVENT,
            "seq": 1,
            "text": protocol.encode(selectors.message_payload(message, "general")),
        }
        self.assertEqual((event, nothing_more), (expected, None))

    def test_an_empty_body_is_a_form_error(self):
        for body in ["", "   \n  "]:
            with self.subTest(body=body):
                response = self.add(body)
                self.assertEqual(response.status_code, 200)
                self.assertTrue(response.context["adminform"].form.errors["body"])

    def test_a_body_with_a_control_character_is_a_form_error(self):
        response = self.add("a\x01b")
        self.assertEqual(
            response.context["adminform"].form.errors["body"],
            ["The message contains a control character or an invalid code point."],
        )

    @override_settings(CHAT_MAX_MESSAGE_LENGTH=5)
    def test_a_body_over_the_max_length_is_a_form_error(self):
        response = self.add("123456")
        self.assertEqual(
            response.context["adminform"].form.errors["body"], ["The message is longer than 5 characters."]
        )

    def test_a_refused_body_stores_nothing(self):
        self.add("   ")
        self.room.refresh_from_db()
        self.assertEqual((Message.objects.count(), self.room.last_seq), (0, 0))


class MessageLogIsReadOnlyTests(AdminTestCase):
    def setUp(self):
        super().setUp()
        self.message = message_create(room=self.room, author="ada", body="original").message
        self.change_url = f"/admin/chat/message/{self.message.pk}/change/"
        self.delete_url = f"/admin/chat/message/{self.message.pk}/delete/"

    def test_the_changelist_shows_stored_messages(self):
        self.assertContains(self.client.get(CHANGELIST_URL), "original")

    def test_a_stored_message_can_be_viewed_but_has_no_save_button(self):
        response = self.client.get(self.change_url)
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, 'name="_save"')

    def test_changing_a_stored_message_is_forbidden(self):
        data = {"room": self.room.pk, "body": "edited", "seq": 1, "author": "ada"}
        self.assertEqual(self.client.post(self.change_url, data).status_code, 403)

    def test_a_refused_change_leaves_the_message_as_it_was(self):
        self.client.post(self.change_url, {"room": self.room.pk, "body": "edited", "seq": 1, "author": "ada"})
        self.message.refresh_from_db()
        self.assertEqual(self.message.body, "original")

    def assertTombstone(self):
        self.message.refresh_from_db()
        self.assertEqual((self.message.body, self.message.is_deleted), ("", True))
        delete = Message.objects.get(kind="delete")
        self.assertEqual((delete.seq, delete.target_seq, delete.author), (2, 1, "boss"))

    def test_deleting_a_message_makes_it_a_tombstone_with_a_delete_entry(self):
        self.assertEqual(self.client.post(self.delete_url, {"post": "yes"}).status_code, 302)
        self.assertTombstone()

    def test_the_bulk_delete_action_deletes_through_the_write_path(self):
        self.client.post(
            CHANGELIST_URL, {"action": "delete_selected", "_selected_action": [self.message.pk], "post": "yes"}
        )
        self.assertTombstone()

    def test_a_deleted_message_cannot_be_deleted_again(self):
        self.client.post(self.delete_url, {"post": "yes"})
        self.assertEqual(self.client.get(self.delete_url).status_code, 403)

    def test_the_changelist_lists_messages_not_their_changes(self):
        self.client.post(self.delete_url, {"post": "yes"})
        self.assertEqual(list(self.client.get(CHANGELIST_URL).context["cl"].result_list), [self.message])

    def test_a_delete_in_the_admin_is_broadcast_to_the_room(self):
        async def delete_and_listen():
            async with RoomListener("general") as listener:
                await sync_to_async(self.client.post)(self.delete_url, {"post": "yes"})
                return await listener.receive()

        event = async_to_sync(delete_and_listen)()
        frame = protocol.decode(event["text"])
        self.assertEqual((frame["type"], frame["target"], frame["by"]), ("delete", 1, "boss"))


class ModerationAdminTests(AdminTestCase):
    def setUp(self):
        super().setUp()
        self.ada = get_user_model().objects.create_user("ada")
        self.room.kind = RoomKind.PRIVATE
        self.room.save()
        self.membership = Membership.objects.create(room=self.room, user=self.ada, role=Role.MEMBER)
        self.boss = Identity(name="boss", user=self.admin)

    def test_moderation_entries_are_listed_apart_from_messages(self):
        entry_create(moderation(room=self.room, identity=self.boss, action="mute", subject="ada"))
        response = self.client.get("/admin/chat/moderationentry/")
        self.assertEqual([(e.action, e.subject) for e in response.context["cl"].result_list], [("mute", "ada")])
        self.assertEqual(list(self.client.get(CHANGELIST_URL).context["cl"].result_list), [])

    def test_reports_are_listed(self):
        message_create(room=self.room, author="ada", user=self.ada, body="rude")
        report(room=self.room, identity=Identity(name="ada", user=self.ada), target=1, reason="spam link")
        self.assertContains(self.client.get("/admin/chat/report/"), "spam link")

    def test_removing_a_membership_is_a_kick_entry(self):
        url = f"/admin/chat/membership/{self.membership.pk}/delete/"
        self.assertEqual(self.client.post(url, {"post": "yes"}).status_code, 302)
        self.assertFalse(Membership.objects.exists())
        kick = Message.objects.get(kind=Kind.MODERATION)
        self.assertEqual((kick.action, kick.subject, kick.author), ("kick", "ada", "boss"))

    def test_lifting_a_ban_is_an_unban_entry(self):
        entry_create(moderation(room=self.room, identity=self.boss, action="ban", subject="ada"))
        ban = Restriction.objects.get()
        self.client.post("/admin/chat/restriction/", {"action": "lift", "_selected_action": [ban.pk]})
        self.assertFalse(Restriction.objects.exists())
        self.assertEqual(Message.objects.order_by("seq").last().action, "unban")

    def test_bans_cannot_be_edited_in_place(self):
        entry_create(moderation(room=self.room, identity=self.boss, action="ban", subject="ada"))
        ban = Restriction.objects.get()
        self.assertEqual(
            self.client.post(f"/admin/chat/restriction/{ban.pk}/delete/", {"post": "yes"}).status_code, 403
        )


class AdminKeepsTheRuleTests(AdminTestCase):
    def test_a_rooms_name_and_kind_cannot_change_under_its_open_sockets(self):
        self.client.post(f"/admin/chat/room/{self.room.pk}/change/", {"name": "renamed", "kind": "private"})
        self.room.refresh_from_db()
        self.assertEqual((self.room.name, self.room.kind), ("general", "public"))

    def test_messages_of_direct_rooms_are_not_listed_nor_postable(self):
        direct = Room.objects.create(name="dm-1-2", kind=RoomKind.DIRECT)
        message_create(room=direct, author="ada", body="between us")
        message_create(room=self.room, author="ada", body="for all")
        listed = [m.body for m in self.client.get(CHANGELIST_URL).context["cl"].result_list]
        self.assertEqual(listed, ["for all"])
        self.assertEqual(self.add("hello", room=direct).status_code, 200)  # the form refuses the room
        self.assertEqual(Message.objects.filter(room=direct).count(), 1)
