"""Faults survived, under load, each checked by the oracle (chat.tests.oracle): nothing acknowledged is lost, nothing
is stored twice, every client ends with exactly the database's log and every message in its current state, no
erased body reaches anyone after its delete, and no server logs an unhandled traceback.

The load of the server crash, SIGTERM, Redis outage, PostgreSQL restart and silent network scenarios is mixed
(soak.load.send_mixed): messages and replies, edits and deletes of one's own messages, reactions on and off to
others'. FoldingTests and ErasedBodyCheckTests, at the end, check the test client's folding rule and the oracle's
erased-body check without servers, in `make test` too.

Each test owns its Redis (and, for the PostgreSQL restart, its PostgreSQL cluster) and its server processes, on
free loopback ports, and stops them all however it ends. They need PostgreSQL and Redis, and take minutes, so
they run in `make soak` (which sets CHAT_FAULTS=1); elsewhere they skip, saying so. Figures (reconnect times,
outage lengths, latencies) are printed, and appended as JSON lines to $CHAT_FAULT_FIGURES when it is set, for
docs/reliability.md.
"""

import asyncio
import contextlib
import dataclasses
import json
import os
import time
import unittest
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.test import SimpleTestCase, TransactionTestCase

from soak.load import LoadClient, Recorder, keep_connected, percentile, send_at_rate, send_mixed, summary_ms

from . import oracle
from .helpers import FAST_HASHING, eventually
from .relay import Relay
from .servers import PostgresServer, RedisServer, Server, database_url, require_redis_and_postgres
from .test_scale import session_cookie
from .wsclient import ChatClient, Received, Request

# Presence swept within seconds, heartbeats (and so group renewals) every second.
FAST_PRESENCE = {"CHAT_HEARTBEAT_SECONDS": "1", "CHAT_PRESENCE_TTL_SECONDS": "4"}
ROOM = "faults"
RATE = 20  # messages per second into the room, from all senders together


def require_faults() -> None:
    require_redis_and_postgres()
    if os.environ.get("CHAT_FAULTS") != "1":
        raise unittest.SkipTest("the fault-injection suite runs in `make soak` (set CHAT_FAULTS=1 to run it here)")


def record(test: str, **figures: Any) -> None:
    """Print a passing scenario's figures, and append them to $CHAT_FAULT_FIGURES for docs/reliability.md."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"\nfigures {line}")
    path = os.environ.get("CHAT_FAULT_FIGURES")
    if path:
        with Path(path).open("a") as out:
            out.write(line + "\n")


class Crowd:
    """Clients kept connected by keep_connected until the crowd is closed, whatever the test's outcome."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.stop = asyncio.Event()
        self.clients: list[LoadClient] = []
        self.keepers: list[asyncio.Task[None]] = []

    def keep(self, client: LoadClient, urls: Sequence[str], **options: Any) -> LoadClient:
        self.clients.append(client)
        self.keepers.append(asyncio.ensure_future(keep_connected(client, urls, self.stop, **options)))
        return client

    def add(self, client: LoadClient) -> LoadClient:
        """A client the test connects and closes itself (still closed at the end)."""
        self.clients.append(client)
        return client

    async def all_connected(self, timeout: float = 15) -> None:
        await eventually(lambda: all(c.connected for c in self.clients), timeout=timeout, what="every client connected")

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.keepers, return_exceptions=True), 20)
        for keeper in self.keepers:
            keeper.cancel()
        for client in self.clients:
            client.resume_reading()
            await client.close()

    async def __aenter__(self) -> "Crowd":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@FAST_HASHING
class FaultTestCase(TransactionTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_faults()

    def setUp(self) -> None:
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.recorder = Recorder()
        self.database_url = database_url()

    def servers(
        self, count: int = 2, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> list[Server]:
        """``count`` servers on this test's Redis, started together, stopped at cleanup."""
        servers = [Server(env={**FAST_PRESENCE, "REDIS_URL": self.redis.url, **(env or {})}, args=args)]
        servers += [Server(env=servers[0].extra_env, args=args) for _ in range(count - 1)]
        for server in servers:
            self.addCleanup(server.stop)
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda s: s.start(), servers))
        return servers

    async def users(self, *names: str, room: str = ROOM, **options: Any) -> list[LoadClient]:
        cookies = [await sync_to_async(session_cookie)(name) for name in names]
        return [LoadClient(recorder=self.recorder, room=room, cookie=cookie, **options) for cookie in cookies]

    def guests(self, count: int, *, room: str = ROOM, **options: Any) -> list[LoadClient]:
        return [LoadClient(recorder=self.recorder, room=room, **options) for _ in range(count)]

    async def assert_nothing_lost(
        self,
        crowd: Crowd,
        servers: Sequence[Server],
        *,
        killed: Sequence[Server] = (),
        views_of: Sequence[LoadClient] | None = None,
        database: str | None = None,
    ) -> oracle.Verdict:
        url = database or self.database_url
        # Clients being reconnected by their keepers count too: settle waits for them.
        await oracle.settle(crowd.clients if views_of is None else views_of, url, timeout=40)
        verdict = await asyncio.to_thread(
            oracle.check, url, clients=crowd.clients, views_of=views_of, servers=servers, killed=killed
        )
        self.assertTrue(verdict, "the oracle found:\n" + verdict.report())
        return verdict


def mixed_figures(verdict: oracle.Verdict, clients: Sequence[ChatClient], sent: Counter[str]) -> dict[str, Any]:
    """What a mixed load did: turns sent and entries stored by kind, refusals, changes that wrote nothing, what the
    erased-body check read, and how often a client kept a newer state than a message frame brought."""
    return {
        "sent": dict(sorted(sent.items())),
        "stored": dict(sorted(verdict.kinds.items())),
        "refused": dict(Counter(code for c in clients for code in c.refused.values())),
        "no_op_acks": verdict.no_op_acks,
        "erased_checked": dict(sorted(verdict.erased.items())),
        "older_states_kept": sum(c.older_states for c in clients),
    }


class ServerCrashTests(FaultTestCase):
    async def test_1_kill_9_of_a_server_under_load_loses_nothing_and_its_users_leave(self) -> None:
        a, b = self.servers()
        async with Crowd(self.recorder) as crowd:
            on_a = await self.users("alice", "bob", "carol")
            on_b = await self.users("erin", "frank", "grace")
            (dave,) = await self.users("dave")  # on A, and never comes back after the crash
            for client in on_a:
                crowd.keep(client, [a.url, b.url])
            for client in on_b:
                crowd.keep(client, [b.url, a.url])
            await crowd.add(dave).connect(a.url)
            await crowd.all_connected()
            senders = on_a + on_b
            load = asyncio.ensure_future(send_mixed(senders, rate=RATE, seconds=10))

            await eventually(lambda: len(self.recorder.ack) >= 40, timeout=10, what="load under way")
            await sync_to_async(a.kill)()
            killed_at = time.monotonic()
            await eventually(
                lambda: all(c.connected and len(c.connected_at) == 2 for c in on_a), timeout=15, what="A's clients on B"
            )
            moved_in = max(c.connected_at[1] for c in on_a) - killed_at
            await sync_to_async(a.start)()  # restarted later, on the same port
            restarted_at = time.monotonic() - killed_at
            sent = await load

            await eventually(lambda: "dave" not in on_b[0].online, timeout=20, what="dave's leave after the crash")
            gone_in = time.monotonic() - killed_at
            verdict = await self.assert_nothing_lost(crowd, [a, b], views_of=senders)
            online = await asyncio.to_thread(oracle.fetch_presence, self.database_url, ROOM)
            self.assertEqual(online, {"alice", "bob", "carol", "erin", "frank", "grace"})
        record(
            "kill -9 of a server under load",
            **mixed_figures(verdict, crowd.clients, sent),
            reconnected_to_other_s=round(moved_in, 2),
            restarted_after_s=round(restarted_at, 2),
            crashed_user_left_after_s=round(gone_in, 2),
            ack=summary_ms(self.recorder.ack),
            delivery=summary_ms(self.recorder.delivery),
        )

    async def test_6_sigterm_of_a_server_under_load_loses_nothing_and_it_exits_cleanly(self) -> None:
        a, b = self.servers()
        async with Crowd(self.recorder) as crowd:
            on_a = [crowd.keep(c, [a.url, b.url]) for c in await self.users("alice", "bob", "carol")]
            on_b = [crowd.keep(c, [b.url, a.url]) for c in await self.users("erin", "frank", "grace")]
            await crowd.all_connected()
            load = asyncio.ensure_future(send_mixed(on_a + on_b, rate=RATE, seconds=8))
            await eventually(lambda: len(self.recorder.ack) >= 40, timeout=10, what="load under way")

            await sync_to_async(a.terminate)()
            term_at = time.monotonic()
            code = await asyncio.to_thread(a.wait, 20)
            exited_in = time.monotonic() - term_at
            # uvicorn shuts down gracefully, then ends itself with the signal it got: -15 is its clean exit.
            self.assertIn(code, (0, -15), f"the server did not exit cleanly within 20 s of SIGTERM:\n{a.log()}")
            await eventually(
                lambda: all(c.connected and len(c.connected_at) == 2 for c in on_a), timeout=15, what="A's clients on B"
            )
            moved_in = max(c.connected_at[1] for c in on_a) - term_at
            sent = await load
            verdict = await self.assert_nothing_lost(crowd, [a, b], killed=[a])
            close_codes = sorted({code for c in on_a for code in c.close_codes if code is not None})
            # The closed sockets' presence went with them: the rows left are exactly the open sockets'.
            names = {"alice", "bob", "carol", "erin", "frank", "grace"}
            rows = 0

            async def presence_rows() -> int:
                nonlocal rows
                rows = await sync_to_async(self._presence_rows)()
                return rows

            for _ in range(40):  # the stopped server's own goodbyes, or at worst the sweep after the TTL
                if await presence_rows() == 6:
                    break
                await asyncio.sleep(0.25)
            self.assertEqual(rows, 6, "presence rows of the stopped server's sockets were left behind")
            self.assertEqual(await asyncio.to_thread(oracle.fetch_presence, self.database_url, ROOM), names)
        record(
            "SIGTERM of a server under load",
            **mixed_figures(verdict, crowd.clients, sent),
            exited_in_s=round(exited_in, 2),
            exit_code=code,
            close_codes_seen=close_codes,
            reconnected_to_other_s=round(moved_in, 2),
            ack=summary_ms(self.recorder.ack),
        )

    def _presence_rows(self) -> int:
        from chat.models import Presence

        return Presence.objects.count()


class RedisOutageTests(FaultTestCase):
    async def outage(self, *, how: str, down_for: float, layer: str = "pubsub") -> dict[str, Any]:
        """Load on two servers; Redis goes away (``how``: clean, kill) for ``down_for`` s and comes back empty."""
        a, b = self.servers(env={"CHAT_CHANNEL_LAYER": layer})
        async with Crowd(self.recorder) as crowd:
            # Signed in, so that each keeps one identity across reconnects and may edit what it sent before.
            on_a = [crowd.keep(c, [a.url, b.url]) for c in await self.users("alice", "bob", "carol")]
            on_b = [crowd.keep(c, [b.url, a.url]) for c in await self.users("erin", "frank", "grace")]
            await crowd.all_connected()
            senders = on_a + on_b
            stop_load = asyncio.Event()
            load = asyncio.ensure_future(send_mixed(senders, rate=10, seconds=down_for + 40, stop=stop_load))
            await eventually(lambda: len(self.recorder.ack) >= 20, timeout=10, what="load under way")

            await sync_to_async(self.redis.shutdown if how == "clean" else self.redis.kill)()
            down_at = time.monotonic()
            # A newcomer, in a room no process is subscribed to yet, tries to join while Redis is away.
            newcomer = crowd.keep(self.guests(1, room="newcomers")[0], [a.url, b.url])
            await asyncio.sleep(down_for)
            await sync_to_async(self.redis.start)()
            up_at = time.monotonic()
            self.assertTrue(a.running and b.running, "a server process exited during the Redis outage")
            await eventually(lambda: a.healthy() and b.healthy(), timeout=15, what="both /healthz 200 again")
            healthy_in = time.monotonic() - up_at
            await eventually(
                lambda: all(c.live_since(up_at) for c in senders), timeout=20, what="every client receiving live again"
            )
            live_again = max(c.live_since(up_at) or 0 for c in senders) - up_at
            await eventually(lambda: newcomer.connected, timeout=20, what="the newcomer connected")
            stop_load.set()
            sent = await load
            errors = sorted({e["code"] for c in senders for e in c.errors})
            acked_during = sum(1 for c in senders for cid in c.acked if down_at <= self.recorder.sent[cid] < up_at)
            verdict = await self.assert_nothing_lost(crowd, [a, b])
        return {
            "layer": layer,
            "outage_s": round(up_at - down_at, 1),
            **mixed_figures(verdict, crowd.clients, sent),
            "acked_sent_during_outage": acked_during,
            "error_codes_seen": errors,
            "healthz_ok_after_s": round(healthy_in, 2),
            "all_live_again_after_s": round(live_again, 2),
            "reconnects": sum(len(c.connected_at) - 1 for c in senders),
        }

    async def test_2a_redis_restarted_cleanly_under_load(self) -> None:
        record("Redis restarted cleanly under load", **await self.outage(how="clean", down_for=2))

    async def test_2b_redis_killed_and_restarted_empty_under_load(self) -> None:
        record("Redis kill -9, restarted empty, under load", **await self.outage(how="kill", down_for=2))

    async def test_2c_redis_down_for_30_seconds_under_load(self) -> None:
        record("Redis down for 30 s under load", **await self.outage(how="kill", down_for=30))

    async def test_2d_redis_killed_and_restarted_empty_with_the_core_layer(self) -> None:
        record("Redis kill -9 with the core layer", **await self.outage(how="kill", down_for=2, layer="core"))


class PostgresRestartTests(FaultTestCase):
    async def test_3_postgresql_restarted_under_load_acks_only_what_it_stored(self) -> None:
        pg = PostgresServer()
        self.addCleanup(pg.destroy)
        await asyncio.to_thread(pg.start)
        await asyncio.to_thread(pg.migrate)
        a, b = await asyncio.to_thread(self.servers, env={"DATABASE_URL": pg.url})
        async with Crowd(self.recorder) as crowd:
            # Guests: their sessions would have to live in this cluster. A guest without one is someone new on each
            # socket, so after a reconnect (none is expected) an edit of an earlier message is refused, not stored.
            on_a = [crowd.keep(c, [a.url, b.url]) for c in self.guests(3)]
            on_b = [crowd.keep(c, [b.url, a.url]) for c in self.guests(3)]
            await crowd.all_connected()
            senders = on_a + on_b
            stop_load = asyncio.Event()
            load = asyncio.ensure_future(send_mixed(senders, rate=RATE, seconds=60, stop=stop_load))
            gaps = []
            for mode in ("fast", "immediate"):  # a clean restart, then a crash
                await eventually(lambda: len(self.recorder.ack) >= 20, timeout=10, what="load under way")
                await asyncio.to_thread(pg.stop, mode)
                down_at = time.monotonic()
                await asyncio.sleep(3)
                await asyncio.to_thread(pg.start)
                up_at = time.monotonic()
                gaps.append((down_at, up_at))
                self.recorder.ack.clear()
            await eventually(lambda: len(self.recorder.ack) >= 40, timeout=20, what="acks again after the restarts")
            stop_load.set()
            sent = await load
            unavailable = sum(1 for c in senders for e in c.errors if e["code"] == "unavailable")
            self.assertGreater(unavailable, 0, "no send fell into the gap: the scenario did not test it")
            verdict = await self.assert_nothing_lost(crowd, [a, b], database=pg.url)
        record(
            "PostgreSQL restarted under load (fast, then immediate)",
            **mixed_figures(verdict, crowd.clients, sent),
            unavailable_errors=unavailable,
            other_error_codes=sorted({e["code"] for c in senders for e in c.errors} - {"unavailable"}),
            reconnects=sum(len(c.connected_at) - 1 for c in senders),
            handled_tracebacks_in_logs=verdict.handled_tracebacks,
        )


class SilentNetworkTests(FaultTestCase):
    async def test_4_a_client_whose_network_goes_silent_is_closed_and_resumes_without_a_gap(self) -> None:
        # Protocol-level pings every second, 2 s to answer: a silent peer is found within about 3 s.
        a, b = self.servers(args=["--ws-ping-interval", "1", "--ws-ping-timeout", "2"])
        relay = await Relay(a.port).start()
        try:
            async with Crowd(self.recorder) as crowd:
                alice, bob = await self.users("alice", "bob")
                (carol,) = await self.users("carol", ping_interval=None)  # her own keepalive off: the server finds out
                crowd.keep(alice, [a.url])
                crowd.keep(bob, [b.url])
                crowd.keep(carol, [relay.url], ping_every=0)
                await crowd.all_connected()
                await eventually(lambda: "carol" in bob.online, timeout=10, what="carol online")
                load = asyncio.ensure_future(send_mixed([alice, bob], rate=10, seconds=12))
                first = await carol.send("before the silence")

                await eventually(lambda: not carol.outbox, timeout=10, what="carol's first message acked")
                first_seq = carol.acked[first]
                if first_seq is None:
                    self.fail("carol's message was acked without a seq")
                await eventually(
                    lambda: any(m.author == "alice" and not m.deleted for m in carol.messages.values()),
                    timeout=10,
                    what="a message of alice's for carol to react to",
                )
                liked = max(m.seq for m in carol.messages.values() if m.author == "alice" and not m.deleted)
                relay.stop_forwarding()
                silent_at = time.monotonic()
                # Typed into the silence, all three: they wait in her outbox and go once she is back.
                await carol.send("typed into the silence")
                edit = await carol.edit(first_seq, "before the silence, edited in it")
                await carol.react(liked, "\U0001f44d")
                await eventually(lambda: "carol" not in bob.online, timeout=15, what="carol's leave")
                closed_in = time.monotonic() - silent_at
                online = await asyncio.to_thread(oracle.fetch_presence, self.database_url, ROOM)
                self.assertNotIn("carol", online, "carol's presence row outlived her socket")
                self.assertEqual(len(carol.connected_at), 1, "carol's client noticed the silence itself")

                relay.resume_forwarding()
                await eventually(lambda: len(carol.connected_at) == 2, timeout=15, what="carol reconnected")
                sent = await load
                verdict = await self.assert_nothing_lost(crowd, [a, b])
                self.assertIn("carol", await asyncio.to_thread(oracle.fetch_presence, self.database_url, ROOM))
                # Her edit was stored once she was back (the oracle checked that every view shows it).
                self.assertIn(edit, carol.acked)
                self.assertEqual(carol.messages[first_seq].body, "before the silence, edited in it")
        finally:
            await relay.close()
        record(
            "a client's network goes silent",
            **mixed_figures(verdict, crowd.clients, sent + Counter(message=2, edit=1, react=1)),
            server_closed_it_after_s=round(closed_in, 2),
            carol_close_codes=carol.close_codes,
        )


# What the server logs when a socket's unsent data reaches CHAT_SEND_BUFFER_BYTES (chat.fanout_consumer).
BEHIND = "a socket fell behind"


class SlowConsumerTests(FaultTestCase):
    async def test_5_a_client_that_stops_reading_in_a_busy_room_holds_up_nobody(self) -> None:
        a, b = self.servers()
        async with Crowd(self.recorder) as crowd:
            others = [crowd.keep(c, [a.url]) for c in self.guests(3)] + [crowd.keep(c, [b.url]) for c in self.guests(3)]
            # A small receive buffer: the kernel holds little for it, so the server's sends stall sooner.
            sloth = crowd.keep(self.guests(1, receive_buffer=4096)[0], [a.url], ping_every=0)
            await crowd.all_connected()
            # Big bodies: 2000 four-byte characters, 8 KB a frame, 160 KB a second into the room, so that the few MB
            # the kernel buffers for a socket fill within half a minute.
            senders = others[:2] + others[3:5]
            stop_load = asyncio.Event()
            load = asyncio.ensure_future(
                send_at_rate(senders, rate=RATE, seconds=120, prefix="\U0001f600" * 1990, stop=stop_load)
            )
            await asyncio.sleep(5)
            baseline = [lat for c in others for _, lat, _ in c.arrivals]
            rss_before = a.rss_bytes()

            sloth.pause_reading()
            paused_at = time.monotonic()
            held = len(sloth.view)
            rss_peak = rss_before
            deadline = paused_at + 60  # it stops reading for a minute, or until the server stops sending to it
            while time.monotonic() < deadline and BEHIND not in a.log():
                rss_peak = max(rss_peak, a.rss_bytes())
                await asyncio.sleep(0.5)
            behind_in = time.monotonic() - paused_at if BEHIND in a.log() else None
            await asyncio.sleep(3)  # the room goes on after it
            rss_peak = max(rss_peak, a.rss_bytes())
            during = [lat for c in others for arrival, lat, _ in c.arrivals if arrival >= paused_at]
            sloth.receive_buffer = None  # the tab is back: its next socket is an ordinary one
            sloth.resume_reading()
            resumed_at = time.monotonic()
            await eventually(
                lambda: sloth.connected and (len(sloth.connected_at) > 1 or len(sloth.view) > held),
                timeout=20,
                what=f"the slow client reading again (close codes {sloth.close_codes}, errors {sloth.connect_errors})",
            )
            stop_load.set()
            sent = await load
            verdict = await self.assert_nothing_lost(crowd, [a, b])
            caught_up_in = time.monotonic() - resumed_at

        figures = {
            "sent": sent,
            "stored": verdict.rows[ROOM],
            "behind_after_s": behind_in and round(behind_in, 2),
            "sloth_close_codes": sloth.close_codes,
            "sloth_caught_up_after_s": round(caught_up_in, 2),
            "others_delivery_before": summary_ms(baseline),
            "others_delivery_during": summary_ms(during),
            "server_rss_growth_mb": round((rss_peak - rss_before) / 2**20, 1),
        }
        print(f"\nslow consumer: {figures}")
        # The server stopped sending to it once it held CHAT_SEND_BUFFER_BYTES for it and, reading again, it was
        # caught up from the log on the same socket; or uvicorn's keepalive (20 s + 20 s) ended it first and it
        # resumed. Either way it ended with the whole log (the oracle above checked its view).
        self.assertTrue(behind_in is not None or len(sloth.connected_at) > 1, sloth.close_codes)
        self.assertLess(rss_peak - rss_before, 50 * 2**20, "the server's memory grew by 50 MB or more")
        # The others' latency does not move: no worse than the calm baseline, with a small allowance for noise.
        self.assertLess(
            percentile(during, 0.99), percentile(baseline, 0.99) * 2 + 0.25, "the others' delivery p99 moved"
        )
        self.assertLess(max(during), 1.0, "another client waited a second or more for a message")
        record("a slow consumer stops reading for up to a minute", **figures)


class GroupExpiryTests(FaultTestCase):
    async def test_7a_a_membership_older_than_group_expiry_is_renewed_with_the_core_layer(self) -> None:
        a, b = self.servers(env={"CHAT_CHANNEL_LAYER": "core"})
        async with Crowd(self.recorder) as crowd:
            alice, bob = self.guests(2)
            crowd.keep(alice, [a.url])
            crowd.keep(bob, [b.url], ping_every=0)  # bob never pings: only live frames can reach him
            await crowd.all_connected()
            await alice.send("before")
            await eventually(lambda: len(bob.view) == 1, timeout=10, what="the first message")

            # As if every membership had been added group_expiry (600 s) ago and never renewed since.
            key = f"asgi:group:chat.{ROOM}"
            members = await asyncio.to_thread(self.redis.command, "ZCARD", key)
            aged = await asyncio.to_thread(self._age_group, key)
            self.assertGreater(aged, 0, f"no membership found under {key} ({members!r})")
            aged_at = time.monotonic()
            load = asyncio.ensure_future(send_at_rate([alice], rate=5, seconds=8))
            await eventually(lambda: bob.live_since(aged_at + 0.1) is not None, timeout=10, what="bob hearing live")
            deaf_for = (bob.live_since(aged_at + 0.1) or 0) - aged_at
            sent = await load
            await self.assert_nothing_lost(crowd, [a, b])
        record("a membership older than group_expiry (core layer)", deaf_for_s=round(deaf_for, 2), sent=sent + 1)

    def _age_group(self, key: str) -> int:
        import redis

        client = redis.Redis(port=self.redis.port)
        try:
            members = client.zrange(key, 0, -1)
            for member in members:
                client.zadd(key, {member: 1}, xx=True)  # type: ignore[type-var]
            return len(members)
        finally:
            client.close()

    async def test_7b_a_subscription_redis_dropped_is_resubscribed_with_the_pubsub_layer(self) -> None:
        a, b = self.servers()
        async with Crowd(self.recorder) as crowd:
            alice, bob = self.guests(2)
            crowd.keep(alice, [a.url])
            crowd.keep(bob, [b.url], ping_every=0)
            await crowd.all_connected()
            await alice.send("before")
            await eventually(lambda: len(bob.view) == 1, timeout=10, what="the first message")

            # Redis drops every subscriber connection, as its pub/sub output-buffer limit or a proxy's idle
            # timeout would, while the sockets stay open.
            killed = await asyncio.to_thread(self.redis.command, "CLIENT", "KILL", "TYPE", "pubsub")
            dropped_at = time.monotonic()
            load = asyncio.ensure_future(send_at_rate([alice], rate=5, seconds=8))
            await eventually(lambda: bob.live_since(dropped_at + 0.1) is not None, timeout=10, what="bob live")
            deaf_for = (bob.live_since(dropped_at + 0.1) or 0) - dropped_at
            sent = await load
            await self.assert_nothing_lost(crowd, [a, b])
        record(
            "Redis drops the subscriber connections (pub/sub layer)",
            subscribers_killed=killed.decode(),
            deaf_for_s=round(deaf_for, 2),
            sent=sent + 1,
        )


def _message(seq: int, **state: Any) -> dict[str, Any]:
    frame = {"type": "message", "room": ROOM, "seq": seq, "author": "alice", "body": f"m{seq}", "client_id": None}
    return {"reply_to": None, "edited_at": None, "deleted": False, "reactions": {}, "state_seq": seq, **frame, **state}


def _edit(seq: int, target: int, body: str) -> dict[str, Any]:
    return {"type": "edit", "seq": seq, "target": target, "body": body, "by": "alice", "edited_at": "2026-12-02T00:00Z"}


def _delete(seq: int, target: int) -> dict[str, Any]:
    return {"type": "delete", "seq": seq, "target": target, "by": "alice", "deleted_at": "2026-12-02T00:00Z"}


def _reaction(seq: int, target: int, user: str, *, on: bool = True) -> dict[str, Any]:
    return {"type": "reaction", "seq": seq, "target": target, "emoji": "\U0001f44d", "user": user, "on": on}


class FoldingTests(SimpleTestCase):
    """The test client's folding rule (docs/protocol.md, "Folding entries"), which the oracle's views rest on: here,
    not in the fault suite, so that `make test` checks it without servers."""

    def folded(self, *frames: dict[str, Any]) -> ChatClient:
        client = ChatClient(room=ROOM)
        for frame in frames:
            client._see(frame)
        return client

    def state(self, client: ChatClient, seq: int) -> tuple[Any, ...]:
        m = client.messages[seq]
        return (m.body, m.edited, m.deleted, m.reactions, m.state_seq)

    async def test_entries_fold_in_seq_order_whatever_order_they_arrive_in(self) -> None:
        client = self.folded(_reaction(3, 1, "bob"), _edit(2, 1, "new"), _reaction(4, 1, "bob", on=False), _message(1))
        self.assertEqual(self.state(client, 1), ("new", True, False, {}, 4))

    async def test_an_entry_above_a_hole_waits_for_the_hole(self) -> None:
        client = self.folded(_message(1), _reaction(3, 1, "bob"))
        self.assertEqual(self.state(client, 1), ("m1", False, False, {}, 1))
        client._see(_reaction(2, 1, "carol"))
        self.assertEqual(self.state(client, 1), ("m1", False, False, {"\U0001f44d": ["carol", "bob"]}, 3))

    async def test_an_entry_the_state_already_holds_is_not_applied_again(self) -> None:
        client = self.folded(_message(1, reactions={"\U0001f44d": ["bob"]}, state_seq=2), _reaction(2, 1, "bob"))
        self.assertEqual(self.state(client, 1), ("m1", False, False, {"\U0001f44d": ["bob"]}, 2))
        client._see(_reaction(2, 1, "bob"))  # a duplicate, from a history page
        self.assertEqual((client.duplicates, client.messages[1].reactions), (1, {"\U0001f44d": ["bob"]}))

    async def test_a_page_read_before_an_entry_arrived_does_not_undo_it(self) -> None:
        client = self.folded(_message(1), _edit(2, 1, "new"))
        client._see(_message(1))  # the state as of seq 1, from a page read before the edit was committed
        self.assertEqual((self.state(client, 1), client.older_states), (("new", True, False, {}, 2), 1))

    async def test_a_newer_state_replaces_the_one_held_and_entries_it_holds_are_skipped(self) -> None:
        client = self.folded(_message(1), _message(2))
        # From a page read after the two reactions, which come next.
        client._see(_message(1, reactions={"\U0001f44d": ["bob", "carol"]}, state_seq=4))
        client._see(_reaction(3, 1, "bob"))
        client._see(_reaction(4, 1, "carol"))
        self.assertEqual(self.state(client, 1), ("m1", False, False, {"\U0001f44d": ["bob", "carol"]}, 4))

    async def test_a_delete_empties_the_body_and_the_reactions(self) -> None:
        client = self.folded(_message(1), _reaction(2, 1, "bob"), _edit(3, 1, "new"), _delete(4, 1))
        self.assertEqual(self.state(client, 1), ("", True, True, {}, 4))

    async def test_a_refusal_takes_a_change_out_of_the_outbox_and_not_now_keeps_it(self) -> None:
        client = ChatClient(room=ROOM)
        gone, later = await client.react(1, "\U0001f44d"), await client.edit(1, "new")
        requests = deque([Request("react", gone, 0.0), Request("edit", later, 0.0)])
        client._answered({"type": "error", "code": "gone", "detail": ""}, requests)
        client._answered({"type": "error", "code": "unavailable", "detail": ""}, requests)
        self.assertEqual((client.refused, list(client.outbox)), ({gone: "gone"}, [later]))

    async def test_an_answer_that_does_not_fit_its_request_is_noted(self) -> None:
        client = ChatClient(room=ROOM)
        requests = deque([Request("history", None, 0.0)])
        client._answered({"type": "pong", "last_seq": 0}, requests)
        self.assertEqual(len(client.reply_mismatches), 1)


class ErasedBodyCheckTests(SimpleTestCase):
    """The oracle's erased-body check (chat.tests.oracle.check_erased) on a made-up log: it flags a body that a frame
    made after the delete carries, and spares one the server may have made before the delete was committed."""

    rows = [
        oracle.Row(seq=1, kind="message", client_id="m1", body="", author="alice", deleted=True, state_seq=3),
        oracle.Row(seq=2, kind="edit", client_id="e1", body="", author="alice", target=1),
        oracle.Row(seq=3, kind="delete", client_id="d1", body="", author="alice", target=1),
    ]

    def reader(self, *received: Received, acked_at: float = 10.0) -> ChatClient:
        client = ChatClient(room=ROOM)
        client.sent = {"m1": {"type": "message", "body": "secret"}, "e1": {"type": "edit", "body": "secret 2"}}
        client.acked_at = {"d1": acked_at}
        client.opened_at = [0.0, 20.0]
        client.received = list(received)
        return client

    def problems(self, client: ChatClient) -> list[str]:
        return oracle.check_erased(ROOM, self.rows, [client])[0]

    def test_a_backlog_on_a_socket_opened_after_the_ack_must_not_carry_an_erased_body(self) -> None:
        self.assertEqual(len(self.problems(self.reader(Received(21.0, 2, _message(1, body="secret 2"))))), 1)

    def test_a_page_asked_for_after_the_ack_must_not_carry_an_erased_body(self) -> None:
        page = {"type": "history", "before": 4, "messages": [_edit(2, 1, "secret 2")], "has_more": False}
        self.assertEqual(len(self.problems(self.reader(Received(12.0, 1, page, asked_at=11.0)))), 1)

    def test_a_frame_that_may_have_been_made_before_the_delete_is_spared(self) -> None:
        page = {"type": "history", "before": 4, "messages": [_edit(2, 1, "secret 2")], "has_more": False}
        live = Received(12.0, 1, _edit(2, 1, "secret 2"))  # in flight on a socket opened before the ack
        self.assertEqual(self.problems(self.reader(live, Received(12.0, 1, page, asked_at=9.0))), [])

    def test_a_body_left_in_the_database_is_a_problem(self) -> None:
        rows = [self.rows[0], dataclasses.replace(self.rows[1], body="secret 2"), self.rows[2]]
        self.assertEqual(len(oracle.check_erased(ROOM, rows, [self.reader()])[0]), 1)
