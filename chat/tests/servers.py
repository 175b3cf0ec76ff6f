"""Real chatsite server processes for multi-process tests: started on free loopback ports, always stopped."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_REDIS = os.environ.get("CHAT_REQUIRE_REDIS") == "1"


def require_redis_and_postgres() -> None:
    """Skip (or, with CHAT_REQUIRE_REDIS=1, fail) where the test run is not on PostgreSQL and Redis."""
    missing = []
    if not settings.REDIS_URL:
        missing.append("REDIS_URL is not set")
    if connection.vendor != "postgresql":
        missing.append("DATABASE_URL is not PostgreSQL")
    if not missing:
        return
    reason = "; ".join(missing) + " (run `make test-scale`)"
    if REQUIRE_REDIS:
        raise AssertionError(f"CHAT_REQUIRE_REDIS=1 but {reason}")
    raise unittest.SkipTest(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url() -> str:
    """The URL of the database this test run uses (the test database), for server processes to share."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    return f"postgres://{credentials}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


_static_collected = False


def collect_static() -> None:
    """Collect the static files, once per test run, as a deploy does (Dockerfile): servers run with debug off, so
    a page that names a static file the manifest lacks answers 500. Only tests that load pages need it."""
    global _static_collected
    if _static_collected:
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "collectstatic-only"},
        check=True,
        timeout=120,
    )
    _static_collected = True


class Server:
    """One uvicorn (or, with ``daphne=True``, daphne) process serving chatsite.asgi, with production settings over
    plain HTTP."""

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        args: list[str] | None = None,
        daphne: bool = False,
    ) -> None:
        self.daphne = daphne
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        # Extra uvicorn options, e.g. ["--ws-ping-interval", "1", "--ws-ping-timeout", "2"].
        self.extra_args = args or []
        self.log_path = (log_dir or Path(tempfile.gettempdir())) / f"chatsite-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> "Server":
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DJANGO_DEBUG": "false",
            # The test process signs the session cookies the clients present.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "DJANGO_SECURE": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CHAT_RATE_LIMIT_BURST": "0",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        if self.daphne:
            command = ["daphne", "-b", "127.0.0.1", "-p", str(self.port), "-v", "1", "chatsite.asgi:application"]
        else:
            command = ["uvicorn", "chatsite.asgi:application", "--host", "127.0.0.1", "--port", str(self.port)]
            command += ["--no-access-log", "--log-level", "warning"]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [sys.executable, "-m", *command, *self.extra_args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log_path}")
            if self.healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server on {self.url} was not healthy within {timeout}s; see {self.log_path}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310 - loopback
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, Redis or the database."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM, as a deployment's rolling restart sends; returns at once (see ``wait``)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code once the process has ended within ``timeout`` seconds, else None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc), 0 when it is not running."""
        if not self.running:
            return 0
        assert self.process is not None
        return rss_bytes(self.process.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer:
    """A private redis-server on a free port, so a test can restart it without touching anyone else's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> "RedisServer":
        executable = shutil.which("redis-server")
        if executable is None:
            raise unittest.SkipTest("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line, no shell
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    stop = kill

    def shutdown(self) -> None:
        """A clean stop: SIGTERM, which redis-server answers by closing its clients' connections and exiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def command(self, *words: str) -> bytes:
        """One command in Redis' inline protocol, and the first line of its answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(" ".join(words).encode() + b"\r\n")
            return conn.recv(65536).split(b"\r\n", 1)[0]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (0 where that cannot be read)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory on a free port, so a test can stop and restart it
    without touching the machine's own. Run as the ``postgres`` OS user when the tests run as root (initdb refuses
    root). Trust authentication on loopback only; fsync off, since its data is thrown away."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.bindir = _postgres_bindir()
        self.dir: Path | None = None
        self.log_path: Path | None = None

    def _run(self, *argv: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, timeout=timeout, capture_output=True)  # noqa: S603

    def start(self) -> "PostgresServer":
        if self.bindir is None:
            raise unittest.SkipTest("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="chatsite-pg-"))
            self.log_path = self.dir / "server.log"
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(str(self.bindir / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.log_path), "-o", options,
            "-w", "-t", "30", "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` disconnects every client cleanly, ``immediate`` is a crash (no checkpoint)."""
        if self.dir is not None and self.bindir is not None and (self.dir / "data" / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the cluster and delete its files."""
        try:
            self.stop("immediate")
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def migrate(self) -> None:
        """Create chatsite's tables in this cluster, as a deployment's ``manage.py migrate`` does."""
        env = {**os.environ, "DATABASE_URL": self.url, "REDIS_URL": ""}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
