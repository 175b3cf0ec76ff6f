"""The servers under test: what each target runs, starting it on a free loopback port, watching it, stopping it.

Every server runs in its own process group and is stopped (SIGTERM, then SIGKILL) by ``Server.stop``, which the
runner calls in a ``finally`` even on Ctrl-C. chatsite gets a fresh database per start (a temporary SQLite file,
or a PostgreSQL database the bench drops and creates), migrated first.
"""

import contextlib
import ctypes
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"
POSTGRES_DB = "chatsite_bench"
REDIS_URL = "redis://127.0.0.1:6379"
# Redis databases of their own, flushed before each start, so the bench never touches anyone else's keys.
REDIS_DB = {"chatsite": 13, "tutorial": 14}


@dataclass(frozen=True)
class Target:
    name: str
    app: str  # "chatsite", "baseline" or "tutorial"
    server: str  # "uvicorn" or "daphne"
    database: str | None = None  # "sqlite" or "postgres", for chatsite
    redis: bool = False
    url: str | None = None  # an external deployment: nothing is started
    env: tuple[tuple[str, str], ...] = ()  # extra environment for the server
    scenarios: tuple[str, ...] | None = None  # only these (default: all)

    @property
    def label(self) -> str:
        if self.url:
            return f"{self.name} (external {self.url})"
        parts = [self.app, self.server]
        if self.database:
            parts.append("SQLite" if self.database == "sqlite" else "PostgreSQL")
        if self.app == "tutorial":
            parts.append("RedisChannelLayer")
        elif self.app == "chatsite":
            parts.append("Redis (chatsite's default layer for REDIS_URL)" if self.redis else "InMemoryChannelLayer")
        parts.extend(f"{name}={value}" for name, value in self.env)
        return " · ".join(parts)

    @property
    def persists(self) -> bool:
        return self.app == "chatsite"


TARGETS = {
    target.name: target
    for target in [
        Target("baseline", "baseline", "uvicorn"),
        # daphne against uvicorn is a question of the socket path: fan-out, connections, joins, slow readers.
        Target(
            "chatsite-daphne",
            "chatsite",
            "daphne",
            database="sqlite",
            scenarios=("connect", "join", "fanout", "mixed", "slow"),
        ),
        Target("chatsite-uvicorn", "chatsite", "uvicorn", database="sqlite"),
        Target("chatsite-pg-redis", "chatsite", "uvicorn", database="postgres", redis=True),
        Target("tutorial", "tutorial", "daphne", redis=True, scenarios=("fanout", "mixed")),
    ]
}


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the bench dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def export_tree(ref: str, into: Path) -> Path:
    """chatsite's files at git ``ref``, extracted into ``into``: to measure another version beside this one."""
    archive = subprocess.run(  # noqa: S603 - git with arguments of our own
        ["git", "archive", "--format=tar", ref],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def snapshot_tree(into: Path) -> Path:
    """A copy of the working tree as it is now, so that every chatsite server of a run runs the same code."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", "results", "__pycache__", "*_cache", ".hypothesis", "staticfiles", "*.sqlite3*", "node_modules"
    )
    shutil.copytree(ROOT, into, ignore=skip)
    return into


def _flush_redis(db: int) -> None:
    import redis

    redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()


def _recreate_postgres() -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {POSTGRES_DB} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {POSTGRES_DB}")


class Server:
    """One running server process of a target, with the database it was given."""

    def __init__(self, target: Target, log_dir: Path, source: Path = ROOT) -> None:
        self.target = target
        self.source = source if target.app == "chatsite" else ROOT  # where chatsite's code is run from
        self.port = free_port()
        self.url = f"ws://{HOST}:{self.port}"
        self.origin = f"http://{HOST}:{self.port}"
        self.log_path = log_dir / f"{target.name}.log"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{target.name}-"))
        self.env = self._environment()
        self.process: subprocess.Popen[bytes] | None = None
        self.psutil: psutil.Process | None = None

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        env.update(
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY=f"bench-{secrets.token_hex(16)}",
            DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
            CHAT_RATE_LIMIT_BURST="0",  # the per-connection bucket would throttle the senders
            CHAT_MAX_SOCKETS_PER_CLIENT="0",  # every client comes from 127.0.0.1: no cap per address
            CHAT_LOG_LEVEL="WARNING",  # one INFO line per connect would be measured too
        )
        for name in ("DATABASE_URL", "REDIS_URL"):
            env.pop(name, None)
        if self.target.database == "sqlite":
            env["DATABASE_URL"] = f"sqlite:///{self.tmp / 'db.sqlite3'}"
        elif self.target.database == "postgres":
            env["DATABASE_URL"] = f"{POSTGRES_URL}/{POSTGRES_DB}"
        if self.target.redis:
            env["REDIS_URL"] = f"{REDIS_URL}/{REDIS_DB[self.target.app]}"
        env.update(self.target.env)
        return env

    def command(self) -> list[str]:
        app = {
            "chatsite": "chatsite.asgi:application",
            "baseline": "bench.baseline:app",
            "tutorial": "bench.tutorial:application",
        }[self.target.app]
        if self.target.server == "daphne":
            # --ping-timeout as for uvicorn below (daphne's default is 30 s).
            return [str(BIN / "daphne"), "-b", HOST, "-p", str(self.port), "-v", "0", "--ping-timeout", "60", app]
        return [
            str(BIN / "uvicorn"),
            app,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "auto",
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--no-access-log",
            # As docs/deploy.md runs it: a keepalive that outlasts chatsite's own bound on a slow reader.
            "--ws-ping-timeout",
            "60",
        ]

    def start(self, timeout: float = 60) -> None:
        if self.target.database == "postgres":
            _recreate_postgres()
        if self.target.redis:
            _flush_redis(REDIS_DB[self.target.app])
        with self.log_path.open("ab") as log:
            if self.target.database:
                subprocess.run(
                    [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                    cwd=self.source,
                    env=self.env,
                    stdout=log,
                    stderr=log,
                    check=True,
                    timeout=timeout,
                )
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                self.command(),
                cwd=self.source,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.psutil = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.target.name} did not listen on {self.port} within {timeout:.0f} s")

    def count_messages(self, room_prefix: str) -> int | None:
        """Messages stored in rooms whose name starts with ``room_prefix``, read from the database itself."""
        query = "SELECT count(*) FROM chat_message m JOIN chat_room r ON m.room_id = r.id WHERE r.name LIKE %s"
        if self.target.database == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.tmp / "db.sqlite3", timeout=20)) as connection:
                return connection.execute(query.replace("%s", "?"), (room_prefix + "%",)).fetchone()[0]
        if self.target.database == "postgres":
            import psycopg

            with psycopg.connect(f"{POSTGRES_URL}/{POSTGRES_DB}") as connection:
                row = connection.execute(query, (room_prefix + "%",)).fetchone()
                return row[0] if row else None
        return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # Watching: CPU seconds and RSS of the server process and any children it has.

    @property
    def watched(self) -> bool:
        return True

    def _tree(self) -> list[psutil.Process]:
        if self.psutil is None:
            return []
        try:
            return [self.psutil, *self.psutil.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def settle(self, *, below: float = 0.03, span: float = 0.5, timeout: float = 60) -> float:
        """Wait until the server uses less than ``below`` of a core over ``span`` s; returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            before = self.cpu_seconds()
            time.sleep(span)
            if (self.cpu_seconds() - before) / span < below:
                break
        return time.monotonic() - started


_redis: list[psutil.Process] = []


def redis_cpu_seconds() -> float | None:
    """CPU seconds of the Redis at REDIS_URL's port, to report what the layer costs outside the server process."""
    port = int(REDIS_URL.rsplit(":", 1)[1])
    try:
        if not _redis or not _redis[0].is_running():
            _redis[:] = [
                psutil.Process(c.pid)
                for c in psutil.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid
            ][:1]
        if _redis:
            times = _redis[0].cpu_times()
            return times.user + times.system
    except (psutil.Error, OSError):
        _redis.clear()
    return None


class External(Server):
    """A deployment the bench does not start or stop: its URL, and optionally the PID of a local server to watch."""

    def __init__(self, url: str, origin: str | None, pid: int | None, log_dir: Path) -> None:
        self.target = Target("external", "chatsite", "external", url=url)
        self.url = url.rstrip("/")
        http = self.url.replace("wss://", "https://").replace("ws://", "http://")
        self.origin = origin or http
        self.log_path = log_dir / "external.log"
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-external-"))
        self.process = None
        self.psutil = psutil.Process(pid) if pid else None

    @property
    def watched(self) -> bool:
        return self.psutil is not None

    def start(self, timeout: float = 60) -> None:
        pass

    def stop(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def settle(self, *, below: float = 0.03, span: float = 0.5, timeout: float = 60) -> float:
        if self.psutil is not None:
            return super().settle(below=below, span=span, timeout=timeout)
        time.sleep(2)
        return 2.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes, interrupts included)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
