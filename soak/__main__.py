"""The soak: load held on two server processes, with the "nothing lost" oracle checked at the end.

    python -m soak [--minutes 2] [--churn-seconds 60] [--write-docs]

Needs DATABASE_URL (PostgreSQL; a database named after its own with ``_soak`` appended, ``test_soak`` for
``.../test``, is dropped and created on that server, so that soaks run with other URLs do not share it) and starts
its own Redis and two uvicorn processes on free loopback ports. Phases, one after the other:

- L1 steady: 200 connections over 10 rooms (half on each process), 50 messages/s in, for --minutes; RSS of both
  processes sampled every 5 s, growth measured between minute 1 and the end; /healthz polled every second, as a
  load balancer does. Each connection is a guest with a session of its own, so it keeps its identity.
- L3 churn: L1's clients go on at 50/s with a mixed load (soak.load.send_mixed: messages, replies, edits and
  deletes of their own messages, reactions to others'), while 4 loops connect, send one message, wait for its
  ack and leave.
- L2 burst: 100 members in one room, 5 of them send 500 messages as fast as they can.

Then every client settles (resends, fills gaps) and the oracle is checked. Figures go to stdout and
$TMPDIR/chatsite-soak-<time>/results.json, and with --write-docs into docs/reliability.md. Exit status 1 when the
oracle or a bound fails.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RSS_GROWTH_BOUND = 0.20


def prepare_database(url: str) -> str:
    """Drop and create ``<url's database>_soak`` on the server of ``url``; migrate it; return its URL."""
    import psycopg
    from psycopg import sql

    parts = urllib.parse.urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("the soak needs DATABASE_URL to point at PostgreSQL")
    name = f"{parts.path.strip('/') or 'postgres'}_soak"
    soak_url = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    # The server's maintenance database, which always exists, for dropping and creating the soak's.
    with psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {**os.environ, "DATABASE_URL": soak_url, "REDIS_URL": ""}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    return soak_url


def guest_cookies(count: int) -> list[str]:
    """Session cookies of ``count`` guests, each with a name and guest id of its own ("soak-N (guest)"): a socket
    without a session is a new guest each time it connects, who may not edit or delete what it sent before."""
    from importlib import import_module

    from django.conf import settings

    from chat.identity import GUEST_ID_SESSION_KEY, GUEST_SESSION_KEY, new_guest_id

    store = import_module(settings.SESSION_ENGINE).SessionStore
    cookies = []
    for number in range(count):
        session = store()
        session[GUEST_SESSION_KEY] = f"soak-{number} (guest)"
        session[GUEST_ID_SESSION_KEY] = new_guest_id()
        session.save()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


def versions() -> dict[str, str]:
    from importlib.metadata import version

    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()  # noqa: S607
    return {
        "python": platform.python_version(),
        "nproc": str(os.cpu_count()),
        **{name: version(name) for name in ("Django", "channels", "channels-redis", "uvicorn", "websockets")},
        "redis": next((w.split("=")[1] for w in redis_version if w.startswith("v=")), "?"),
    }


async def poll_health(servers: list[Any], stop: asyncio.Event, failures: list[str]) -> None:
    """GET /healthz on every server each second, like a load balancer; keep what was not 200."""
    while not stop.is_set():
        for server in servers:
            try:
                ok = await asyncio.to_thread(server.healthy)
            except OSError:
                ok = False
            if not ok:
                failures.append(f"{time.strftime('%H:%M:%S')} {server.url}")
        await asyncio.sleep(1)


async def churn(load: Any, urls: list[str], recorder: Any, room: str, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """Connect, send one message, wait for its ack, leave; until ``stop`` (at most 10,000 times)."""
    cycles = 0
    connect_times: list[float] = []
    failures = 0
    while not stop.is_set() and cycles < 10_000:
        client = load.LoadClient(recorder=recorder, room=room)
        out["clients"].append(client)
        started = time.monotonic()
        try:
            await client.connect(urls[cycles % len(urls)])
            connect_times.append(time.monotonic() - started)
            client_id = await client.send(f"churn {cycles}")
            deadline = time.monotonic() + 10
            while client_id not in client.acked and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if client_id not in client.acked:
                failures += 1
        except load.CONNECT_ERRORS:
            failures += 1
        finally:
            await client.close()
        cycles += 1
    out["cycles"] = out.get("cycles", 0) + cycles
    out["failures"] = out.get("failures", 0) + failures
    out.setdefault("connect", []).extend(connect_times)


async def run(args: argparse.Namespace, soak_url: str) -> dict[str, Any]:
    from chat.tests import oracle
    from chat.tests.servers import RedisServer, Server
    from soak import load

    results: dict[str, Any] = {"versions": versions(), "args": vars(args)}
    log_dir = Path(tempfile.mkdtemp(prefix="chatsite-soak-"))
    results["log_dir"] = str(log_dir)
    redis = RedisServer().start()
    env = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": soak_url,
        "CHAT_LOG_LEVEL": "WARNING",
        # Every client here comes from 127.0.0.1: the per-address cap would refuse the 51st.
        "CHAT_MAX_SOCKETS_PER_CLIENT": "0",
    }
    servers = [Server(env=env, log_dir=log_dir), Server(env=env, log_dir=log_dir)]
    stop = asyncio.Event()
    keepers: list[asyncio.Task[None]] = []
    clients: list[Any] = []
    health_failures: list[str] = []
    try:
        for server in servers:
            server.start()
        urls = [s.url for s in servers]
        health = asyncio.ensure_future(poll_health(servers, stop, health_failures))

        # L1: 200 connections over 10 rooms, 50 messages/s, for --minutes.
        steady = load.Recorder()
        rooms = [f"steady-{n}" for n in range(10)]
        cookies = await asyncio.to_thread(guest_cookies, 200)
        for index in range(200):
            client = load.LoadClient(recorder=steady, room=rooms[index % 10], cookie=cookies[index])
            clients.append(client)
            preferred = urls[index % 2 :] + urls[: index % 2]  # half on each process, the other as fallback
            keepers.append(asyncio.ensure_future(load.keep_connected(client, preferred, stop, ping_every=10)))
        deadline = time.monotonic() + 60
        while not all(c.connected for c in clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        print(f"L1: {sum(c.connected for c in clients)} connected", flush=True)
        rss: list[tuple[float, int, int]] = []
        seconds = args.minutes * 60
        started = time.monotonic()
        sending = asyncio.ensure_future(load.send_at_rate(clients, rate=50, seconds=seconds, prefix="steady"))
        while not sending.done():
            rss.append((round(time.monotonic() - started, 1), servers[0].rss_bytes(), servers[1].rss_bytes()))
            await asyncio.sleep(5)
        sent_l1 = await sending
        at_1 = min(rss, key=lambda sample: abs(sample[0] - 60))
        end = rss[-1]
        growth = [(end[i] - at_1[i]) / at_1[i] for i in (1, 2)]
        results["L1"] = {
            "connections": len(clients),
            "rooms": len(rooms),
            "rate_per_s": 50,
            "seconds": seconds,
            "sent": sent_l1,
            "ack": load.summary_ms(steady.ack),
            "delivery": load.summary_ms(steady.delivery),
            "healed_by_history": steady.healed,
            "rss_mb_at_1_min": [round(at_1[i] / 2**20, 1) for i in (1, 2)],
            "rss_mb_at_end": [round(end[i] / 2**20, 1) for i in (1, 2)],
            "rss_growth_pct": [round(g * 100, 1) for g in growth],
            "reconnects": sum(len(c.connected_at) - 1 for c in clients),
        }
        print(f"L1: {json.dumps(results['L1'])}", flush=True)

        # L3: churn while L1 goes on.
        steady.reset()
        churned: dict[str, Any] = {"clients": []}
        churn_recorder = load.Recorder()
        churn_stop = asyncio.Event()
        loops = [
            asyncio.ensure_future(churn(load, urls, churn_recorder, rooms[n], churn_stop, churned)) for n in range(4)
        ]
        rss_before_churn = servers[0].rss_bytes() + servers[1].rss_bytes()
        sent_l3 = await load.send_mixed(clients, rate=50, seconds=args.churn_seconds, prefix="during churn")
        churn_stop.set()
        await asyncio.gather(*loops)
        rss_after_churn = servers[0].rss_bytes() + servers[1].rss_bytes()
        results["L3"] = {
            "seconds": args.churn_seconds,
            "churn_cycles": churned["cycles"],
            "churn_failures": churned["failures"],
            "churn_connect": load.summary_ms(churned["connect"]),
            "churn_ack": load.summary_ms(churn_recorder.ack),
            "steady_sent_meanwhile": dict(sorted(sent_l3.items())),
            "steady_ack_meanwhile": load.summary_ms(steady.ack),
            "steady_delivery_meanwhile": load.summary_ms(steady.delivery),
            "rss_growth_mb": round((rss_after_churn - rss_before_churn) / 2**20, 1),
        }
        print(f"L3: {json.dumps(results['L3'])}", flush=True)

        # L2: 100 members in one room; 5 senders, 500 messages as fast as they can.
        burst = load.Recorder()
        members = [load.LoadClient(recorder=burst, room="burst") for _ in range(100)]
        for index, client in enumerate(members):
            keepers.append(asyncio.ensure_future(load.keep_connected(client, [urls[index % 2]], stop, ping_every=5)))
        deadline = time.monotonic() + 60
        while not all(c.connected for c in members) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        started = time.monotonic()
        for number in range(500):
            await members[number % 5].send(f"burst {number}")
        while any(c.outbox for c in members[:5]) and time.monotonic() - started < 60:
            await asyncio.sleep(0.01)
        acked_in = time.monotonic() - started
        await oracle.settle(members, soak_url, timeout=60, what="every burst member holding all 500")
        complete_in = time.monotonic() - started
        results["L2"] = {
            "members": len(members),
            "messages": 500,
            "all_acked_s": round(acked_in, 2),
            "all_delivered_s": round(complete_in, 2),
            "deliveries_per_s": round(500 * len(members) / complete_in),
            "ack": load.summary_ms(burst.ack),
            "delivery": load.summary_ms(burst.delivery),
            "healed_by_history": burst.healed,
        }
        print(f"L2: {json.dumps(results['L2'])}", flush=True)
        clients += members

        # The oracle, over everything: the steady and burst clients' views, the churners' acks.
        await oracle.settle(clients, soak_url, timeout=90)
        verdict = await asyncio.to_thread(
            oracle.check, soak_url, clients=clients + churned["clients"], views_of=clients, servers=servers
        )
        results["oracle"] = {
            "holds": bool(verdict),
            "problems": verdict.problems,
            "entries_stored": sum(verdict.rows.values()),
            "stored_by_kind": dict(sorted(verdict.kinds.items())),
            "no_op_acks": verdict.no_op_acks,
            "refused": dict(Counter(code for c in clients for code in c.refused.values())),
            "erased_checked": dict(sorted(verdict.erased.items())),
            "older_states_kept": sum(c.older_states for c in clients),
            "rooms": len(verdict.rows),
        }
        channels = await asyncio.to_thread(_pubsub_channels, redis.port)
        results["redis_subscriptions"] = channels
        stop.set()
        await health
        results["healthz_failures"] = health_failures
        bounds = {
            "oracle holds": bool(verdict),
            "RSS growth from minute 1 to the end under 20%": all(g < RSS_GROWTH_BOUND for g in growth),
            "/healthz always 200": not health_failures,
        }
        results["bounds"] = bounds
        return results
    except AssertionError:
        # What CI prints is all there is of a failed run: say how each server was doing before they stop.
        for server in servers:
            print(f"{server.url}: /healthz {oracle.health(server)}; log tail:", flush=True)
            print("\n".join(server.log().splitlines()[-20:]), flush=True)
        raise
    finally:
        stop.set()
        await asyncio.gather(*keepers, return_exceptions=True)
        for client in clients:
            await client.close()
        for server in servers:
            server.stop()
        redis.stop()


def _pubsub_channels(port: int) -> dict[str, int]:
    """How many pub/sub channels Redis holds, by kind (room groups, health checks, other)."""
    import redis

    client = redis.Redis(port=port)
    try:
        names = [n.decode() if isinstance(n, bytes) else n for n in client.pubsub_channels()]
    finally:
        client.close()
    return {
        "total": len(names),
        "room groups": sum("__group__" in n for n in names),
        "healthz channels": sum("healthz." in n for n in names),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2, help="length of L1 (default 2)")
    parser.add_argument("--churn-seconds", type=float, default=60, help="length of L3 (default 60)")
    parser.add_argument("--write-docs", action="store_true", help="write the figures into docs/reliability.md")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    soak_url = prepare_database(os.environ.get("DATABASE_URL", ""))
    os.environ["DATABASE_URL"] = soak_url
    import django

    django.setup()
    began = datetime.datetime.now(datetime.UTC)
    results = asyncio.run(run(args, soak_url))
    results["date"] = began.strftime("%Y-%m-%d %H:%M UTC")
    results["command"] = "make soak"
    out = Path(results["log_dir"]) / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {out}")
    for bound, held in results["bounds"].items():
        print(f"{'ok  ' if held else 'FAIL'} {bound}")
    held = sum(results["bounds"].values())
    print(f"soak: {held} passed, {len(results['bounds']) - held} failed")
    if args.write_docs:
        from soak.report import write_docs

        write_docs(results)
    return 0 if all(results["bounds"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
