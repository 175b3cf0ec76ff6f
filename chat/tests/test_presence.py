"""Who is online: one row per socket, counted per name, with rows of dead processes expiring after a TTL."""

import asyncio
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import presence
from chat.models import Presence, Room

from .helpers import ChatTransactionTestCase

TTL = 90


@override_settings(CHAT_PRESENCE_TTL_SECONDS=TTL)
class PresenceTestCase(ChatTransactionTestCase):
    """enter, leave and touch are database_sync_to_async helpers, so these tests commit for real."""

    def setUp(self):
        self.room = Room.objects.create(name="general")

    def enter(self, channel: str, name: str, room: Room | None = None) -> presence.Change:
        return async_to_sync(presence.enter)(room or self.room, connection_id=channel, name=name)

    def leave(self, channel: str, name: str, room: Room | None = None) -> presence.Change:
        return async_to_sync(presence.leave)(room or self.room, connection_id=channel, name=name)

    def age(self, channel: str, seconds: float) -> None:
        """Make a socket's row look as if it was last seen ``seconds`` ago."""
        Presence.objects.filter(connection_id=channel).update(seen=timezone.now() - timedelta(seconds=seconds))


class EnterTests(PresenceTestCase):
    def test_the_first_socket_of_a_name_is_an_edge(self):
        self.assertTrue(self.enter("c1", "ada").edge)

    def test_a_second_socket_of_the_same_name_is_not_an_edge(self):
        self.enter("c1", "ada")
        self.assertFalse(self.enter("c2", "ada").edge)

    def test_the_first_socket_of_another_name_is_an_edge(self):
        self.enter("c1", "ada")
        self.assertTrue(self.enter("c2", "bob").edge)

    def test_the_same_name_in_another_room_is_an_edge_there(self):
        other = Room.objects.create(name="other")
        self.enter("c1", "ada")
        self.assertTrue(self.enter("c2", "ada", other).edge)

    def test_entering_returns_the_online_names_including_the_newcomer(self):
        self.enter("c1", "bob")
        self.assertEqual(self.enter("c2", "ada").online, ["ada", "bob"])

    def test_entering_stores_one_row_per_socket(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.assertEqual(sorted(Presence.objects.values_list("connection_id", flat=True)), ["c1", "c2"])

    def test_a_stale_socket_of_the_same_name_does_not_stop_an_edge(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.assertTrue(self.enter("c2", "ada").edge)

    def test_a_stale_row_is_not_in_the_online_list_entering_returns(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.assertEqual(self.enter("c2", "bob").online, ["bob"])


class LeaveTests(PresenceTestCase):
    def test_leaving_one_of_two_sockets_of_a_name_is_not_an_edge(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.assertFalse(self.leave("c1", "ada").edge)

    def test_leaving_the_last_socket_of_a_name_is_an_edge(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.leave("c1", "ada")
        self.assertTrue(self.leave("c2", "ada").edge)

    def test_leaving_removes_only_that_socket_row(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.leave("c1", "ada")
        self.assertEqual(list(Presence.objects.values_list("connection_id", flat=True)), ["c2"])

    def test_leaving_returns_the_online_names_without_the_leaver(self):
        self.enter("c1", "ada")
        self.enter("c2", "bob")
        self.assertEqual(self.leave("c1", "ada").online, ["bob"])

    def test_a_name_whose_other_socket_is_stale_leaves_on_its_last_fresh_socket(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.age("c1", TTL + 5)
        self.assertTrue(self.leave("c2", "ada").edge)

    def test_leaving_a_room_keeps_the_name_online_in_another_room(self):
        other = Room.objects.create(name="other")
        self.enter("c1", "ada")
        self.enter("c2", "ada", other)
        self.leave("c1", "ada")
        self.assertEqual(presence.online_names(other), ["ada"])


class TouchTests(PresenceTestCase):
    def touch(self, *channels: str) -> None:
        async_to_sync(presence.touch)(list(channels))

    def test_touch_refreshes_a_socket_so_it_counts_again(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.touch("c1")
        self.assertEqual(presence.online_names(self.room), ["ada"])

    def test_touch_refreshes_only_the_sockets_it_is_given(self):
        self.enter("c1", "ada")
        self.enter("c2", "bob")
        self.age("c1", TTL + 5)
        self.age("c2", TTL + 5)
        self.touch("c2")
        self.assertEqual(presence.online_names(self.room), ["bob"])

    def test_touch_refreshes_every_socket_of_a_long_list(self):
        count = 1200
        stale = timezone.now() - timedelta(seconds=TTL + 5)
        Presence.objects.bulk_create(
            Presence(room=self.room, connection_id=f"c{index}", name=f"user{index}", seen=stale)
            for index in range(count)
        )
        self.touch(*(f"c{index}" for index in range(count)))
        self.assertEqual(presence.online_counts(), {self.room.pk: count})

    def test_touch_of_an_unknown_socket_changes_nothing(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.touch("c-unknown")
        self.assertEqual(presence.online_names(self.room), [])

    def test_touch_of_no_sockets_changes_nothing(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.touch()
        self.assertEqual(presence.online_names(self.room), [])


class SweepTests(PresenceTestCase):
    def sweep(self) -> list[tuple[str, str]]:
        return async_to_sync(presence.sweep)()

    def test_a_sweep_removes_rows_older_than_the_ttl(self):
        self.enter("c1", "ada")
        self.enter("c2", "bob")
        self.age("c1", TTL + 5)
        self.sweep()
        self.assertEqual(list(Presence.objects.values_list("connection_id", flat=True)), ["c2"])

    def test_a_sweep_reports_a_name_left_with_no_socket_as_gone_from_its_room(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.assertEqual(self.sweep(), [("general", "ada")])

    def test_a_sweep_does_not_report_a_name_that_still_has_a_fresh_socket(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.age("c1", TTL + 5)
        self.assertEqual(self.sweep(), [])

    def test_a_sweep_reports_a_name_once_however_many_of_its_sockets_expired(self):
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.age("c1", TTL + 5)
        self.age("c2", TTL + 5)
        self.assertEqual(self.sweep(), [("general", "ada")])

    def test_a_sweep_covers_every_room(self):
        other = Room.objects.create(name="other")
        self.enter("c1", "ada")
        self.enter("c2", "bob", other)
        self.age("c1", TTL + 5)
        self.age("c2", TTL + 5)
        self.assertEqual(sorted(self.sweep()), [("general", "ada"), ("other", "bob")])

    def test_a_sweep_leaves_fresh_rows_alone(self):
        self.enter("c1", "ada")
        self.age("c1", TTL - 5)
        self.assertEqual((self.sweep(), Presence.objects.count()), ([], 1))

    def test_a_second_sweep_reports_nothing(self):
        self.enter("c1", "ada")
        self.age("c1", TTL + 5)
        self.sweep()
        self.assertEqual(self.sweep(), [])


class OnlineNamesTests(PresenceTestCase):
    def test_online_names_are_distinct_and_sorted(self):
        for channel, name in [("c1", "cy"), ("c2", "ada"), ("c3", "cy"), ("c4", "bob"), ("c5", "ada")]:
            self.enter(channel, name)
        self.assertEqual(presence.online_names(self.room), ["ada", "bob", "cy"])

    def test_an_empty_room_has_no_one_online(self):
        self.assertEqual(presence.online_names(self.room), [])

    def test_rows_older_than_the_ttl_are_not_online(self):
        self.enter("c1", "ada")
        self.enter("c2", "bob")
        self.age("c1", TTL + 5)
        self.assertEqual(presence.online_names(self.room), ["bob"])

    def test_rows_younger_than_the_ttl_are_online(self):
        self.enter("c1", "ada")
        self.age("c1", TTL - 5)
        self.assertEqual(presence.online_names(self.room), ["ada"])

    def test_online_names_are_per_room(self):
        other = Room.objects.create(name="other")
        self.enter("c1", "ada")
        self.enter("c2", "bob", other)
        self.assertEqual((presence.online_names(self.room), presence.online_names(other)), (["ada"], ["bob"]))


class SharedOnlineNamesTests(PresenceTestCase):
    """online_names_since: the online list for sockets that skipped presence frames, one read for many."""

    def reads_together(self, *since: float) -> tuple[list[list[str]], int]:
        async def together() -> list[list[str]]:
            return list(await asyncio.gather(*(presence.online_names_since(self.room, since=s) for s in since)))

        with CaptureQueriesContext(connection) as queries:
            lists = async_to_sync(together)()
        return lists, len(queries)

    def test_sockets_asking_together_share_one_read(self):
        self.enter("c1", "ada")
        lists, queries = self.reads_together(0.0, 0.0, 0.0)
        self.assertEqual((lists, queries), ([["ada"]] * 3, 1))

    def test_a_read_that_began_before_the_frame_a_socket_skipped_is_not_shared(self):
        # Its answer may predate the change that frame announced.
        self.enter("c1", "ada")
        _, queries = self.reads_together(0.0, time.monotonic() + 60)
        self.assertEqual(queries, 2)

    def test_once_a_read_is_done_the_next_one_reads_again(self):
        self.enter("c1", "ada")
        self.reads_together(0.0)
        self.enter("c2", "bob")
        self.assertEqual(self.reads_together(0.0), ([["ada", "bob"]], 1))


class OnlineCountsTests(PresenceTestCase):
    def test_online_counts_are_distinct_names_per_room_id(self):
        other = Room.objects.create(name="other")
        self.enter("c1", "ada")
        self.enter("c2", "ada")
        self.enter("c3", "bob")
        self.enter("c4", "cy", other)
        self.assertEqual(presence.online_counts(), {self.room.pk: 2, other.pk: 1})

    def test_a_room_with_no_one_online_is_absent_from_the_counts(self):
        Room.objects.create(name="empty")
        self.enter("c1", "ada")
        self.assertEqual(presence.online_counts(), {self.room.pk: 1})

    def test_stale_rows_are_not_counted(self):
        other = Room.objects.create(name="other")
        self.enter("c1", "ada")
        self.enter("c2", "bob")
        self.enter("c3", "cy", other)
        self.age("c2", TTL + 5)
        self.age("c3", TTL + 5)
        self.assertEqual(presence.online_counts(), {self.room.pk: 1})

    @override_settings(CHAT_PRESENCE_TTL_SECONDS=10)
    def test_the_ttl_comes_from_the_settings(self):
        self.enter("c1", "ada")
        self.age("c1", 30)
        self.assertEqual(presence.online_counts(), {})
