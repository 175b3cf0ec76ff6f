"""docs/performance.md from one run's results: the targets, a table per scenario, the plots and the profiles."""

from collections import Counter
from pathlib import Path
from typing import Any

from . import analysis, checks, plots
from .markdown import NONE, TIMES, millis, number, table
from .servers import ROOT, TARGETS
from .worker import REACTIONS, RECENT


def _runs(results: dict[str, Any], scenario: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, target in results["targets"].items():
        entry = (target.get("scenarios") or {}).get(scenario)
        for run in (entry or {}).get("runs", []):
            found.append((name, run))
    return found


# A scenario the baseline does not run is compared with the baseline's run of another: read markers cost a bare
# broadcast nothing, so the reads scenario's baseline is its plain fan-out.
_BASELINE_SCENARIO = {"reads": "fanout"}


def _baseline_of(results: dict[str, Any], scenario: str, run: dict[str, Any]) -> dict[str, Any] | None:
    wanted = {**run["params"], "read_every": 0.0}
    for name, other in _runs(results, _BASELINE_SCENARIO.get(scenario, scenario)):
        if name == "baseline" and other["label"] == run["label"] and {**other["params"], "read_every": 0.0} == wanted:
            return other
    return None


def _traffic_table(results: dict[str, Any], scenario: str, sent: str = "msgs") -> list[str]:
    """A row per run of a traffic scenario; ``sent`` names what the senders send (messages, or entries)."""
    header = [
        "server",
        "clients",
        "run",
        f"{sent} sent",
        f"{sent}/s",
        "deliveries expected",
        "received",
        "lost",
        "healed",
        "closed",
        "deliveries/s",
        f"{TIMES} baseline",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "ack p99 ms",
        "server CPU",
        "µs/delivery",
        "server RSS MiB",
        "loadgen CPU",
        "other CPU",
    ]
    rows = []
    for name, run in _runs(results, scenario):
        base = _baseline_of(results, scenario, run)
        ratio = (
            f"{run['deliveries_per_s'] / base['deliveries_per_s']:.2f}" if base and base["deliveries_per_s"] else NONE
        )
        latency, heal = run["latency_ms"], run["healing"]
        members = run["params"]["members"]
        clients = f"{run['params']['rooms']}{TIMES}{members}" if run["params"]["rooms"] > 1 else str(members)
        rows.append(
            [
                name,
                clients,
                run["label"],
                number(run["sent"]),
                number(run["msgs_per_s"]),
                number(run["expected"]),
                number(run["received"]),
                number(run["lost"]),
                number(heal["healed"]) if heal["missing"] else NONE,
                ", ".join(f"{n}{TIMES}{code}" for code, n in run.get("closed", {}).items()) or "0",
                number(run["deliveries_per_s"]),
                ratio,
                millis(latency["p50"]),
                millis(latency["p95"]),
                millis(latency["p99"]),
                millis(latency["max"]),
                millis(run["ack_ms"]["p99"]),
                number(run["server_cpu"], 2),
                number(run["server_us_per_delivery"]),
                number(run["server_rss_mb"]),
                number(run["loadgen_cpu"], 2),
                number(run.get("other_cpu"), 2),
            ]
        )
    return table(header, rows)


def _connect_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, target in results["targets"].items():
        found = (target.get("scenarios") or {}).get("connect")
        if found:
            rows.append(
                [
                    name,
                    number(found["connections"]),
                    number(found["connects_per_s"]),
                    millis(found["open_ms"]["p50"]),
                    millis(found["open_ms"]["p99"]),
                    number(found["server_cpu_ms_per_connect"], 2),
                    number(found["server_rss_mb_before"]),
                    number(found["server_rss_mb_after"]),
                    number(found["rss_kib_per_connection"], 1),
                    str(sum(found["failures"].values())),
                ]
            )
    header = [
        "server",
        "connections",
        "connects/s",
        "open→hello p50 ms",
        "p99 ms",
        "server CPU ms/connect",
        "RSS before MiB",
        "RSS after MiB",
        "RSS KiB/connection",
        "failed",
    ]
    return table(header, rows)


def _join_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, target in results["targets"].items():
        found = (target.get("scenarios") or {}).get("join")
        if found:
            hello, backlog = found["hello_ms"], found["backlog_ms"]
            rows.append(
                [
                    name,
                    number(found["connections"]),
                    number(found["joins_per_s"], 1),
                    millis(hello["p50"]),
                    millis(hello["p99"]),
                    millis(backlog["p50"]),
                    millis(backlog["p95"]),
                    millis(backlog["p99"]),
                    millis(backlog["max"]),
                    str(sum(found["failures"].values())),
                ]
            )
    header = [
        "server",
        "joins",
        "joins/s",
        "open→hello p50 ms",
        "p99 ms",
        "open→hello+50 backlog p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "failed",
    ]
    return table(header, rows)


def _slow_row(name: str, run: dict[str, Any]) -> list[str]:
    ends = dict(run["silent"]["ends"])
    caught_up, closed = ends.pop("caught up", 0), ends.pop("closed 4008", 0)
    read = run["silent"]
    if run["complete_s"] is not None:
        complete = f"{run['complete_s']:,.2f} s"
    else:
        complete = f"{run['missing']:,} missing at {run['params']['wait']:g} s"
    return [
        name,
        str(run["params"]["silent"]),
        number(run["sent"]),
        number(run["acked"]),
        number(run["received"]),
        number(run["lost"]),
        number(run["duplicates"]),
        checks.slow_latency(run, "p50"),
        checks.slow_latency(run, "p99"),
        checks.slow_latency(run, "max"),
        complete,
        number(caught_up) if run["params"]["silent"] else NONE,
        number(closed) if run["params"]["silent"] else NONE,
        checks.silent_ends(ends, run["silent"].get("reasons", {})) or ("0" if run["params"]["silent"] else NONE),
        f"{read['read_min']:,} to {read['read_max']:,}" if read["read_min"] is not None else NONE,
        ", ".join(f"{n}{TIMES}{code}" for code, n in run["closed"].items()) or "0",
        number(run["server_rss_mb_before"]),
        number(run["server_rss_mb_peak"]),
        number(run["rss_growth_mb"]),
        number(run["server_cpu"], 2),
        number(run.get("other_cpu"), 2),
    ]


def _slow_table(results: dict[str, Any]) -> list[str]:
    header = [
        "server",
        "silent sockets",
        "msgs sent",
        "acked",
        "reader received",
        "lost",
        "duplicates",
        "p50 ms",
        "p99 ms",
        "max ms",
        "reader had all, after the last send",
        "silent: caught up",
        "closed 4008",
        "other end",
        "msgs each silent socket read",
        "reader/sender closed",
        "server RSS before MiB",
        "peak MiB",
        "growth MiB",
        "server CPU",
        "other CPU",
    ]
    return table(header, [_slow_row(name, run) for name, run in _runs(results, "slow")])


def _slow_intro(results: dict[str, Any]) -> list[str]:
    runs = _runs(results, "slow")
    if not runs:
        return ["Not run."]
    params = runs[0][1]["params"]
    kernel = max((run["params"]["rcvbuf_kernel"] or 0 for _, run in runs), default=0)
    return [
        f"One sender posts {params['count']:,} messages of {params['body_bytes']:,} bytes at {params['rate']:g}/s "
        "into a fresh room with one reader, after 0, 5 or 50 *silent sockets* joined it: raw TCP sockets with a "
        f"{params['rcvbuf']:,}-byte receive buffer, set before connect (the kernel made it {kernel:,}), that do "
        "the WebSocket handshake, read the 101 and then nothing, as a phone in a tunnel or a frozen tab. The "
        "reader and the sender are `websockets` clients in two processes (the reader's queue unbounded, so it "
        "never looks slow itself); the latency is the reader's alone, and a message it never got counts as long as "
        f"the wait ({params['wait']:g} s after the last send), so that a percentile which falls on one is a lower "
        "bound (≥). *reader had all*: when the reader's last missing message arrived, after the last send, or how "
        "many it still lacked at the end of the wait. "
        "After that, each silent socket is read again (frames parsed by hand) until it has every seq through the "
        "last acked one (*caught up*), a close frame comes (*closed 4008* is the server closing it as too slow; "
        f"any other code is an *other end*), or the stream ends, is reset or {params['catch_up']:g} s pass "
        "(also *other*). *reader/sender closed*: the server closed the reader or the sender during the run. RSS "
        "growth is the peak, through the load and the reader's wait, less the RSS just before the load.",
    ]


_KIND_NAMES = {"message": "messages", "react": "reactions", "edit": "edits"}


def _shares(counts: dict[str, int]) -> str:
    """Entries by kind as shares of their total: "70% messages, 20% reactions, 10% edits"."""
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{count / total:.0%} {_KIND_NAMES.get(kind, kind)}" for kind, count in ordered if total)


def _mixed_section(results: dict[str, Any]) -> list[str]:
    if not _runs(results, "mixed"):
        return ["Not run."]
    mix = results["plan"].get("mix") or []
    lines = [
        f"The same room and runs as the fan-out above, but each sender cycles through {len(mix)} entries, "
        f"{_shares(Counter(mix))}: an edit replaces the body of one of the sender's own {RECENT} latest "
        f"messages, a reaction adds one of the {len(REACTIONS)} emoji to one of the {RECENT} latest messages of "
        "the room, or takes it back if the sender has it on. Every entry is a delivery, "
        "counted by seq (*deliveries expected*: the room's entries acked during the run, for each connection). An "
        "edit's latency is read from its body, as a message's; a reaction's is its arrival time minus the send "
        "time its sender noted against the seq of its ack. A sender that has no message to edit or react to yet "
        "sends a message instead; what each target's senders sent, over all its runs:",
        "",
    ]
    for name, target in results["targets"].items():
        found = (target.get("scenarios") or {}).get("mixed")
        if found:
            kinds = sum((Counter(run.get("kinds", {})) for run in found["runs"]), Counter())
            lines.append(f"- {name}: {kinds.total():,} entries, {_shares(kinds) or 'none'}.")
    return [*lines, "", *_traffic_table(results, "mixed", sent="entries")]


def _reads_section(results: dict[str, Any]) -> list[str]:
    if not _runs(results, "reads"):
        return ["Not run."]
    lines = [
        "The message-only fan-out's room at its largest size, with every client (senders and receivers) also "
        "sending `read` with the highest seq it has, every 2 s at its own phase, as the room page does while it "
        "shows the newest messages: each moves the client's read marker, which is stored and sent back to that "
        f"client. *{TIMES} baseline* compares with the baseline's plain fan-out (it keeps no read markers). Read "
        "frames sent per second, over the run:",
        "",
    ]
    for name, run in _runs(results, "reads"):
        lines.append(f"- {name}, {run['label']}: {run.get('reads_per_s', 0):,.0f} reads/s.")
    return [*lines, "", *_traffic_table(results, "reads")]


def _ingest_notes(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, target in results["targets"].items():
        found = (target.get("scenarios") or {}).get("ingest")
        if found and found.get("stored") is not None:
            lines.append(
                f"- {name}: {found['acked']:,} messages acked, {found['stored']:,} rows in `chat_message` "
                "for the run's rooms, counted in the database afterwards."
            )
    return lines


def _header(results: dict[str, Any]) -> list[str]:
    meta, plan = results["meta"], results["plan"]
    machine, code = meta["machine"], meta["code"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    dirty = " plus uncommitted changes in chat/ or chatsite/" if code.get("uncommitted_server_changes") else ""
    lines = [
        "# chatsite performance",
        "",
        "Generated by the benchmark in `bench/` (see [bench/README.md](../bench/README.md)); do not edit by hand.",
        "",
        f"- **Command:** `{meta['command']}` ({meta.get('seconds', 0):.0f} s of measuring)",
        f"- **Date:** {meta['date']}",
        f"- **Machine:** {machine['nproc']} cores ({machine['cpu']}), {machine['memory_gib'] or 0:.0f} GiB, "
        f"Linux {machine['kernel']}; the servers, the load generator, PostgreSQL and Redis share the cores.",
        f"- **Code:** chatsite at `{code['commit']}` ({code['subject']}){dirty}.",
        f"- **Versions:** {versions}.",
        f"- **Load generator:** {plan['workers']} processes of `websockets` clients (no compression), loopback only.",
        "- **chatsite's settings for the bench:** `DJANGO_DEBUG=false`, a random `DJANGO_SECRET_KEY`, "
        "`DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost`, `CHAT_RATE_LIMIT_BURST=0` (the per-connection token bucket "
        "would throttle the senders), `CHAT_LOG_LEVEL=WARNING`, a fresh migrated database per server"
        + "".join(f", `{k}={v}`" for k, v in plan.get("env", {}).items())
        + ". Every message is persisted.",
        "",
        "Servers, each alone on the machine while measured (one process each):",
        "",
    ]
    for name, target in results["targets"].items():
        command = " ".join(target.get("command") or []).replace(str(ROOT) + "/", "")
        lines.append(f"- **{name}**: {target['label']}" + (f" — `{command}`" if command else ""))
        if target.get("error"):
            lines.append(f"  - **failed:** `{target['error'].strip().splitlines()[-1]}`")
    return lines


def write(results: dict[str, Any], output: Path, plots_from: Path | None = None) -> None:
    plan = results["plan"]
    rate_label = f"{plan['rate']:g} msg/s"
    output.parent.mkdir(parents=True, exist_ok=True)
    throughput_png = output.with_name(f"{output.stem}-throughput.png")
    cdf_png = output.with_name(f"{output.stem}-latency-cdf.png")
    plots.throughput(results, throughput_png)
    plots.latency_cdf(results, cdf_png, rate_label)

    lines = _header(results)
    found = checks.evaluate(results)
    if found and found[0].cells:
        names = list(found[0].cells)
        lines += ["", "## Targets", ""]
        lines += table(["target", *names], [[c.target, *(c.cells[n] for n in names)] for c in found])
    lines += [
        "",
        "## Fan-out: one room",
        "",
        f"{plan['senders']} of the room's clients send. *saturation*: each sender keeps "
        f"{plan['window']} messages in flight and sends the next when its own copy comes back (the echo), so "
        "the server is never idle and the queues stay bounded. *ack window*: the next is sent on the ack "
        "instead, which lets the senders outrun the delivery. After each chatsite run, every client asks "
        "`history` for the seqs it missed (what the channel layer dropped), and *healed* counts what the log "
        "gave back. *closed*: sockets the server closed during the run. A delivery's latency is its "
        f"arrival time minus the send time in its body. *{TIMES} baseline* compares deliveries/s with the same run "
        "on the baseline.",
        "",
    ]
    lines += _traffic_table(results, "fanout")
    lines += ["", f"![throughput]({throughput_png.name})", "", f"![latency CDF]({cdf_png.name})"]
    lines += ["", "## Fan-out: mixed entries", "", *_mixed_section(results)]
    lines += ["", "## Fan-out with read markers", "", *_reads_section(results)]
    lines += [
        "",
        "## Many small rooms",
        "",
        f"{plan['rooms']} rooms of {plan['room_members']} clients, one sender "
        "each: a fixed rate per room, then saturation with 2 messages in flight per sender.",
        "",
    ]
    lines += _traffic_table(results, "rooms")
    lines += [
        "",
        "## Ingest",
        "",
        f"{plan['ingest_rooms']} senders, each alone in its own room: the write path "
        "(validate, store with the next seq, ack, one delivery). *saturation* keeps "
        f"{plan['window']} unacknowledged messages per sender; msgs/s counts acks, i.e. persisted messages.",
        "",
    ]
    lines += _traffic_table(results, "ingest")
    lines += ["", *_ingest_notes(results)]
    lines += [
        "",
        "## Connect: idle connections",
        "",
        f"{plan['connections']:,} connections in rooms of "
        f"{plan['room_size']}, {plan['workers']}{TIMES}32 handshakes at a time. RSS per connection is the server's "
        "RSS growth once they are all open and the server is idle, divided by their number. Before it is read, "
        "one socket is opened and closed on every server, so that what a process sets up once, on its first "
        "connection, is not counted per connection: for chatsite about 1.2 MiB (the database thread's malloc "
        "arena, SQLite's code pages, lazy imports), which would read as about 2.5 KiB more per connection.",
        "",
    ]
    lines += _connect_table(results)
    lines += [
        "",
        "## Join: hello and backlog",
        "",
        f"{plan['joins']} joins of a room that holds 60 messages, {4 * plan['workers']} at a time: the time from "
        "opening the socket to `hello`, and to the last of the 50-message backlog.",
        "",
    ]
    lines += _join_table(results)
    lines += ["", "## Slow readers: sockets that stop reading", "", *_slow_intro(results), ""]
    lines += _slow_table(results)
    lines += ["", *analysis.section(results)]
    lines += [
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                                  # everything, ~20 min",
        "make bench BENCH_ARGS=--quick              # a smoke run, ~5 min",
        "python -m bench --report-only bench/results/RUN/results.json   # rewrite this page",
        "```",
        "",
        f"Targets: {', '.join(TARGETS)}. The raw figures of this run, and the py-spy stacks, are in "
        f"`{plots_from.parent.relative_to(ROOT) if plots_from else 'bench/results/'}` (not committed).",
        "",
    ]
    output.write_text("\n".join(lines))
