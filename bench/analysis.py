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
    """What would close the gaps, in order of payoff, with this run's numbers."""
    fanout = dict(_profiles(results, "fanout"))
    ingest = dict(_profiles(results, "ingest"))
    chatsite = next((fanout[name] for name in ("chatsite-uvicorn", "chatsite-pg-redis") if name in fanout), None)
    if chatsite is None:
        return []
    base = fanout.get("baseline")
    mine = chatsite["run"]["server_us_per_delivery"] or 0
    floor = base["run"]["server_us_per_delivery"] if base else None
    session = _cost(chatsite, "channels' session middleware")
    loop = _cost(chatsite, "chatsite's fan-out loop")
    server = _cost(chatsite, "ASGI server")
    database = _cost(chatsite, "database thread")
    lines = [
        "### What would close the gaps, by payoff",
        "",
        f"**Fan-out.** chatsite-uvicorn spends {mine:,.0f} µs of server CPU per delivery"
        + (f" where the baseline spends {floor:,.0f}; the 50% target needs at most {2 * floor:,.0f}." if floor else ".")
        + " The per-recipient channel-layer hop, dispatch and thread hop are gone (chat/fanout.py writes each "
        "pre-encoded frame to the room's local sockets). What is left, largest first:",
        "",
        f"1. **channels' session middleware on every frame: {session:,.1f} µs/delivery.** The fan-out writes "
        "through the consumer's `base_send`, which is channels' `InstanceSessionWrapper.send`: on every frame "
        "it reads `scope['session'].modified` and `.is_empty()` through Django's `LazyObject` and a setting, "
        "though it acts only on `websocket.accept`. Keep the server's own ASGI `send` (a few-line middleware "
        "outside `AuthMiddlewareStack` that puts it in the scope) and use it for `websocket.send` frames.",
        f"2. **the stall timer in the fan-out loop: {loop:,.1f} µs/delivery.** `RoomFanout._each` calls "
        "`asyncio.timeout().reschedule()` before every recipient, which cancels and re-arms a timer handle on "
        "the loop's heap each time. Re-arm it only when the deadline has moved by a good part of "
        "`SEND_STALL_SECONDS`, or check the transport's write buffer instead of timing each send.",
        f"3. **the ASGI server's own work: {server:,.1f} µs/delivery** (frame building, `transport.write`, "
        "one syscall per frame per socket): the baseline pays the same, so this is the floor.",
    ]
    daphne = fanout.get("chatsite-daphne")
    if daphne:
        lines.append(
            f"4. **uvicorn, not daphne:** under daphne the same code costs "
            f"{daphne['run']['server_us_per_delivery'] or 0:,.0f} µs/delivery, its server part "
            f"{_cost(daphne, 'ASGI server'):,.1f} µs: besides autobahn's framing, Twisted's reactor on asyncio "
            "registers and unregisters each socket for writing around every frame (`selectors` `modify` "
            "and `namedtuple._replace` in the profile)."
        )
    lines.append(
        f"5. **the message store, spread over the room: {database:,.1f} µs/delivery** at this size; it is "
        "the ingest path below, and it bounds the fan-out in small rooms (a message must be stored before "
        "it is sent, and the one database thread stores one at a time)."
    )
    if session and loop and floor:
        after = mine - session - loop
        lines += [
            "",
            f"1 and 2 together would bring chatsite-uvicorn to about {after:,.0f} µs/delivery, "
            f"{floor / after:.0%} of the baseline's throughput on CPU alone.",
        ]
    store = ingest.get("chatsite-uvicorn")
    postgres = ingest.get("chatsite-pg-redis")
    if store:
        per_message = store["run"]["server_us_per_delivery"] or 0
        lines += [
            "",
            f"**Ingest.** On SQLite a stored message costs {per_message:,.0f} µs of server CPU "
            f"({_cost(store, 'database thread'):,.0f} µs of it in the database thread, one transaction per "
            "message, one message at a time). At 1,000 messages/s a server process has 1,000 µs per message "
            "for everything, on one core at most (the GIL), so the store has to get cheaper per message, "
            "not just faster per call:",
            "",
            "1. **Group commit.** Let the database thread take every message waiting for it and store them in "
            "one transaction (one `BEGIN IMMEDIATE`, one commit, each its own seq), acking each: the commit "
            "and the per-call thread hop are then paid once per batch, and batches grow exactly when load does.",
            "2. **Less ORM per message.** The store builds querysets and a `Message` model instance for "
            "each message (`Model.__init__`, SQL compilation in the profile); one prepared `INSERT ... "
            "RETURNING` per message (or one per batch) skips that.",
        ]
        if postgres:
            lines.append(
                f"3. **PostgreSQL: round trips.** The database thread spends "
                f"{postgres['summary'].get('database_wait', 0):.0%} of its time waiting for PostgreSQL's "
                "answers: the store's transaction, its seq `UPDATE ... RETURNING` and its `INSERT` are each a "
                "round trip, and the one thread waits through every one. A single autocommitted statement per "
                "message (a CTE that bumps the room's seq and inserts), or one per batch, cuts the waits to one."
            )
    return lines
