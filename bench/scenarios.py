"""The scenarios, each run against one server by the swarm of client processes, each returning one result.

``traffic`` is fanout, mixed, rooms and ingest alike: rooms of members, some of them senders, sending at a fixed
rate or as fast as a window of unreleased entries allows (saturation); then a drain, then (for chatsite) gap
healing by ``history``. ``connect`` and ``join`` time connections instead. ``slow`` puts sockets that stopped
reading into a room and measures what they cost its one active reader. Rooms are named per run, so they start
empty.
"""

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .servers import Server, machine_busy_seconds, redis_cpu_seconds
from .stats import Histogram, quantiles_ms
from .swarm import Swarm
from .worker import EDIT, MESSAGE, REACT

# The mixed fan-out's entries, in the order each sender cycles through them: 7 messages, 2 reactions to recent
# messages of the room and 1 edit of one of its own messages in every 10.
MIXED = (MESSAGE, REACT, MESSAGE, MESSAGE, EDIT, MESSAGE, MESSAGE, REACT, MESSAGE, MESSAGE)


@dataclass
class Context:
    server: Server
    swarm: Swarm
    tag: str  # makes this run's room names unique
    timeout: float = 120  # for any one command to the swarm


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[index::parts] for index in range(parts)]


def _shares(total: int, parts: int) -> list[int]:
    """``total`` things dealt out to ``parts`` workers: how many each gets."""
    return [len(part) for part in _split(list(range(total)), parts)]


def _sum_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return dict(total)


def _open(
    ctx: Context, links: list[tuple[str, int | None]], concurrency: int = 32, max_queue: int | None = 16
) -> dict[str, Any]:
    """Open ``links`` (room, sender id or None), dealt out to the workers in turn: link i goes to worker
    i mod workers."""
    commands = [
        {
            "op": "open",
            "url": ctx.server.url,
            "origin": ctx.server.origin,
            "links": share,
            "concurrency": concurrency,
            "timeout": 60,
            "max_queue": max_queue,
        }
        for share in _split(links, len(ctx.swarm))
    ]
    answers = ctx.swarm.call(commands, ctx.timeout + len(links) / 10)
    return {
        "opened": sum(a["opened"] for a in answers),
        "failures": _sum_counts(a["failures"] for a in answers),
        "durations": [d for a in answers for d in a["durations"]],
        "seconds": max(a["finished"] for a in answers) - min(a["started"] for a in answers),
    }


def _close(ctx: Context) -> None:
    ctx.swarm.call_all({"op": "close", "timeout": 5}, ctx.timeout)
    ctx.server.settle(timeout=90)


Marks = tuple[float, float, float, float | None, float]


def _marks(ctx: Context) -> Marks:
    return (time.time(), ctx.server.cpu_seconds(), ctx.swarm.cpu_seconds(), redis_cpu_seconds(), machine_busy_seconds())


def _cpu(ctx: Context, before: Marks, after: Marks) -> dict[str, float | None]:
    """Cores used between two marks by the server (None if not watched), the load generator, Redis, and the rest
    of the machine: other processes, and the kernel's loopback work nobody is billed for."""
    span = after[0] - before[0]
    server = (after[1] - before[1]) / span if ctx.server.watched else None
    loadgen = (after[2] - before[2]) / span
    redis = None if before[3] is None or after[3] is None else (after[3] - before[3]) / span
    machine = (after[4] - before[4]) / span
    return {
        "server": server,
        "loadgen": loadgen,
        "redis": redis,
        "other": machine - (server or 0) - loadgen - (redis or 0),
    }


def wait_for_quiet(ctx: Context, *, below: float = 0.3, span: float = 0.5, timeout: float = 10) -> float:
    """Wait until the rest of the machine (not the server, the clients or Redis) uses less than ``below`` of a core
    over ``span`` s, for at most ``timeout`` s: a run then starts in a quiet moment if there is one. Returns the
    other processes' CPU (cores) over the last span."""
    started, other = time.monotonic(), 0.0
    while time.monotonic() - started < timeout:
        before = _marks(ctx)
        time.sleep(span)
        after = _marks(ctx)
        ours = sum(b - a for a, b in zip(before[1:3], after[1:3], strict=True))
        ours += (after[3] or 0) - (before[3] or 0)
        other = max(0.0, (after[4] - before[4] - ours) / (after[0] - before[0]))
        if other < below:
            break
    return other


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


class Rooms:
    """Rooms of connected clients, held open across several runs (a room can grow between runs).

    The senders join after the first receivers and before the room grows, so each sender's own copy of a message
    comes early in a fan-out: the window it releases bounds how much is queued, not how long a broadcast takes.
    Each sender sends entries of the kinds ``mix`` lists, in turn (``bench.worker``).
    """

    def __init__(
        self, ctx: Context, scenario: str, rooms: int, senders: int, mix: tuple[str, ...] = (MESSAGE,)
    ) -> None:
        self.ctx = ctx
        self.scenario = scenario
        self.mix = mix
        self.names = [f"{scenario}-{ctx.tag}-{index}" for index in range(rooms)]
        self.senders = senders
        self.members = 0
        self.connections = 0
        self.open_s = 0.0
        self.final: dict[str, int] = {}  # each room's last acked seq, over all runs so far

    def grow(self, members: int) -> None:
        """Add receivers (and, the first time, the senders) until each room has ``members`` clients."""
        started = time.monotonic()
        first = self.members == 0
        receivers = max(0, members - self.senders) - max(0, self.members - self.senders)
        links: list[tuple[str, int | None]] = [(name, None) for name in self.names for _ in range(receivers)]
        self.connections += _open(self.ctx, links)["opened"]
        if first:
            senders: list[tuple[str, int | None]] = [
                (name, room * self.senders + index)
                for room, name in enumerate(self.names)
                for index in range(self.senders)
            ]
            self.connections += _open(self.ctx, senders)["opened"]
        self.members = members
        self.ctx.server.settle(timeout=120)
        self.open_s += time.monotonic() - started

    def close(self) -> float:
        started = time.monotonic()
        _close(self.ctx)
        return time.monotonic() - started

    def run(
        self,
        *,
        label: str,
        duration: float,
        warmup: float = 1.0,
        rate: float = 0.0,
        window: int = 0,
        window_on: str = "echo",
        drain: float = 30,
        heal: bool | None = None,
        heal_budget: float = 30,
        quiet: bool = True,
        read_every: float = 0.0,
    ) -> dict[str, Any]:
        """Send ``rate`` messages/s per room, or with ``window`` messages in flight per sender, for ``duration`` s
        (every client also sending ``read`` every ``read_every`` s, if given); drain; heal the gaps by ``history``
        (by default when the server keeps a log: chatsite); return the figures of the run."""
        ctx, started = self.ctx, time.monotonic()
        if heal is None:
            heal = ctx.server.target.persists
        warmup = min(warmup, duration / 4)
        other_before = wait_for_quiet(ctx) if quiet else 0.0
        start = time.time() + 0.5
        run = {
            "op": "run",
            "start": start,
            "duration": duration,
            "warmup": warmup,
            "rate": rate / self.senders if rate else 0.0,
            "window": window,
            "window_on": window_on,
            "spread": len(self.names) * self.senders,  # every sender of the run its own phase
            "stale": 2.0,
            "ack_wait": 10.0,
            "base_seq": dict(self.final),
            "mix": list(self.mix),
            "read_every": read_every,
        }
        ctx.swarm.send([dict(run) for _ in range(len(ctx.swarm))])
        _sleep_until(start + warmup)
        marks = [_marks(ctx)]
        rss = ctx.server.rss_bytes()
        _sleep_until(start + duration)
        marks.append(_marks(ctx))
        rss = max(rss, ctx.server.rss_bytes())
        runs = ctx.swarm.gather(len(ctx.swarm), ctx.timeout)

        stamps: dict[str, dict[int, int]] = {}  # every worker's reactions' send times, for the others to time them
        for answer in runs:
            for room, seq in answer["final_seq"].items():
                self.final[room] = max(self.final.get(room, 0), seq)
            for room, sent in answer["stamps"].items():
                stamps.setdefault(room, {}).update(sent)
        final = dict(self.final)
        drained = _drain(ctx, final, drain)
        healing = {"missing": 0, "healed": 0, "requests": 0, "unhealed_in_budget": 0}
        if heal and drained["expected"] > drained["received"]:
            command = {"op": "heal", "final_seq": final, "budget": heal_budget, "concurrency": 50}
            for answer in ctx.swarm.call_all(command, ctx.timeout + heal_budget):
                for key in healing:
                    healing[key] += answer[key]
        stats = ctx.swarm.call_all({"op": "stats", "stamps": stamps}, ctx.timeout)
        ctx.server.settle(timeout=120)

        span = marks[1][0] - marks[0][0]
        delivered = sum(s["delivered_in_window"] for s in stats)
        server_cpu = marks[1][1] - marks[0][1]
        cpu = _cpu(ctx, marks[0], marks[1])
        latency = Histogram.merged(Histogram.from_dict(s["latency"]) for s in stats)
        ack_latency = Histogram.merged(Histogram.from_dict(s["ack_latency"]) for s in stats)
        watched = ctx.server.watched
        return {
            "scenario": self.scenario,
            "label": label,
            "params": {
                "rooms": len(self.names),
                "members": self.members,
                "senders": self.senders,
                "duration": duration,
                "warmup": warmup,
                "rate": rate,
                "window": window,
                "window_on": window_on,
                "read_every": read_every,
            },
            "connections": self.connections,
            "sent": sum(r["sent"] for r in runs),
            "kinds": _sum_counts(r["kinds"] for r in runs),  # entries sent, by kind
            "reads_sent": sum(r.get("reads_sent", 0) for r in runs),
            "reads_per_s": sum(r.get("reads_sent", 0) for r in runs) / duration,
            "acked": sum(r["acked"] for r in runs),
            "unacked": sum(r["unacked"] for r in runs),
            "msgs_per_s": sum(s["acked_in_window"] for s in stats) / span,
            "expected": drained["expected"],
            "received": drained["received"],
            "lost": max(0, drained["expected"] - drained["received"]),
            "drain_s": drained["seconds"],
            "duplicates": sum(s["duplicates"] for s in stats),
            "late": sum(s["late"] for s in stats),
            "healing": healing,
            "deliveries_per_s": delivered / span,
            "latency_ms": latency.summary_ms(),
            "latency_hist": latency.to_dict(),
            "ack_ms": ack_latency.summary_ms(),
            "server_cpu": cpu["server"],
            "server_us_per_delivery": server_cpu / delivered * 1e6 if delivered and watched else None,
            "server_rss_mb": rss / 2**20 if watched else None,
            "loadgen_cpu": cpu["loadgen"],
            "redis_cpu": cpu["redis"],
            "other_cpu_before": other_before,
            "other_cpu": cpu["other"],
            "errors": _sum_counts(s["errors"] for s in stats),
            # Sockets the server closed during the run, by close code (4008: too slow).
            "closed": _sum_counts(s["closed_codes"] for s in stats),
            "run_s": time.monotonic() - started,
        }


def _drain(ctx: Context, final: dict[str, int], timeout: float, stall: float = 3.0) -> dict[str, Any]:
    """Wait until every expected delivery arrived, nothing arrived for ``stall`` s, or ``timeout`` s passed."""
    started = time.monotonic()
    last_change, received, expected = started, -1, 0
    while time.monotonic() - started < timeout:
        answers = ctx.swarm.call_all({"op": "progress", "final_seq": final}, ctx.timeout)
        now_received = sum(a["received"] for a in answers)
        expected = sum(a["expected"] for a in answers)
        if now_received >= expected:
            received = now_received
            break
        if now_received != received:
            received, last_change = now_received, time.monotonic()
        elif time.monotonic() - last_change > stall:
            break
        time.sleep(0.2)
    return {"expected": expected, "received": received, "seconds": time.monotonic() - started}


def connect(ctx: Context, *, connections: int, room_size: int, concurrency: int = 32) -> dict[str, Any]:
    """Open ``connections`` idle sockets in rooms of ``room_size``: connects/s, and server RSS per connection."""
    # One socket opened and closed first, so that what a process sets up once, on its first connection, is not
    # counted per connection: for chatsite about 1.2 MiB (the database thread's malloc arena, libsqlite3's code
    # pages, lazy imports), which over 500 connections reads as 2.5 KiB each. The baseline has next to none.
    _open(ctx, [(f"connect-{ctx.tag}-warm", None)])
    _close(ctx)
    ctx.server.settle(timeout=60)
    wait_for_quiet(ctx)
    rss_before = ctx.server.rss_bytes()
    cpu_before = ctx.server.cpu_seconds()
    links: list[tuple[str, int | None]] = [
        (f"connect-{ctx.tag}-{index // room_size}", None) for index in range(connections)
    ]
    opened = _open(ctx, links, concurrency=concurrency)
    cpu_open = ctx.server.cpu_seconds() - cpu_before
    ctx.server.settle(timeout=120)
    rss_after = ctx.server.rss_bytes()
    _close(ctx)
    count, watched = opened["opened"], ctx.server.watched
    return {
        "scenario": "connect",
        "params": {"connections": connections, "room_size": room_size, "concurrency": concurrency},
        "connections": opened["opened"],
        "failures": opened["failures"],
        "connects_per_s": opened["opened"] / opened["seconds"] if opened["seconds"] else None,
        "open_ms": quantiles_ms(opened["durations"]),
        "server_cpu_ms_per_connect": cpu_open / count * 1000 if count and watched else None,
        "server_rss_mb_before": rss_before / 2**20 if watched else None,
        "server_rss_mb_after": rss_after / 2**20 if watched else None,
        "rss_kib_per_connection": (rss_after - rss_before) / 1024 / count if count and watched else None,
    }


def join(ctx: Context, *, joins: int, backlog: int = 60, concurrency: int = 4) -> dict[str, Any]:
    """Time from opening a socket to its hello, and to the last of a 50-message backlog, in a room with history."""
    room = f"join-{ctx.tag}"
    ctx.swarm.call(
        [
            {
                "op": "seed",
                "url": ctx.server.url,
                "origin": ctx.server.origin,
                "room": room,
                "count": backlog,
                "timeout": 30,
            }
        ],
        ctx.timeout,
    )
    ctx.server.settle(timeout=60)
    wait_for_quiet(ctx)
    commands = [
        {
            "op": "join",
            "url": ctx.server.url,
            "origin": ctx.server.origin,
            "room": room,
            "joins": share,
            "concurrency": concurrency,
            "timeout": 30,
        }
        for share in _shares(joins, len(ctx.swarm))
    ]
    started = time.monotonic()
    answers = ctx.swarm.call(commands, ctx.timeout + joins)
    seconds = time.monotonic() - started
    failures = _sum_counts(a["failures"] for a in answers)
    ctx.server.settle(timeout=60)
    done = sum(len(a["backlog"]) for a in answers)
    return {
        "scenario": "join",
        "params": {"joins": joins, "backlog": backlog, "concurrency": concurrency * len(ctx.swarm)},
        "connections": done,
        "failures": failures,
        "joins_per_s": done / seconds,
        "hello_ms": quantiles_ms([d for a in answers for d in a["hello"]]),
        "backlog_ms": quantiles_ms([d for a in answers for d in a["backlog"]]),
        "close_ms": quantiles_ms([d for a in answers for d in a["close"]]),
    }


@dataclass
class SlowLoad:
    """The slow-reader load: one sender posting ``count`` messages of ``body_bytes`` at ``rate`` per second into a
    room that holds one reader and some silent sockets (``bench.silent``) of a ``rcvbuf``-byte receive buffer."""

    count: int = 4000
    rate: float = 100.0
    body_bytes: int = 1800
    rcvbuf: int = 4096
    wait: float = 30.0  # seconds after the last send that the reader may take to have every message
    catch_up: float = 90.0  # seconds the silent sockets, read again, may take to end


def slow(ctx: Context, load: SlowLoad, silent: list[int]) -> dict[str, Any]:
    """For each number of silent sockets (0 first: the reference), a fresh room and one run of the load."""
    if len(ctx.swarm) < 2:
        # The reader's figures are worker 0's: the sender (which reads its own copies too) needs a process apart.
        raise ValueError("the slow scenario needs --workers 2 or more")
    return {"runs": [_slow_run(ctx, load, count) for count in sorted({0, *silent})]}


def _open_silent(ctx: Context, room: str, count: int, rcvbuf: int) -> dict[str, Any]:
    commands = [
        {
            "op": "silent_open",
            "url": ctx.server.url,
            "origin": ctx.server.origin,
            "room": room,
            "count": share,
            "rcvbuf": rcvbuf,
            "timeout": 30,
        }
        for share in _shares(count, len(ctx.swarm))
    ]
    answers = ctx.swarm.call(commands, ctx.timeout)
    return {
        "opened": sum(a["opened"] for a in answers),
        "failures": _sum_counts(a["failures"] for a in answers),
        "rcvbuf": max((a["rcvbuf"] or 0 for a in answers), default=0) or None,
    }


def _peak_rss_until(ctx: Context, moment: float) -> int:
    """Sleep until ``moment`` (wall clock), reading the server's RSS every second; the highest seen."""
    peak = ctx.server.rss_bytes()
    while time.time() < moment:
        time.sleep(min(1.0, max(0.0, moment - time.time())))
        peak = max(peak, ctx.server.rss_bytes())
    return peak


def _wait_for_reader(ctx: Context, sent: int, final: dict[str, int], until: float) -> tuple[dict[str, Any], int]:
    """Poll the reader (worker 0) until it has ``sent`` messages or ``until`` (wall clock) passes; its progress
    then, and the server's highest RSS meanwhile."""
    peak = 0
    while True:
        progress = ctx.swarm.call([{"op": "progress", "final_seq": final}], ctx.timeout)[0]
        peak = max(peak, ctx.server.rss_bytes())
        if progress["received"] >= sent or time.time() >= until:
            return progress, peak
        time.sleep(0.2)


def _silent_ends(ctx: Context, through: int, timeout: float) -> list[dict[str, Any]]:
    command = {"op": "silent_catch_up", "through": through, "timeout": timeout}
    return [end for answer in ctx.swarm.call_all(command, ctx.timeout + timeout) for end in answer]


def _slow_run(ctx: Context, load: SlowLoad, count: int) -> dict[str, Any]:
    """``count`` silent sockets join a fresh room first, then the reader (worker 0) and the sender (worker 1);
    the load; the reader's wait; then each silent socket is read again until it ends."""
    started, room = time.monotonic(), f"slow-{ctx.tag}-{count}"
    try:
        silent = _open_silent(ctx, room, count, load.rcvbuf)
        # An unbounded queue: the reader must never look slow to the server itself, however busy its worker.
        opened = _open(ctx, [(room, None), (room, 0)], max_queue=None)
        ctx.server.settle(timeout=60)
        figures = _slow_load(ctx, load, room)
        ends = _silent_ends(ctx, figures["final_seq"], load.catch_up)
    finally:
        _close(ctx)
    tally = Counter(end["end"] for end in ends)
    if count > silent["opened"]:
        tally["not opened"] = count - silent["opened"]
    read = [end["read"] for end in ends]
    return {
        "scenario": "slow",
        "label": f"{count} silent",
        "params": {**asdict(load), "silent": count, "rcvbuf_kernel": silent["rcvbuf"]},
        "connections": opened["opened"] + silent["opened"],
        "failures": _sum_counts([opened["failures"], silent["failures"]]),
        **figures,
        "silent": {
            "ends": dict(tally),
            # A close frame's reason, by end (one of each): "keepalive ping timeout" is uvicorn's, not chatsite's.
            "reasons": {end["end"]: end["reason"] for end in ends if end["reason"]},
            "read_min": min(read, default=None),
            "read_max": max(read, default=None),
            "seconds_max": max((end["seconds"] for end in ends), default=None),
            "sockets": ends,  # each one's end, messages read, highest seq read in order, seconds to its end
        },
        "run_s": time.monotonic() - started,
    }


def _send_load(ctx: Context, load: SlowLoad) -> tuple[list[dict[str, Any]], dict[str, float | None], int]:
    """The sender's run, sent to every worker (the reader's takes its latency window from it); the workers'
    answers, the CPU while the sender sent, and the server's highest RSS meanwhile."""
    start, sending = time.time() + 0.5, load.count / load.rate
    run = {
        "op": "run",
        "start": start,
        "duration": sending + 1,  # the count ends the sending; the extra second keeps a late last send timed
        "warmup": 0.0,
        "rate": load.rate,
        "window": 0,
        "window_on": "echo",
        "spread": 1,
        "stale": 2.0,
        "ack_wait": 10.0,
        "base_seq": {},
        "count": load.count,
        "body_bytes": load.body_bytes,
    }
    ctx.swarm.send([dict(run) for _ in range(len(ctx.swarm))])
    _sleep_until(start)
    before = _marks(ctx)
    peak = _peak_rss_until(ctx, start + sending)
    cpu = _cpu(ctx, before, _marks(ctx))
    return ctx.swarm.gather(len(ctx.swarm), ctx.timeout), cpu, peak


def _slow_load(ctx: Context, load: SlowLoad, room: str) -> dict[str, Any]:
    """The sender's ``load.count`` messages and the reader's figures, up to ``load.wait`` s after the last send."""
    other_before = wait_for_quiet(ctx)
    rss_before = ctx.server.rss_bytes()
    answers, cpu, peak = _send_load(ctx, load)
    sent, last_sent = sum(a["sent"] for a in answers), max(a["last_sent"] for a in answers)
    final = max((a["final_seq"].get(room, 0) for a in answers), default=0)
    progress, waited_peak = _wait_for_reader(ctx, sent, {room: final}, last_sent + load.wait)
    stats = ctx.swarm.call_all({"op": "stats"}, ctx.timeout)
    reader, latency = stats[0], Histogram.from_dict(stats[0]["latency"])
    missing = max(0, sent - progress["received"])
    # A message the reader never got is later than the wait: each counts as that long, a lower bound, so that
    # the percentiles are not read off the lucky messages alone.
    waited_us = (time.time() - last_sent) * 1e6
    for _ in range(missing):
        latency.add(waited_us)
    ack = Histogram.merged(Histogram.from_dict(s["ack_latency"]) for s in stats[1:])
    peak = max(peak, waited_peak)
    watched = ctx.server.watched
    return {
        "sent": sent,
        "acked": sum(a["acked"] for a in answers),
        "final_seq": final,
        "expected": progress["expected"],
        "received": progress["received"],
        "lost": max(0, progress["expected"] - progress["received"]),
        "missing": missing,  # also in latency_ms, each as long as the wait: a lower bound
        "duplicates": reader["duplicates"],
        # When the reader's last new message came, after the last send: how long the room was held up at the end.
        "complete_s": None if missing else progress["last_at"] - last_sent,
        "latency_ms": latency.summary_ms(),
        "latency_hist": latency.to_dict(),
        "ack_ms": ack.summary_ms(),
        "server_rss_mb_before": rss_before / 2**20 if watched else None,
        "server_rss_mb_peak": peak / 2**20 if watched else None,
        "rss_growth_mb": (peak - rss_before) / 2**20 if watched else None,
        "server_cpu": cpu["server"],
        "loadgen_cpu": cpu["loadgen"],
        "other_cpu_before": other_before,
        "other_cpu": cpu["other"],
        "errors": _sum_counts(s["errors"] for s in stats),
        "closed": _sum_counts(s["closed_codes"] for s in stats),  # the reader's and the sender's, by close code
    }
