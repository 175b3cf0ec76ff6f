"""Storing drafts in one transaction with the rooms' next seqs: numbering, one INSERT, resends, races."""

from unittest import mock

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from chat import store
from chat.models import Message, Room
from chat.store import store_all

from .helpers import draft, post


class StoreAllTests(TestCase):
    """store_all stores a batch of drafts in one transaction, as the socket path's group commit does."""

    def setUp(self):
        self.room = Room.objects.create(name="general")
        self.other = Room.objects.create(name="other")

    def test_a_batch_across_two_rooms_numbers_each_room_in_arrival_order(self):
        order = [self.room, self.other, self.room, self.other, self.room]
        posted = store_all([draft(room, f"m{i}") for i, room in enumerate(order)])
        got = [(p.message.room.name, p.message.seq, p.message.body) for p in posted]
        self.assertEqual(
            got,
            [("general", 1, "m0"), ("other", 1, "m1"), ("general", 2, "m2"), ("other", 2, "m3"), ("general", 3, "m4")],
        )

    def test_a_batch_is_stored_with_one_insert(self):
        with CaptureQueriesContext(connection) as queries:
            store_all([draft(self.room, f"m{i}", client_id=f"c-{i}") for i in range(10)])
        inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
        self.assertEqual((len(inserts), Message.objects.count()), (1, 10))

    def test_a_batch_advances_each_room_last_seq_by_what_it_stored(self):
        store_all([draft(self.room), draft(self.other), draft(self.room)])
        self.room.refresh_from_db()
        self.other.refresh_from_db()
        self.assertEqual((self.room.last_seq, self.other.last_seq), (2, 1))

    def test_a_resend_in_a_batch_answers_the_original_and_takes_no_seq(self):
        original = post(self.room, "first", client_id="c-1").message
        posted = store_all([draft(self.room, "x", client_id="c-2"), draft(self.room, "first", client_id="c-1")])
        self.assertEqual([(p.created, p.message.seq) for p in posted], [(True, 2), (False, original.seq)])
        self.assertEqual(Message.objects.count(), 2)

    def test_one_client_id_twice_in_a_batch_is_stored_once_and_both_get_its_seq(self):
        posted = store_all(
            [draft(self.room, "a", client_id="c-1"), draft(self.room, "a", client_id="c-1"), draft(self.room, "b")]
        )
        self.assertEqual([(p.created, p.message.seq) for p in posted], [(True, 1), (False, 1), (True, 2)])
        self.room.refresh_from_db()
        self.assertEqual((Message.objects.count(), self.room.last_seq), (2, 2))

    def test_a_client_id_stored_by_another_writer_after_the_lookup_falls_back_to_one_by_one(self):
        original = post(self.room, "first", client_id="c-1").message
        real_lookup = store._already_stored
        calls = []

        def stale_first_lookup(cursor, drafts):
            # As if another process committed c-1 between this batch's lookup and its insert.
            calls.append(len(drafts))
            return {} if len(calls) == 1 else real_lookup(cursor, drafts)

        with mock.patch.object(store, "_already_stored", stale_first_lookup):
            posted = store_all([draft(self.room, "new", client_id="c-2"), draft(self.room, "first", client_id="c-1")])
        self.assertEqual([(p.created, p.message.seq) for p in posted], [(True, 2), (False, original.seq)])
        self.room.refresh_from_db()
        self.assertEqual(list(Message.objects.values_list("seq", flat=True)), [1, 2])
        self.assertEqual(self.room.last_seq, 2)
