"""Where a server's time goes: py-spy samples it during a saturated fan-out, and the stacks are summed up here.

Samples are py-spy's raw (collapsed) stacks, one line per distinct stack with its count, taken with ``--threads``
so the event loop and the database thread stay apart. ``summarize`` turns them into shares of the server's busy
time: by thread, by the stages of a delivery (``STAGES``), and the functions with the most self time.
"""

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from .servers import BIN

# Where a sample's time belongs. First the "owner" rules: a stack with such a frame anywhere belongs to it, the
# first rule that matches winning (so everything under the layer's group_send is the fan-out, whatever it calls).
OWNERS: list[tuple[str, re.Pattern[str]]] = [
    (
        "channel layer: in-memory expiry sweep (_clean_expired, walks every channel)",
        re.compile(r"\._clean_expired \(|\._remove_from_groups \("),
    ),
    ("channel layer: redis (channels_redis, redis-py)", re.compile(r"\((channels_redis|redis)/")),
    (
        "channel layer: group_send (a task and a deepcopy per recipient)",
        re.compile(r"ChannelLayer\.(group_send|send) \("),
    ),
    ("channel layer: receive", re.compile(r"ChannelLayer\.receive \(")),
    ("event loop side of the thread hop (sync_to_async)", re.compile(r"\((asgiref/sync|concurrent/futures)")),
]
DATABASE_CONNECT = "database thread: opening and closing a connection per call"
DATABASE_WAIT = "database thread: waiting for PostgreSQL's answers (round trips, not CPU)"
DATABASE_WORK = "database thread: queries and commits (store, presence, backlog)"
_CONNECTING = re.compile(
    r"get_new_connection|\._close \(|close_old_connections|\.connect \(|ensure_connection|"
    r"init_connection_state|close_if_unusable_or_obsolete"
)
# Then the "leaf" rules, innermost frame first, looking through the event loop's own frames (TRANSPARENT), so
# time in asyncio under channels' dispatch loop is the dispatch loop's.
LEAVES: list[tuple[str, re.Pattern[str]]] = [
    ("JSON encode/decode", re.compile(r"\(json/")),
    (
        "ASGI server: WebSocket frames, socket reads and writes",
        re.compile(
            r"\((uvicorn|daphne|autobahn|websockets|wsproto|httptools)/|\(twisted/internet/(tcp|abstract)|"
            r"untilConcludes \("
        ),
    ),
    (
        "channels' dispatch loop (await_many_dispatch: asyncio.wait, two tasks per event)",
        re.compile(r"await_many_dispatch \("),
    ),
    (
        "channels' session middleware on every send (InstanceSessionWrapper.send, Django's LazyObject)",
        re.compile(r"InstanceSessionWrapper\.send \(|\(django/utils/functional"),
    ),
    (
        "chatsite's fan-out (chat/fanout.py, each socket's send_live in chat/fanout_consumer.py)",
        re.compile(r"\(chat/fanout(_consumer)?\.py|\(chat/outlets\.py"),
    ),
    ("consumer, other channels middleware and Django on the event loop", re.compile(r"\((channels|chat|django)/")),
]
# The servers' start-up frames, at the root of every stack: never what a sample is about.
ROOTS = re.compile(r"\((click/|uvicorn/(main|server|_compat)\.py|daphne/cli\.py)|^Server\.run \(daphne|^<module> ")
TRANSPARENT = re.compile(r"\((asyncio|selectors|collections|copy|functools|enum|typing|<frozen|contextvars|twisted/)")
EVENT_LOOP = "event loop itself (asyncio / uvloop / twisted reactor)"


RATE = 200  # samples per second


def record(pid: int, seconds: int, output: Path, log: Path, rate: int = RATE) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` for ``seconds``; the caller waits for (or ends) the returned process."""
    command = [
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--threads",
        "--nonblocking",
        "--output",
        str(output),
    ]
    with log.open("ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603


def _frames(stack: str) -> tuple[str, list[str]]:
    """The thread name and the frames (outermost first) of one raw stack."""
    parts = stack.split(";")
    thread = ""
    if parts and parts[0].startswith("thread "):
        thread = parts.pop(0).split(":", 1)[-1].strip()
    # Shorten ".../site-packages/django/db/x.py:12" to "django/db/x.py" so the patterns read simply.
    return thread, [re.sub(r":\d+\)$", ")", re.sub(r"\(.*?(site-packages|lib/python3\.\d+)/", "(", f)) for f in parts]


def _waiting(thread: str, frames: list[str]) -> bool:
    """A sample of a thread that only waits: the event loop in its poll (uvloop's epoll_pwait is not one of the
    calls py-spy knows as idle) or the database thread waiting for work."""
    innermost = frames[-1]
    if thread in ("", "MainThread"):
        return innermost.startswith(("Runner.run (", "EpollSelector.select (", "BaseEventLoop.run_forever ("))
    return innermost.startswith(("_worker (concurrent/futures", "Thread.run (", "Condition.wait ("))


def _stage(thread: str, frames: list[str]) -> str:
    joined = ";".join(frames)
    if thread and thread != "MainThread":
        if frames[-1].startswith("Connection.wait (psycopg"):
            return DATABASE_WAIT
        return DATABASE_CONNECT if _CONNECTING.search(joined) else DATABASE_WORK
    for name, pattern in OWNERS:
        if pattern.search(joined):
            return name
    for frame in reversed(frames):
        if ROOTS.search(frame):
            continue
        for name, pattern in LEAVES:
            if pattern.search(frame):
                return name
        if not TRANSPARENT.search(frame):
            break
    return EVENT_LOOP


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Shares of the busy samples by thread, by stage, and by innermost function.

    Samples that only wait are set aside, and so are the database thread's waits for PostgreSQL (reported as a
    share of that thread's time). A busy sample is a thread that could run, not one that did: on a machine with
    more runnable threads than cores, shares are right but counts overstate CPU, so callers scale the shares by
    the CPU the server was measured to use.
    """
    samples = waiting = database_wait = 0
    threads: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, frames = _frames(stack)
        if not frames:
            continue
        if _waiting(thread, frames):
            waiting += count
            continue
        stage = _stage(thread, frames)
        if stage == DATABASE_WAIT:
            # Not CPU: kept apart, as the share of the database thread's time spent waiting for PostgreSQL.
            database_wait += count
            continue
        samples += count
        threads["event loop (MainThread)" if thread in ("", "MainThread") else "worker threads (database)"] += count
        stages[stage] += count
        own[frames[-1]] += count

    def shares(counter: Counter[str], limit: int | None = None) -> list[tuple[str, float]]:
        return [(name, count / samples) for name, count in counter.most_common(limit)] if samples else []

    database = sum(count for name, count in stages.items() if name.startswith("database thread"))
    return {
        "samples": samples,
        "waiting": waiting,
        "threads": shares(threads),
        "stages": shares(stages),
        "database_wait": database_wait / (database + database_wait) if database + database_wait else 0.0,
        "self": shares(own, top),
    }
