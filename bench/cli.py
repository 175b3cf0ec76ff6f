"""``python -m bench``: run the scenarios against each target in turn, save the figures, write the report.

One swarm of client processes serves every target; each target's server is started on a free loopback port,
measured, and stopped before the next, so they never compete for the two cores. Results are saved after every
scenario (``bench/results/<run>/results.json``), and the report is written from that file at the end, or later
with ``--report-only``.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import environment, profiling, report
from .scenarios import MIXED, Context, Rooms, SlowLoad, connect, join, slow, wait_for_quiet
from .servers import ROOT, TARGETS, External, Server, Target, export_tree, snapshot_tree
from .swarm import Swarm
from .worker import MESSAGE

ALL_SCENARIOS = ["connect", "join", "fanout", "mixed", "reads", "rooms", "ingest", "slow"]
# How often each client of the reads scenario sends ``read``: the room page's most.
READ_EVERY_SECONDS = 2.0


@dataclass
class Plan:
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    scenarios: list[str] = field(default_factory=lambda: list(ALL_SCENARIOS))
    clients: list[int] = field(default_factory=lambda: [50, 100, 250, 500])
    senders: int = 5
    mix: list[str] = field(default_factory=lambda: list(MIXED))  # the kinds of entry of the mixed fan-out, in turn
    window: int = 4
    duration: float = 4.0
    rate: float = 2.0
    rate_duration: float = 8.0
    ack_duration: float = 2.0
    heal_budget: float = 20.0
    repeats: int = 2  # saturation runs of the largest room, the best one kept: noise only ever slows a run
    connections: int = 500
    room_size: int = 10
    joins: int = 100
    rooms: int = 100
    room_members: int = 5
    room_rate: float = 1.0
    ingest_rooms: int = 10
    ingest_rate: float = 100.0
    slow_silent: list[int] = field(default_factory=lambda: [0, 5, 50])  # silent sockets per slow run
    slow_count: int = 4000
    slow_rate: float = 100.0
    profile: bool = True
    profile_targets: list[str] = field(
        default_factory=lambda: ["baseline", "chatsite-daphne", "chatsite-uvicorn", "chatsite-pg-redis"]
    )
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)


QUICK = {
    "targets": ["baseline", "chatsite-uvicorn"],
    "clients": [50, 200],
    "duration": 3.0,
    "rate_duration": 5.0,
    "ack_duration": 1.0,
    "heal_budget": 10.0,
    "connections": 200,
    "joins": 50,
    "rooms": 20,
    "profile": False,
    "repeats": 1,
    "slow_silent": [0, 5],
    # More than the ~1,450 messages (2.8 MB) the kernel's buffers took per silent socket here before its sends
    # stalled: with fewer, a silent socket holds nothing up.
    "slow_count": 2000,
}


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(runs, key=lambda run: run["deliveries_per_s"])
    best["repeats"] = [run["deliveries_per_s"] for run in runs]
    return best


def _profiled(ctx: Context, plan: Plan, run_dir: Path, name: str, measure: Any) -> dict[str, Any] | None:
    """One more run, ``measure()``, with py-spy sampling the server; None if this target is not profiled."""
    if not plan.profile or ctx.server.target.name not in plan.profile_targets or ctx.server.process is None:
        return None
    raw = run_dir / f"profile-{ctx.server.target.name}-{name}.raw"
    seconds = round(plan.duration + 1)
    wait_for_quiet(ctx)  # before py-spy starts: its seconds are for the run (which then does not wait again)
    spy = profiling.record(ctx.server.process.pid, seconds, raw, run_dir / "py-spy.log")
    try:
        run = measure()
        spy.wait(30)
    finally:
        if spy.poll() is None:
            spy.kill()
    if not raw.exists():
        return None
    return {
        "summary": profiling.summarize(raw),
        "run": run,
        "raw": str(raw.relative_to(ROOT)),
        "seconds": seconds,
        "rate": profiling.RATE,
    }


def _fanout(
    ctx: Context, plan: Plan, target: Target, run_dir: Path, scenario: str = "fanout", mix: tuple[str, ...] = (MESSAGE,)
) -> dict[str, Any]:
    """One room grown to each size, a saturation run at each, then a fixed-rate run and (chatsite) an ack-window run
    at the largest; its senders send the kinds of entry ``mix`` lists, in turn. The message-only fan-out is the one
    profiled."""
    rooms = Rooms(ctx, scenario, 1, plan.senders, mix)
    runs, largest = [], max(plan.clients)
    try:
        for size in plan.clients:
            rooms.grow(size)
            tries = plan.repeats if size == largest else 1
            runs.append(
                _best([rooms.run(label="saturation", duration=plan.duration, window=plan.window) for _ in range(tries)])
            )
        runs.append(rooms.run(label=f"{plan.rate:g} msg/s", duration=plan.rate_duration, rate=plan.rate))
        profile = None
        if scenario == "fanout":
            profile = _profiled(
                ctx,
                plan,
                run_dir,
                scenario,
                lambda: rooms.run(
                    label="saturation, under py-spy", duration=plan.duration + 1, window=plan.window, quiet=False
                ),
            )
        if target.persists:
            runs.append(
                rooms.run(
                    label="saturation, ack window",
                    duration=plan.ack_duration,
                    window=plan.window,
                    window_on="ack",
                    heal_budget=plan.heal_budget,
                )
            )
    finally:
        rooms.close()
    return {"runs": runs, "profile": profile}


def _reads(ctx: Context, plan: Plan) -> dict[str, Any]:
    """The message-only fan-out at the largest size, with every client also sending ``read`` every
    READ_EVERY_SECONDS with the highest seq it has: what read markers cost the room. Compared with the
    baseline's plain fan-out (a bare broadcast has no read markers to keep)."""
    rooms = Rooms(ctx, "reads", 1, plan.senders)
    try:
        rooms.grow(max(plan.clients))
        saturation = [
            rooms.run(label="saturation", duration=plan.duration, window=plan.window, read_every=READ_EVERY_SECONDS)
            for _ in range(plan.repeats)
        ]
        runs = [
            _best(saturation),
            rooms.run(
                label=f"{plan.rate:g} msg/s",
                duration=plan.rate_duration,
                rate=plan.rate,
                read_every=READ_EVERY_SECONDS,
            ),
        ]
    finally:
        rooms.close()
    return {"runs": runs, "read_every": READ_EVERY_SECONDS}


def _rooms(ctx: Context, plan: Plan) -> dict[str, Any]:
    rooms = Rooms(ctx, "rooms", plan.rooms, 1)
    try:
        rooms.grow(plan.room_members)
        runs = [
            rooms.run(label=f"{plan.room_rate:g} msg/s per room", duration=plan.rate_duration, rate=plan.room_rate),
            rooms.run(label="saturation", duration=plan.duration, window=2),
        ]
    finally:
        rooms.close()
    return {"runs": runs}


def _ingest(ctx: Context, plan: Plan, run_dir: Path) -> dict[str, Any]:
    """Senders alone in their rooms, so the figures are the write path's: store, ack, and one delivery."""
    rooms = Rooms(ctx, "ingest", plan.ingest_rooms, 1)
    try:
        rooms.grow(1)
        runs = [
            rooms.run(label="saturation", duration=plan.duration, window=plan.window, window_on="ack"),
            rooms.run(
                label=f"{plan.ingest_rate:g} msg/s",
                duration=plan.rate_duration,
                rate=plan.ingest_rate / plan.ingest_rooms,
            ),
        ]
        profile = _profiled(
            ctx,
            plan,
            run_dir,
            "ingest",
            lambda: rooms.run(
                label="saturation, under py-spy",
                duration=plan.duration + 1,
                window=plan.window,
                window_on="ack",
                quiet=False,
            ),
        )
    finally:
        rooms.close()
    acked = sum(run["acked"] for run in runs) + (profile["run"]["acked"] if profile else 0)
    return {"runs": runs, "profile": profile, "acked": acked, "stored": ctx.server.count_messages(f"ingest-{ctx.tag}-")}


def _run_target(
    server: Server, swarm: Swarm, plan: Plan, run_dir: Path, save: Any, entry: dict[str, Any]
) -> dict[str, Any]:
    """Run the plan's scenarios against one server, each saved into ``entry`` as it ends: a scenario that fails
    costs the target that scenario and the ones after it, not the ones it already finished."""
    target = server.target
    entry.update(
        label=target.label,
        scenarios={},
        command=server.command() if server.process is not None or target.url is None else None,
    )
    ctx = Context(server, swarm, tag=secrets.token_hex(3))
    wanted = [name for name in plan.scenarios if name in (target.scenarios or ALL_SCENARIOS)]
    if not target.persists:  # no read markers to measure
        wanted = [name for name in wanted if name != "reads"]
    for name in wanted:
        started = time.monotonic()
        print(f"  {target.name}: {name} ...", flush=True)
        if name == "connect":
            result: dict[str, Any] = connect(ctx, connections=plan.connections, room_size=plan.room_size)
        elif name == "join":
            result = join(ctx, joins=plan.joins)
        elif name == "fanout":
            result = _fanout(ctx, plan, target, run_dir)
        elif name == "mixed":
            result = _fanout(ctx, plan, target, run_dir, "mixed", tuple(plan.mix))
        elif name == "reads":
            result = _reads(ctx, plan)
        elif name == "rooms":
            result = _rooms(ctx, plan)
        elif name == "slow":
            result = slow(ctx, SlowLoad(count=plan.slow_count, rate=plan.slow_rate), plan.slow_silent)
        else:
            result = _ingest(ctx, plan, run_dir)
        result["seconds"] = time.monotonic() - started
        entry["scenarios"][name] = result
        save()
        print(f"  {target.name}: {name} done in {result['seconds']:.0f} s", flush=True)
    return entry


def _parse(argv: list[str]) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 5-minute smoke run: baseline and chatsite-uvicorn")
    parser.add_argument("--targets", help=f"comma-separated, from {', '.join(TARGETS)}")
    parser.add_argument("--scenarios", help=f"comma-separated, from {', '.join(ALL_SCENARIOS)}")
    parser.add_argument("--clients", help="fan-out room sizes, comma-separated (default 50,100,250,500)")
    parser.add_argument("--senders", type=int, help="senders in the fan-out room (default 5)")
    parser.add_argument("--window", type=int, help="messages in flight per sender at saturation (default 4)")
    parser.add_argument("--duration", type=float, help="seconds per saturation run (default 4)")
    parser.add_argument("--rate", type=float, help="messages/s into the fan-out room for the fixed-rate run (2)")
    parser.add_argument("--rate-duration", type=float, help="seconds per fixed-rate run (default 8)")
    parser.add_argument("--connections", type=int, help="idle connections in the connect scenario (default 500)")
    parser.add_argument("--joins", type=int, help="joins timed in the join scenario (default 100)")
    parser.add_argument("--rooms", type=int, help="rooms in the rooms scenario (default 100, of 5 clients)")
    parser.add_argument("--slow-silent", help="silent sockets per slow run, comma-separated (default 0,5,50)")
    parser.add_argument("--slow-count", type=int, help="messages the slow scenario's sender posts (default 4000)")
    parser.add_argument("--slow-rate", type=float, help="the slow scenario's messages/s (default 100)")
    parser.add_argument("--workers", type=int, help="load-generator processes (default 2)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy runs")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for chatsite's server, e.g. DATABASE_CONN_MAX_AGE=60 (repeatable)",
    )
    parser.add_argument(
        "--chatsite-dir", metavar="PATH", help="run chatsite's targets from this folder (a patched copy, say)"
    )
    parser.add_argument(
        "--chatsite-ref",
        metavar="GIT_REF",
        help="run chatsite's targets from this commit (git archive into a temporary folder)",
    )
    parser.add_argument("--url", help="benchmark a running deployment instead (ws[s]://host:port); starts nothing")
    parser.add_argument("--origin", help="Origin header for --url (default: its http[s] URL)")
    parser.add_argument("--server-pid", type=int, help="with --url on this machine: the server PID to watch")
    parser.add_argument("--output", default="docs/performance.md", help="the report (default docs/performance.md)")
    parser.add_argument("--report-only", metavar="RESULTS_JSON", help="only write the report from saved results")
    args = parser.parse_args(argv)
    plan = Plan(**QUICK) if args.quick else Plan()  # type: ignore[arg-type]
    numbers = ("senders", "window", "duration", "rate", "rate_duration", "connections", "joins", "rooms", "workers")
    for name in (*numbers, "slow_count", "slow_rate"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    if args.targets:
        plan.targets = [name.strip() for name in args.targets.split(",") if name.strip()]
        unknown = set(plan.targets) - set(TARGETS)
        if unknown:
            parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.scenarios:
        plan.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
        if set(plan.scenarios) - set(ALL_SCENARIOS):
            parser.error(f"scenarios are {', '.join(ALL_SCENARIOS)}")
    if args.clients:
        plan.clients = sorted(int(size) for size in args.clients.split(","))
    if args.slow_silent:
        plan.slow_silent = sorted({0, *(int(count) for count in args.slow_silent.split(","))})
    if args.no_profile:
        plan.profile = False
    plan.env = dict(item.split("=", 1) for item in args.env)
    if args.url:
        plan.targets = ["external"]
    return args, plan


def _resummarize(results: dict[str, Any]) -> None:
    """Sum up the saved py-spy stacks again, so that a rewritten report uses the current stages."""
    for target in results["targets"].values():
        for scenario in (target.get("scenarios") or {}).values():
            profile = scenario.get("profile") if isinstance(scenario, dict) else None
            if profile and (ROOT / profile["raw"]).exists():
                profile["summary"] = profiling.summarize(ROOT / profile["raw"])


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, plan = _parse(argv)
    output = (ROOT / args.output).resolve()
    if args.report_only:
        results = json.loads(Path(args.report_only).read_text())
        _resummarize(results)
        report.write(results, output, plots_from=Path(args.report_only).resolve())
        print(f"wrote {output}")
        return 0

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    run_dir = ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m bench", *argv])
    if os.environ.get("MAKELEVEL"):
        command = f"make bench{' BENCH_ARGS=' + repr(' '.join(argv)) if argv else ''}"
    results: dict[str, Any] = {
        "meta": environment.describe(command, args.chatsite_ref),
        "plan": asdict(plan),
        "targets": {},
    }
    # Others may commit while a run goes on: every chatsite server of the run runs one copy of the code.
    if args.chatsite_dir:
        source = Path(args.chatsite_dir).resolve()
    elif args.chatsite_ref:
        source = export_tree(args.chatsite_ref, run_dir / "chatsite")
    else:
        source = snapshot_tree(run_dir / "chatsite")
    path = run_dir / "results.json"

    def save() -> None:
        path.write_text(json.dumps(results, indent=1))

    print(f"bench: {', '.join(plan.targets)}; results in {path.relative_to(ROOT)}", flush=True)
    swarm = Swarm(plan.workers)
    try:
        for name in plan.targets:
            if name == "external":
                server: Server = External(args.url, args.origin, args.server_pid, run_dir)
            else:
                server = Server(TARGETS[name], run_dir, source)
                if server.target.app == "chatsite":
                    server.env.update(plan.env)
            started = time.monotonic()
            print(f"{name}: {server.target.label}", flush=True)
            try:
                entry: dict[str, Any] = {"label": server.target.label, "scenarios": {}}
                results["targets"][name] = entry
                server.start()
                _run_target(server, swarm, plan, run_dir, save, entry)
            except Exception:
                results["targets"][name]["error"] = traceback.format_exc()
                print(f"{name} failed; see {path.relative_to(ROOT)} and {server.log_path}", file=sys.stderr)
                # A worker that failed mid-command may hold half a run: start the next target with fresh ones.
                swarm.close()
                swarm = Swarm(plan.workers)
            finally:
                server.stop()
            results["targets"][name]["seconds"] = time.monotonic() - started
            save()
    finally:
        swarm.close()
    results["meta"]["seconds"] = sum(t.get("seconds", 0) for t in results["targets"].values())
    save()
    report.write(results, output, plots_from=path)
    print(f"wrote {output} from {path.relative_to(ROOT)}")
    return 0
