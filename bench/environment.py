"""What a run was measured on: command, date, machine, versions and the code under test, for the report."""

import contextlib
import os
import platform
import subprocess
import time
from importlib import metadata
from typing import Any

from .servers import POSTGRES_URL, REDIS_URL, ROOT

PACKAGES = [
    "Django",
    "channels",
    "channels-redis",
    "daphne",
    "Twisted",
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
    "psycopg",
    "redis",
    "psutil",
    "py-spy",
    "matplotlib",
]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115 - a one-shot read
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in open("/proc/meminfo").read().splitlines():  # noqa: SIM115
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603 - git with arguments of our own
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _services() -> dict[str, str]:
    found = {}
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=3) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            found["PostgreSQL"] = str(row[0]) if row else "?"
    with contextlib.suppress(Exception):
        import redis

        found["Redis"] = str(redis.Redis.from_url(REDIS_URL, socket_timeout=3).info("server")["redis_version"])
    return found


def describe(command: str, ref: str | None = None) -> dict[str, Any]:
    versions = {"Python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    import sqlite3

    versions["SQLite"] = sqlite3.sqlite_version
    versions.update(_services())
    changed = "" if ref else _git("status", "--porcelain", "--", "chat", "chatsite")
    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": _cpu_model(),
            "memory_gib": _memory_gib(),
            "kernel": platform.release(),
        },
        "versions": versions,
        "code": {
            "commit": _git("rev-parse", "--short", ref or "HEAD"),
            "subject": _git("log", "-1", "--format=%s", ref or "HEAD"),
            "uncommitted_server_changes": bool(changed),
        },
    }
