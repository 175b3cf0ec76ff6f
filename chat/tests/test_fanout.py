"""The room fan-out and its sockets' bounds, with fake members: no reader holds up the others, and one that falls
behind is caught up from the log with nothing lost or doubled."""

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

from django.db import OperationalError
from django.test import SimpleTestCase, override_settings

from chat import fanout_consumer, protocol
from chat.events import message_event, messages_event, presence_event, read_event
from chat.fanout import Hub, RoomFanout
from chat.fanout_consumer import MAX_AHEAD, FanoutConsumer

from .helpers import eventually

FRAME = 1000  # bytes of each test message's text, roughly
BOUND = 10 * FRAME


def payload(seq: int) -> dict[str, Any]:
    return {"type": "message", "seq": seq, "body": "x" * FRAME}


class FakeOutlet:
    """What a server says about the socket's buffer, set by the test."""

    def __init__(self) -> None:
        self.held = 0
        self.waits_above = 0
        self.forced: list[int] = []
        self.aborted = False

    def buffered(self) -> int:
        return self.held

    def force_close(self, code: int) -> None:
        self.forced.append(code)

    def abort(self) -> None:
        self.aborted = True


class FakeMember(FanoutConsumer):
    """A socket of the room with a fake server send and the test's log; live from the start."""

    def __init__(self, log: list[int], *, outlet: FakeOutlet | None = None) -> None:
        super().__init__()
        self.log = log
        self.sent: list[Any] = []
        self.outlet = outlet or FakeOutlet()
        self.base_send = self.record
        self.room_name = "room"
        self.live = True
        self.presence_refreshes = 0
        self.own_refreshes: list[bool] = []  # each own_missed call's ``stale``

    async def record(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_live(event)

    async def chat_presence(self, event: dict[str, Any]) -> None:
        await self.send_live(event)

    async def read_log(self, *, after: int) -> tuple[list[tuple[int, str]], int, bool]:
        await asyncio.sleep(0.005)  # as database_sync_to_async does: the fan-out runs meanwhile
        last = self.log[-1] if self.log else 0
        page = [seq for seq in self.log if seq > after][:3]  # small pages: a catch-up takes several
        complete = not page or page[-1] >= last
        return [(seq, protocol.encode(payload(seq))) for seq in page], last, complete

    async def presence_missed(self) -> None:
        self.presence_refreshes += 1

    async def own_missed(self, *, stale: bool) -> None:
        self.own_refreshes.append(stale)

    def seqs(self) -> list[int]:
        return [protocol.decode(m["text"])["seq"] for m in self.sent if "seq" in m.get("text", "")]

    def closes(self) -> list[int]:
        return [m["code"] for m in self.sent if m["type"] == "websocket.close"]


class NeverCompletes(FakeMember):
    """A socket whose server send never returns: a reader that stopped, on a server we know nothing about."""

    def __init__(self, log: list[int]) -> None:
        super().__init__(log)
        self.outlet = None

    async def record(self, message: dict[str, Any]) -> None:
        await asyncio.Event().wait()


class Raises(FakeMember):
    def __init__(self, log: list[int], error: Exception) -> None:
        super().__init__(log)
        self.error = error

    async def record(self, message: dict[str, Any]) -> None:
        raise self.error


def _stopping_members(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def run(self: "FanoutTestCase") -> None:
        try:
            await test(self)
        finally:
            for member in self.fanout.members.values():
                member._stop_writing()  # type: ignore[attr-defined]

    return run


@override_settings(CHAT_SEND_BUFFER_BYTES=BOUND, CHAT_SEND_BEHIND_SECONDS=1)
class FanoutTestCase(SimpleTestCase):
    """Every async test's members stop their writer tasks when it ends, so none outlives its event loop."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("test_") and inspect.iscoroutinefunction(value):
                setattr(cls, name, _stopping_members(value))

    def setUp(self) -> None:
        self.log: list[int] = []
        self.fanout = RoomFanout("room")

    def add(self, *members: FakeMember) -> None:
        for member in members:
            self.fanout.members[member.connection_id] = member
            self.fanout.people.setdefault(member.person, {})[member.connection_id] = member

    def member_over_its_bound(self) -> tuple[FakeMember, FakeOutlet]:
        """A member of the room whose server already holds its whole bound: the next frame makes it fall behind."""
        outlet = FakeOutlet()
        member = FakeMember(self.log, outlet=outlet)
        self.add(member)
        outlet.held = BOUND
        return member, outlet

    async def given_up(self, member: FakeMember) -> None:
        """Publish one message to a member over its bound, and wait out the limit until it is closed."""
        with self.assertLogs("chat.fanout_consumer", "WARNING"):
            await self.publish(1)
            await eventually(lambda: member.closes(), timeout=3, what="the 4008 close")

    async def publish(self, *seqs: int) -> None:
        """Commit the messages to the test's log, then fan them out, as the write path does."""
        for seq in seqs:
            self.log.append(seq)
            await asyncio.wait_for(self.fanout.fan_out(message_event(payload(seq))), timeout=1)


class FanoutTests(FanoutTestCase):
    async def test_every_member_gets_every_message_in_seq_order(self) -> None:
        members = [FakeMember(self.log) for _ in range(5)]
        self.add(*members)
        await self.publish(*range(1, 21))
        for member in members:
            self.assertEqual(member.seqs(), list(range(1, 21)))

    async def test_an_event_for_one_person_reaches_their_sockets_and_nobody_elses(self) -> None:
        laptop, phone, other = FakeMember(self.log), FakeMember(self.log), FakeMember(self.log)
        laptop.person = phone.person = "user:1"
        other.person = "user:2"
        for member in (laptop, phone, other):
            member.chat_read = member.send_live
        self.add(laptop, phone, other)
        await self.fanout.fan_out(read_event("room", "user:1", 7))
        self.assertEqual([len(m.sent) for m in (laptop, phone, other)], [1, 1, 0])
        self.assertEqual(protocol.decode(laptop.sent[0]["text"]), {"type": "read", "room": "room", "seq": 7})

    async def test_one_commits_messages_travel_as_one_event_and_arrive_in_order(self) -> None:
        member = FakeMember(self.log)
        self.add(member)
        self.log.extend([1, 2, 3])
        await self.fanout.fan_out(messages_event([message_event(payload(seq)) for seq in (1, 2, 3)]))
        self.assertEqual(member.seqs(), [1, 2, 3])

    async def test_a_member_whose_send_never_completes_holds_up_nobody(self) -> None:
        stuck, other = NeverCompletes(self.log), FakeMember(self.log)
        self.add(stuck, other)
        await self.publish(1, 2, 3)  # each within a second, or wait_for fails the test
        self.assertEqual(other.seqs(), [1, 2, 3])

    async def test_a_member_whose_send_never_completes_holds_no_more_than_its_bound(self) -> None:
        stuck = NeverCompletes(self.log)
        self.add(stuck)
        await self.publish(*range(1, 51))
        self.assertLessEqual(stuck.outbox_bytes, BOUND)
        self.assertFalse(stuck.live)

    async def test_a_member_whose_send_raises_costs_the_others_nothing(self) -> None:
        gone, buggy, other = (
            Raises(self.log, OSError("gone")),
            Raises(self.log, ValueError("bug")),
            FakeMember(self.log),
        )
        self.add(gone, buggy, other)
        with self.assertLogs("chat.fanout", "ERROR"):  # the bug is logged with its stack; the closed socket is not
            await self.publish(1, 2)
        self.assertEqual(other.seqs(), [1, 2])

    async def test_a_member_over_its_bound_is_skipped_and_marked_behind(self) -> None:
        outlet = FakeOutlet()
        behind, other = FakeMember(self.log, outlet=outlet), FakeMember(self.log)
        self.add(behind, other)
        await self.publish(1)
        outlet.held = BOUND
        await self.publish(2, 3)
        self.assertEqual((behind.seqs(), behind.live), ([1], False))
        self.assertEqual(other.seqs(), [1, 2, 3])

    async def test_a_member_that_drains_is_caught_up_from_the_log_then_live_with_nothing_lost_or_doubled(self) -> None:
        outlet = FakeOutlet()
        member = FakeMember(self.log, outlet=outlet)
        self.add(member)
        await self.publish(1, 2)
        outlet.held = BOUND
        await self.publish(*range(3, 11))
        outlet.held = 0  # it reads again
        await eventually(lambda: member.live, what="the member caught up")
        await self.publish(11, 12)
        self.assertEqual(member.seqs(), list(range(1, 13)))

    async def test_messages_published_during_a_catch_up_are_sent_once_in_order(self) -> None:
        member, outlet = self.member_over_its_bound()
        await self.publish(1, 2, 3)
        outlet.held = 0
        for seq in range(4, 30):  # the room goes on while the member catches up, three at a time
            await self.publish(seq)
            await asyncio.sleep(0)
        await eventually(lambda: member.live, what="the member caught up")
        await self.publish(30)
        self.assertEqual(member.seqs(), list(range(1, 31)))

    async def test_a_member_behind_for_longer_than_the_limit_is_closed_with_4008(self) -> None:
        member, _ = self.member_over_its_bound()
        await self.given_up(member)
        self.assertEqual(member.closes(), [protocol.CLOSE_TOO_SLOW])

    async def test_a_close_the_servers_send_cannot_take_is_forced_behind_the_buffered_data(self) -> None:
        stuck = NeverCompletes(self.log)
        stuck.outlet = FakeOutlet()  # a server we know, whose send waits (uvicorn, paused)
        stuck.outlet.held = BOUND
        self.add(stuck)
        with self.assertLogs("chat.fanout_consumer", "WARNING"):
            await self.publish(1)
            await eventually(lambda: stuck.outlet.forced, timeout=4, what="the forced close")  # type: ignore[union-attr]
        self.assertEqual(stuck.outlet.forced, [protocol.CLOSE_TOO_SLOW])

    async def test_a_member_given_up_on_gets_no_more_frames(self) -> None:
        member, outlet = self.member_over_its_bound()
        await self.given_up(member)
        outlet.held = 0
        await self.publish(2)
        self.assertEqual(member.seqs(), [])

    async def test_presence_frames_skipped_while_behind_are_made_good_once_caught_up(self) -> None:
        member, outlet = self.member_over_its_bound()
        await self.publish(1)
        for user in ("ada", "bob"):
            await self.fanout.fan_out(presence_event("join", user))
        outlet.held = 0
        await eventually(lambda: member.live, what="the member caught up")
        self.assertEqual((member.seqs(), member.presence_refreshes), ([1], 1))

    async def test_a_read_marker_skipped_while_behind_is_made_good_without_refreshing_presence(self) -> None:
        # A skipped read frame used to count as skipped presence: a query of the online list per socket behind,
        # per read, which made make bench's reads scenario stall on PostgreSQL.
        member, outlet = self.member_over_its_bound()
        member.chat_read = member.send_live
        await self.publish(1)
        await self.fanout.fan_out(read_event("room", member.person, 1))
        outlet.held = 0
        await eventually(lambda: member.live, what="the member caught up")
        self.assertEqual((member.presence_refreshes, member.own_refreshes), (0, [False]))

    async def test_after_the_layer_lost_events_the_persons_own_frames_are_set_right_from_the_store(self) -> None:
        member = FakeMember(self.log)
        self.add(member)
        member.resync()
        await eventually(lambda: member.live, what="the resync")
        self.assertEqual((member.presence_refreshes, member.own_refreshes), (1, [True]))

    async def test_a_resync_sends_what_the_log_holds_beyond_the_last_seq_sent(self) -> None:
        member = FakeMember(self.log)
        self.add(member)
        await self.publish(1)
        self.log.extend([2, 3])  # committed, but the layer lost their broadcasts
        member.resync()
        await eventually(lambda: member.live and member.seqs() == [1, 2, 3], what="the resync")


class OrderTests(FanoutTestCase):
    async def test_a_broadcast_that_arrives_after_a_later_seq_is_still_sent_once(self) -> None:
        # Two processes commit 1 then 2, and the second process's broadcast reaches this one first.
        member = FakeMember(self.log)
        self.add(member)
        self.log.extend([1, 2])
        for seq in (2, 1, 2):
            await self.fanout.fan_out(message_event(payload(seq)))
        self.assertEqual(sorted(member.seqs()), [1, 2])
        await self.publish(3)
        self.assertEqual(member.seqs(), [2, 1, 3])

    async def test_a_broadcast_the_layer_lost_is_sent_from_the_log_once_later_ones_pile_up_above_it(self) -> None:
        member = FakeMember(self.log)
        self.add(member)
        self.log.append(1)  # its broadcast never comes
        await self.publish(*range(2, MAX_AHEAD + 3))
        await eventually(lambda: member.live and 1 in member.seqs(), what="the lost message from the log")
        await self.publish(MAX_AHEAD + 3)
        self.assertEqual(sorted(member.seqs()), list(range(1, MAX_AHEAD + 4)))
        self.assertEqual(len(member.seqs()), MAX_AHEAD + 3)

    @override_settings(CHAT_SEND_BEHIND_SECONDS=10)
    async def test_a_database_error_during_a_catch_up_is_retried_not_logged_as_a_bug(self) -> None:
        outlet = FakeOutlet()
        member = FakeMember(self.log, outlet=outlet)
        read, calls = member.read_log, []

        async def flaky_read(*, after: int) -> tuple[list[tuple[int, str]], int, bool]:
            calls.append(after)
            if len(calls) == 1:
                raise OperationalError("server closed the connection unexpectedly")
            return await read(after=after)

        member.read_log = flaky_read  # type: ignore[method-assign]
        self.add(member)
        await self.publish(1)
        outlet.held = BOUND
        with self.assertNoLogs("chat", "ERROR"), self.assertLogs("chat.fanout_consumer", "WARNING"):
            await self.publish(2)
            outlet.held = 0
            await eventually(lambda: member.live, what="the catch-up after the database came back")
        await self.publish(3)
        self.assertEqual(member.seqs(), [1, 2, 3])

    async def test_a_database_error_while_setting_presence_and_marker_right_is_retried_until_they_are_sent(
        self,
    ) -> None:
        # The flags were cleared before the read: a failed one left the socket live with a stale list and marker.
        member = FakeMember(self.log)
        own, calls = member.own_missed, []

        async def flaky_own(*, stale: bool) -> None:
            calls.append(stale)
            if len(calls) == 1:
                raise OperationalError("server closed the connection unexpectedly")
            await own(stale=stale)

        member.own_missed = flaky_own  # type: ignore[method-assign]
        self.add(member)
        # Retried well within the test's 1 s limit, which would otherwise close it as too slow first.
        with (
            mock.patch.object(fanout_consumer, "RETRY_SECONDS", 0.05),
            self.assertLogs("chat.fanout_consumer", "WARNING"),
        ):
            member.resync()
            await eventually(lambda: member.live, what="the resync after the database came back")
        self.assertEqual(member.own_refreshes, [True])


class JoiningTests(FanoutTestCase):
    async def test_messages_that_arrive_while_a_member_joins_are_sent_from_the_log_before_live_ones(self) -> None:
        member = FakeMember(self.log)
        member.live = False  # joined, hello and backlog not yet sent
        self.add(member)
        await self.publish(1, 2)
        await member.go_live()
        await self.publish(3)
        self.assertEqual(member.seqs(), [1, 2, 3])

    async def test_a_member_whose_backlog_covered_what_arrived_meanwhile_reads_nothing_more(self) -> None:
        member = FakeMember(self.log)
        member.live = False
        self.add(member)
        await self.publish(1, 2)
        member.sent_through = 2  # the backlog read after the join held both

        async def no_read(*, after: int) -> tuple[list[tuple[int, str]], int, bool]:
            raise AssertionError("read the log for nothing")

        member.read_log = no_read  # type: ignore[method-assign]
        await member.go_live()
        self.assertEqual((member.seqs(), member.live), ([], True))


class HubTests(SimpleTestCase):
    async def test_sockets_joining_a_new_room_at_once_share_one_subscription(self) -> None:
        hub = Hub()
        members = [FakeMember([]) for _ in range(5)]
        await asyncio.gather(*(hub.join("room", member) for member in members))
        try:
            self.assertEqual(len(hub.rooms["room"].members), 5)
        finally:
            for member in members:
                await hub.leave("room", member)
        self.assertEqual(hub.rooms, {})
