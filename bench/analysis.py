"""The report's "where the time goes": the py-spy profiles of the saturated big room, turned into µs per delivery."""

from typing import Any

from .markdown import NONE


def _profiles(results: dict[str, Any], scenario: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, target in results["targets"].items():
        entry = (target.get("scenarios") or {}).get(scenario) or {}
        if entry.get("profile"):
            found.append((name, entry["profile"]))
    return found


def stage_costs(profile: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(stage, share of the busy samples, µs per delivery) for one profiled run: the share of the server CPU
    measured in that run (psutil), since py-spy cannot tell a thread that runs from one waiting for a core."""
    per_delivery = profile["run"]["server_us_per_delivery"]
    return [
        (stage, share, share * per_delivery if per_delivery else None) for stage, share in profile["summary"]["stages"]
    ]


def _profile_tables(profiles: list[tuple[str, dict[str, Any]]], unit: str) -> list[str]:
    lines = []
    for name, profile in profiles:
        run = profile["run"]
        plural = "deliveries" if unit == "delivery" else f"{unit}s"
        lines += [
            f"#### {name}: {run['deliveries_per_s']:,.0f} {plural}/s, "
            f"{run['server_us_per_delivery'] or 0:,.0f} µs of server CPU per {unit} "
            f"({profile['summary']['samples']:,} samples)",
            "",
        ]
        costs = stage_costs(profile)
        lines += [f"| stage | share of busy samples | µs per {unit} |", "|---|---|---|"]
        for stage, share, micros in costs:
            lines.append(f"| {stage} | {share:.1%} | {NONE if micros is None else f'{micros:,.1f}'} |")
        wait = profile["summary"].get("database_wait")
        if wait:
            lines += [
                "",
                f"Besides: the database thread spent {wait:.0%} of its time waiting for PostgreSQL's answers.",
            ]
        lines += [
            "",
            "Most self time: "
            + "; ".join(f"`{frame}` {share:.1%}" for frame, share in profile["summary"]["self"][:8])
            + ".",
            "",
        ]
    return lines


def section(results: dict[str, Any]) -> list[str]:
    fanout, ingest = _profiles(results, "fanout"), _profiles(results, "ingest")
    if not fanout and not ingest:
        return []
    largest = max(results["plan"]["clients"])
    lines = [
        "## Where the time goes",
        "",
        "py-spy sampled each server (`py-spy record --threads --nonblocking`, 200 Hz) during one more "
        "saturated run. Each sample is put in the first stage that owns it: a stack under the channel layer's "
        "`group_send` is the fan-out whatever it calls, a stack in a worker thread is the database, and "
        "otherwise the innermost frame that is not the event loop's own decides (`bench/profiling.py`). Samples of "
        "a thread that only waits (the loop in its poll, the database thread idle) are set aside. The µs column "
        "is the stage's share times the server CPU per delivery (or per message) psutil measured in that run.",
        "",
    ]
    if fanout:
        lines += [f"### Fan-out: the {largest}-client room at saturation", "", *_profile_tables(fanout, "delivery")]
    if ingest:
        lines += ["### Ingest: senders alone in their rooms, at saturation", "", *_profile_tables(ingest, "message")]
    return lines + recommendations(results)


def _cost(profile: dict[str, Any] | None, prefix: str) -> float:
    """µs per delivery (or message) of the stages whose names start with ``prefix``."""
    if not profile:
        return 0.0
    return sum(micros or 0 for stage, _, micros in stage_costs(profile) if stage.startswith(prefix))


def recommendations(results: dict[str, Any]) -> list[str]:
    """What is already done on the hot paths and what would gain most next, with this run's numbers."""
    fanout = dict(_profiles(results, "fanout"))
    ingest = dict(_profiles(results, "ingest"))
    lines = ["### What is done, and what is left by payoff", ""]
    chatsite = next((fanout[name] for name in ("chatsite-uvicorn", "chatsite-pg-redis") if name in fanout), None)
    if chatsite is not None:
        base = fanout.get("baseline")
        mine = chatsite["run"]["server_us_per_delivery"] or 0
        floor = f" where the baseline spends {base['run']['server_us_per_delivery'] or 0:,.0f}" if base else ""
        lines += [
            f"**Fan-out.** chatsite-uvicorn spends {mine:,.0f} µs of server CPU per delivery{floor}. In the code: "
            "one channel-layer subscription per room per process, which hands each pre-encoded frame to the room's "
            "local sockets' `chat_message` handlers (chat/fanout.py); each checks its socket's bound and writes "
            "with the server's own `send` (chat/fanout_consumer.py): no per-recipient layer hop, consumer dispatch, "
            "thread hop, session wrapper or JSON encode. What is left: the ASGI server's "
            f"own work, {_cost(chatsite, 'ASGI server'):,.1f} µs/delivery (frame building, one write per frame "
            "per socket), which the baseline pays too; chatsite's loop, "
            f"{_cost(chatsite, 'chatsite'):,.1f} µs; the store spread over the room, "
            f"{_cost(chatsite, 'database thread'):,.1f} µs.",
        ]
        daphne = fanout.get("chatsite-daphne")
        if daphne:
            lines += [
                "",
                f"Under daphne the same code costs {daphne['run']['server_us_per_delivery'] or 0:,.0f} µs/delivery, "
                f"its server part {_cost(daphne, 'ASGI server'):,.1f} µs: besides autobahn's framing, Twisted's "
                "reactor on asyncio registers and unregisters each socket for writing around every frame "
                "(`selectors` `modify` and `namedtuple._replace` in the profile). Hence uvicorn in production.",
            ]
    connect = (results["targets"].get("chatsite-uvicorn", {}).get("scenarios") or {}).get("connect") or {}
    if connect.get("rss_kib_per_connection"):
        lines += [
            *([""] if len(lines) > 2 else []),
            f"**Memory per idle connection** ({connect['rss_kib_per_connection']:.1f} KiB on chatsite-uvicorn "
            "here). tracemalloc snapshots around 500 opens showed what an idle socket keeps alive, and what was "
            "cut: a copy of the scope and a coroutine frame per middleware layer (about 6 KiB; the handshake is "
            "now one layer, chat/socketstack.py, that adds to the server's scope), channels' `await_many_dispatch` "
            "(a second task and an `asyncio.wait` per socket, about 2 KiB; the consumer now awaits `receive` in a "
            "plain loop) and the consumer's `__dict__` (about 0.8 KiB; `__slots__`). Python's allocator pools were "
            "97% in use after the opens: live objects, not fragmentation.",
        ]
    store = ingest.get("chatsite-uvicorn")
    postgres = ingest.get("chatsite-pg-redis")
    if store:
        lines += [
            *([""] if len(lines) > 2 else []),
            "**Ingest.** The socket path stores by group commit (`GroupCommit` in chat/groupcommit.py): what arrives "
            "while the database thread is busy goes into the next transaction, which takes every room's seqs in "
            "one `UPDATE`, looks for resends by (room, client_id) pairs in one `SELECT` and inserts with one "
            "`INSERT ... RETURNING`, in plain SQL (the ORM's query building cost more than the queries). Idle, a "
            "message is stored alone and at once. On SQLite a message costs "
            f"{store['run']['server_us_per_delivery'] or 0:,.0f} µs of server CPU, "
            f"{_cost(store, 'database thread'):,.0f} µs of it in the database thread.",
        ]
        if postgres:
            lines += [
                "",
                f"On PostgreSQL with Redis a message costs {postgres['run']['server_us_per_delivery'] or 0:,.0f} µs: "
                f"{_cost(postgres, 'database thread'):,.0f} µs in the database thread (which waits "
                f"{postgres['summary'].get('database_wait', 0):.0%} of its time for PostgreSQL's answers) and "
                f"{_cost(postgres, 'channel layer'):,.0f} µs in the channel layer (one `PUBLISH` per room in each "
                "batch, here one per message since each sender has a room of its own, and the room subscription's "
                "receive). Next, by payoff:",
                "",
                "1. **A batch's broadcasts in one Redis pipeline.** channels-redis publishes one message per call, "
                "each a round trip under a lock; a batch could go in one write.",
                "2. **More than one message per socket in a batch.** Each socket's frames are handled one at a "
                "time, so a batch holds at most one message per sending socket; a client that pipelines (the "
                "bench's senders keep 4 in flight) would fill batches faster if acks were sent in order from a "
                "queue instead.",
                "3. **The per-call health check.** With `conn_health_checks`, Django sends a `SELECT 1` on the "
                "first query after every `database_sync_to_async` call, so once per batch.",
                "4. **The resend lookup's plan.** PostgreSQL plans the ORed (room, client_id) pairs afresh for "
                "every batch (0.6 ms for 10 pairs in `EXPLAIN ANALYZE`, on a CPU the server shares); prepared "
                "statements (psycopg's server-side binding) or one lookup per room would cut it.",
            ]
    return lines
