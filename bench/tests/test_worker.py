"""The load generator's counting: every kind of log entry is a delivery by seq, timed, and releases its sender.

The frames are chatsite's own (chat.protocol), so the worker's fast path is checked against the server's layout.
"""

import contextlib
import multiprocessing
import os
import struct
import time
import unittest
from collections import deque
from datetime import UTC, datetime
from multiprocessing.reduction import ForkingPickler
from typing import Any

from bench.worker import EDIT, MESSAGE, REACT, REACTIONS, Link, Worker, main
from chat import protocol

ROOM = "mixed-test-0"
THUMBS = REACTIONS[0]


def _body(sender: int, number: int, sent_ns: int) -> str:
    return f"bench:{sender}:{number}:{sent_ns}"


def message(seq: int, body: str) -> str:
    frame = protocol.message(room=ROOM, seq=seq, author="a", body=body, sent_at=datetime.now(UTC), client_id=None)
    return protocol.encode(frame)


def edit(seq: int, target: int, body: str) -> str:
    return protocol.encode(
        protocol.edit(room=ROOM, seq=seq, target=target, body=body, by="a", edited_at=datetime.now(UTC))
    )


def reaction(seq: int, target: int, user: str = "b", emoji: str = THUMBS, on: bool = True) -> str:
    return protocol.encode(protocol.reaction(room=ROOM, seq=seq, target=target, emoji=emoji, user=user, on=on))


def ack(sender: int, number: int, seq: int) -> str:
    return protocol.encode(protocol.ack(client_id=f"b{sender}-{number}", seq=seq))


class First:
    """A stand-in for a link's random choices: always the first, so that a test knows the target and emoji."""

    def choice(self, items: Any) -> Any:
        return items[0]


def _worker() -> Worker:
    worker = Worker(pipe=None)
    now = time.time_ns()
    worker.window_ns = (now - 10**9, now + 60 * 10**9)
    return worker


class ReceiverTests(unittest.TestCase):
    def test_every_kind_of_entry_is_a_delivery_counted_by_seq(self) -> None:
        worker, link = _worker(), Link(ROOM, None)
        sent = time.time_ns()
        for text in (message(1, _body(0, 0, sent)), reaction(2, 1), edit(3, 1, _body(0, 1, sent))):
            worker.on_frame(link, text)
        self.assertEqual((link.received, link.last, link.gaps, link.duplicates), (3, 3, [], 0))
        self.assertEqual(worker.delivered_in_window, 3)

    def test_a_skipped_seq_is_a_gap_and_a_repeated_reaction_a_duplicate(self) -> None:
        worker, link = _worker(), Link(ROOM, None)
        worker.on_frame(link, message(1, _body(0, 0, time.time_ns())))
        worker.on_frame(link, reaction(3, 1))
        worker.on_frame(link, reaction(3, 1))
        self.assertEqual((link.received, link.gaps, link.duplicates), (2, [[2, 2]], 1))

    def test_an_edit_is_timed_by_its_body_and_a_reaction_by_its_senders_note(self) -> None:
        worker, link = _worker(), Link(ROOM, None)
        sent = time.time_ns()
        worker.on_frame(link, edit(1, 1, _body(0, 5, sent)))
        worker.on_frame(link, reaction(2, 1))
        worker.on_frame(link, reaction(3, 1))
        self.assertEqual(worker.latency.n, 1)
        stats = worker.op_stats(stamps={ROOM: {2: sent}})  # seq 3's sender noted nothing: not timed
        self.assertEqual(stats["latency"], worker.latency.to_dict())
        self.assertEqual(worker.latency.n, 2)


class SenderTests(unittest.TestCase):
    def _sender(self) -> tuple[Worker, Link]:
        worker, link = _worker(), Link(ROOM, 0)
        worker.mix = [MESSAGE, REACT, EDIT]
        worker.capacity = 4
        link.you, link.rng = "guest-1000", First()
        return worker, link

    def _send(self, worker: Worker, link: Link) -> tuple[str, str]:
        number = link.next_n
        link.next_n += 1
        kind, text = worker._entry(link, number, time.time_ns())
        link.unacked[number] = (time.time_ns(), kind)
        link.in_flight[number] = time.time_ns()
        return kind, text

    def test_a_sender_with_nothing_to_change_sends_messages(self) -> None:
        worker, link = self._sender()
        self.assertEqual([self._send(worker, link)[0] for _ in range(3)], [MESSAGE, MESSAGE, MESSAGE])

    def test_edits_change_its_own_messages_and_reactions_toggle_on_the_rooms(self) -> None:
        worker, link = self._sender()
        link.recent, link.own = deque([7]), deque([4])
        link.next_n = 1
        kind, first = self._send(worker, link)
        self.assertEqual((kind, protocol.decode(first)["target"], protocol.decode(first)["on"]), (REACT, 7, True))
        self.assertEqual(protocol.decode(self._send(worker, link)[1])["target"], 4)
        link.next_n = 4
        self.assertFalse(protocol.decode(self._send(worker, link)[1])["on"])

    def test_its_own_reaction_coming_back_releases_its_window(self) -> None:
        worker, link = self._sender()
        link.recent, link.next_n = deque([7]), 1
        self._send(worker, link)
        worker.on_frame(link, reaction(9, 7, user="guest-1000"))
        self.assertEqual((link.in_flight, link.received), ({}, 1))

    def test_a_reactions_ack_notes_its_send_time_by_seq_and_a_messages_its_seq_to_edit(self) -> None:
        worker, link = self._sender()
        self._send(worker, link)
        link.recent, link.next_n = deque([7]), 1
        self._send(worker, link)
        worker.on_frame(link, ack(0, 0, 8))
        worker.on_frame(link, ack(0, 1, 9))
        self.assertEqual(list(link.own), [8])
        self.assertEqual(list(worker.stamps[ROOM]), [9])
        self.assertEqual(worker.final_seq[ROOM], 9)


class CommandPipeTests(unittest.TestCase):
    def test_a_command_that_arrives_in_parts_is_read_whole_by_a_running_worker(self) -> None:
        # uvloop's add_reader leaves the pipe non-blocking: a command that arrived in parts (a stats call with many
        # reaction stamps, in make bench) failed to read halfway, and the worker took that for the coordinator's
        # exit. Here the parts are written by hand, a pause between them. The worker is started as bench.swarm
        # starts one (which needs the bench's own requirements).
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=main, args=(child,), daemon=True)
        process.start()
        child.close()
        try:
            parent.send({"op": "progress", "final_seq": {}})  # answered once the worker's loop reads the pipe
            self.assertTrue(parent.poll(60), "the worker started")
            parent.recv()
            data = bytes(ForkingPickler.dumps({"op": "stats", "stamps": {}}))
            framed = struct.pack("!i", len(data)) + data  # multiprocessing.connection's framing
            os.write(parent.fileno(), framed[:8])
            time.sleep(0.3)
            os.write(parent.fileno(), framed[8:])
            self.assertTrue(parent.poll(30), "the worker answered")
            self.assertEqual(parent.recv()["ok"]["delivered"], 0)
        finally:
            with contextlib.suppress(OSError):
                parent.send({"op": "exit"})
            process.join(10)
            if process.is_alive():
                process.kill()
