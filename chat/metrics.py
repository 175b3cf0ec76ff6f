"""Counters for /metrics, in Prometheus' text format.

With several worker processes of one server (uvicorn --workers), set PROMETHEUS_MULTIPROC_DIR to an empty
directory so that /metrics adds up all of them; without it each process reports its own.
"""

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest, multiprocess

CONNECTIONS = Gauge("chat_connections", "Open room sockets.", multiprocess_mode="livesum")
CONNECTS = Counter("chat_connects", "Room sockets opened.")
MESSAGES_STORED = Counter("chat_messages_stored", "Messages stored (idempotent resends not counted).")
CHANGES_STORED = Counter(
    "chat_changes_stored", "Edits, deletes and reactions stored (resends and no-ops not counted).", ["kind"]
)
# Stored messages per commit on the socket path is the group commit's batch size (chat.groupcommit.GroupCommit).
MESSAGE_COMMITS = Counter("chat_message_commits", "Transactions that stored messages posted on sockets.")
DELIVERIES = Counter("chat_deliveries", "Live message frames sent to sockets.")
RESUMES = Counter("chat_resumes", "Connections that resumed with ?after=.")
GAPS_HEALED = Counter(
    "chat_gaps_healed",
    "Frames a socket was sent from the log because it missed them live (layer failure, slow reader, joining).",
)
CATCH_UP_READS = Counter(
    "chat_catch_up_reads",
    "Catch-ups of sockets behind: reads of the log (shared=no) and shares of a read in flight (shared=yes).",
    ["shared"],
)
ONLINE_READS = Counter(
    "chat_online_reads",
    "Online lists read for sockets that skipped presence frames: reads (shared=no) and shares (shared=yes).",
    ["shared"],
)
HISTORY_REQUESTS = Counter("chat_history_requests", "History pages served.")
RATE_LIMITED = Counter("chat_rate_limited_frames", "Frames refused by the per-connection rate limit.")
SOCKETS_BEHIND = Gauge(
    "chat_sockets_behind",
    "Sockets over CHAT_SEND_BUFFER_BYTES, skipped by live frames until they drain.",
    multiprocess_mode="livesum",
)
SOCKETS_TOO_SLOW = Counter("chat_sockets_too_slow", "Sockets closed with 4008: behind for CHAT_SEND_BEHIND_SECONDS.")
LAYER_ERRORS = Counter("chat_layer_errors", "Channel-layer calls that failed (Redis down or restarting).")


def count_stored(kind: str) -> None:
    """Count a stored log entry of ``kind`` (chat.models.Kind)."""
    if kind == "message":
        MESSAGES_STORED.inc()
    else:
        CHANGES_STORED.labels(kind=kind).inc()


def exposition() -> tuple[bytes, str]:
    """The current metrics and their content type."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
