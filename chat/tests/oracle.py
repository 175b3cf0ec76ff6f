"""The "nothing lost, nothing stale" oracle, as code: what must hold after every fault, load and abuse scenario.

For each room, whose log holds entries of every kind (messages, edits, deletes, reactions):

1. the database holds seq 1..max with no gap, over all kinds;
2. every client_id that got an ack is stored exactly once, under the seq its ack named, as the kind it was sent
   as (and every ack of one client_id named the same seq); a reaction or delete that wrote nothing may be acked
   with the seq of the entry that made it so, or a reaction with null; a client_id refused for good (``gone``,
   ``forbidden``...) is not stored;
3. every client's final view (after its resume and gap filling) holds every entry of the database, in seq order,
   with no seq holding two different entries; and its folded state of every message (body, edited, deleted,
   reactions as {emoji: [names]}, state_seq) equals the database's;
4. a deleted message's body, and the body of each of its edits, is erased in the database, and appears in no
   frame any client received after the delete was acked, except frames the server may have made before the
   delete was committed: an entry with a lower seq than the delete on a socket opened before the ack, or a
   history page asked for before it;

and for the servers: each one not killed on purpose still answers /healthz, and no server log holds an unhandled
traceback.

The database is read with psycopg from a URL, so the same oracle serves the test database, a private cluster the
harness restarts, and the soak's database. ``check`` gathers every problem instead of stopping at the first, so a
failure says everything that went wrong.
"""

import asyncio
import contextlib
import re
import time
import unicodedata
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from websockets.exceptions import ConnectionClosed

from .servers import Server
from .wsclient import ChatClient, Received, entry_identity


@dataclass(frozen=True, slots=True)
class Row:
    """One entry of a room's log as the database holds it; a message's row holds its current state."""

    seq: int
    kind: str
    client_id: str | None
    body: str
    author: str
    target: int | None = None
    emoji: str = ""
    added: bool | None = None
    reply_to: int | None = None
    edited: bool = False
    deleted: bool = False
    reactions: dict[str, list[list[Any]]] | None = None
    state_seq: int = 0

    @property
    def identity(self) -> tuple[Any, ...]:
        """As chat.tests.wsclient.entry_identity reads it from the entry's frame."""
        if self.kind == "message":
            return (self.kind, self.author, self.client_id, self.reply_to)
        if self.kind == "reaction":
            return (self.kind, self.target, self.author, self.emoji, self.added)
        return (self.kind, self.target, self.author)

    @property
    def state(self) -> tuple[Any, ...]:
        """A message's state as a client folds it (chat.tests.wsclient.Folded): reactions by name."""
        names = {emoji: [person[1] for person in people] for emoji, people in (self.reactions or {}).items()}
        return (self.body, self.edited, self.deleted, names, self.state_seq or self.seq)


def fetch_rows(database_url: str, room: str) -> list[Row]:
    """The room's entries in the database, in seq order."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT m.seq, m.kind, m.client_id, m.body, m.author, m.target_seq, m.emoji, m.added, m.reply_to_seq, "
            "m.edited_at IS NOT NULL, m.deleted_at IS NOT NULL, m.reactions, COALESCE(m.state_seq, m.seq) "
            "FROM chat_message m JOIN chat_room r ON r.id = m.room_id WHERE r.name = %s ORDER BY m.seq",
            (room,),
        ).fetchall()
    return [Row(*row) for row in rows]


def fetch_presence(database_url: str, room: str) -> set[str]:
    """The names with a presence row in the room (fresh or not)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT p.name FROM chat_presence p JOIN chat_room r ON r.id = p.room_id WHERE r.name = %s",
            (room,),
        ).fetchall()
    return {name for (name,) in rows}


# A line a logging call wrote: "2026-11-28 08:00:00,000 WARNING chat.consumers ..." (chatsite's LOGGING format).
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ (?P<logger>\S+) ")


def tracebacks(log: str) -> tuple[list[str], list[str]]:
    """The tracebacks in a server log, split into (handled, unhandled).

    A traceback is handled when chatsite's own code logged it on purpose (a record of a ``chat.`` logger with its
    stack). Every other one is unhandled: uvicorn's "Exception in ASGI application", asyncio's "Task exception was
    never retrieved", Django's request errors, or a bare stack printed by the interpreter.
    """
    handled: list[str] = []
    unhandled: list[str] = []
    lines = log.splitlines()
    header = ""  # the last line that began a log record
    in_stack = after_stack = False
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            excerpt = "\n".join([header, *lines[index : index + 40]])
            match = _RECORD.match(header)
            (handled if match and match["logger"].startswith("chat.") else unhandled).append(excerpt)
            in_stack, after_stack = True, False
        elif in_stack and (not line or line[0].isspace()):
            continue  # a frame of the stack
        elif in_stack:
            in_stack, after_stack = False, True  # the exception's own line ends the stack
        elif after_stack and (not line or _CHAINED.match(line)):
            continue  # "During handling of the above exception..." between chained stacks
        elif line and not line[0].isspace():
            header, after_stack = line, False
    return handled, unhandled


_CHAINED = re.compile(r"^(During handling of the above exception|The above exception was the direct cause)")


@dataclass
class Verdict:
    """What the oracle found; ``problems`` is empty when everything held."""

    problems: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # room -> entries stored
    kinds: Counter[str] = field(default_factory=Counter)  # entries stored by kind, over all rooms
    handled_tracebacks: int = 0
    no_op_acks: int = 0  # acks of a reaction or delete that wrote nothing
    # The erased-body check's reach: deletes acked whose bodies a client sent, those bodies, the frames it read.
    erased: Counter[str] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return not self.problems

    def report(self) -> str:
        return "\n".join(f"- {problem}" for problem in self.problems)


def check_log(room: str, rows: list[Row]) -> list[str]:
    seqs = [row.seq for row in rows]
    if seqs != list(range(1, len(rows) + 1)):
        missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        return [f"room {room}: seqs are not 1..{len(rows)} without a gap (missing {missing[:20]})"]
    return []


# The kind of entry each client frame type writes.
KIND_OF = {"message": "message", "edit": "edit", "delete": "delete", "react": "reaction"}


def _answers_no_op(frame: dict[str, Any], seq: int | None, by_seq: dict[int, Row]) -> bool:
    """Whether an ack of ``frame`` whose client_id was not stored is the answer to a change that wrote nothing:
    a reaction already so (the seq of the entry that made it so, or null), or a delete of a deleted message (the
    seq of its delete)."""
    if frame["type"] == "react" and seq is None:
        return True
    row = by_seq.get(seq) if seq is not None else None
    if row is None:
        return False
    if frame["type"] == "react":
        wanted = ("reaction", frame["target"], frame["emoji"], frame["on"])
        return (row.kind, row.target, row.emoji, row.added) == wanted
    return frame["type"] == "delete" and (row.kind, row.target) == ("delete", frame["target"])


def check_acks(room: str, rows: list[Row], clients: Iterable[ChatClient]) -> tuple[list[str], int]:
    """The problems with the clients' acks and refusals, and how many acks answered a change that wrote nothing."""
    problems: list[str] = []
    no_ops = 0
    stored = Counter(row.client_id for row in rows if row.client_id is not None)
    by_client_id = {row.client_id: row for row in rows if row.client_id is not None}
    by_seq = {row.seq: row for row in rows}
    for client_id, count in stored.items():
        if count > 1:
            problems.append(f"room {room}: client_id {client_id} stored {count} times")
    for client in clients:
        for client_id, old, new in client.ack_conflicts:
            problems.append(f"room {room}: client_id {client_id} acked as seq {old}, then as seq {new}")
        for client_id, seq in client.acked.items():
            frame = client.sent.get(client_id, {"type": "message"})
            row = by_client_id.get(client_id)
            if row is None:
                if _answers_no_op(frame, seq, by_seq):
                    no_ops += 1
                else:
                    problems.append(
                        f"room {room}: client_id {client_id} ({frame['type']}) acked (seq {seq}) but not stored"
                    )
            elif row.seq != seq:
                problems.append(f"room {room}: client_id {client_id} acked as seq {seq}, stored as {row.seq}")
            elif row.kind != KIND_OF[frame["type"]] or row.target != frame.get("target"):
                problems.append(f"room {room}: client_id {client_id} sent as {frame}, stored as {row}")
        for client_id, code in client.refused.items():
            if client_id in by_client_id:
                problems.append(f"room {room}: client_id {client_id} refused ({code}) but stored")
        for request, answer in client.reply_mismatches[:3]:
            problems.append(f"room {room}: {client.you} took {answer} as the answer to {request}")
    return problems, no_ops


def check_views(room: str, rows: list[Row], clients: Iterable[ChatClient]) -> list[str]:
    """Each client holds every entry, the same entry under each seq, and every message in its current state."""
    problems: list[str] = []
    expected = [(row.seq, row.identity) for row in rows]
    states = {row.seq: row.state for row in rows if row.kind == "message"}
    for client in clients:
        view = [(seq, entry_identity(entry)) for seq, entry in sorted(client.view.items())]
        if client.conflicts:
            problems.append(f"room {room}: {client.you} saw {len(client.conflicts)} seqs with two different entries")
        if view != expected:
            have = {seq for seq, _ in view}
            missing = [seq for seq, _ in expected if seq not in have]
            wrong = [v for v in view if v not in expected]
            problems.append(
                f"room {room}: {client.you}'s view differs from the database: {len(view)} vs {len(expected)} "
                f"entries, missing seqs {missing[:20]}, not in the database {wrong[:5]} (connected="
                f"{client.connected}, connections={client.connections}, close codes {client.close_codes[-5:]})"
            )
        stale = [
            (seq, client.messages[seq], state)
            for seq, state in states.items()
            if seq in client.messages and _folded_state(client, seq) != state
        ]
        if stale:
            seq, folded, state = stale[0]
            problems.append(
                f"room {room}: {client.you}'s folded state of {len(stale)} messages differs from the database's, "
                f"first #{seq}: {folded} vs (body, edited, deleted, reactions, state_seq) {state}"
            )
    return problems


def _folded_state(client: ChatClient, seq: int) -> tuple[Any, ...]:
    m = client.messages[seq]
    return (m.body, m.edited, m.deleted, m.reactions, m.state_seq)


def check_erased(room: str, rows: list[Row], clients: Iterable[ChatClient]) -> tuple[list[str], Counter[str]]:
    """A deleted message's body and its edits' bodies are gone from the database and from every frame that was
    made after the delete (see the module's docstring, 4); the problems, and how much was checked."""
    problems: list[str] = []
    checked: Counter[str] = Counter()
    clients = list(clients)
    by_seq = {row.seq: row for row in rows}
    edits_of: dict[int, list[Row]] = {}
    for row in rows:
        if row.kind == "edit" and row.target is not None:
            edits_of.setdefault(row.target, []).append(row)
    sent = {client_id: frame for c in clients for client_id, frame in c.sent.items()}
    acked_at: dict[str, float] = {}
    for c in clients:
        for client_id, at in c.acked_at.items():
            acked_at[client_id] = min(at, acked_at.get(client_id, at))
    # body -> (the message it was erased from, the seq of its delete, when the delete was first acked)
    erased: dict[str, tuple[int, int, float]] = {}
    for delete in (row for row in rows if row.kind == "delete" and row.target in by_seq):
        assert delete.target is not None
        versions = [by_seq[delete.target], *edits_of.get(delete.target, [])]
        kept = [v.seq for v in versions if v.body]
        if kept:
            problems.append(f"room {room}: #{delete.target} was deleted (#{delete.seq}) but #{kept} keep a body")
        if delete.client_id not in acked_at:
            continue
        bodies = [_stored_text(sent[v.client_id]["body"]) for v in versions if v.client_id in sent]
        checked["deletes"] += 1
        checked["bodies"] += len(bodies)
        for body in bodies:
            erased[body] = (delete.target, delete.seq, acked_at[delete.client_id])
    if not erased:
        return problems, checked
    first_ack = min(at for _, _, at in erased.values())
    for client in clients:
        for received in client.received:
            if received.at <= first_ack:
                continue
            checked["frames"] += 1
            for text in _strings(received.frame):
                found = erased.get(text)
                if found is None:
                    continue
                target, delete_seq, at = found
                if received.at > at and not _maybe_made_before(client, received, delete_seq, at):
                    problems.append(
                        f"room {room}: {client.you} received the erased body {text!r} of #{target} in a "
                        f"{received.frame['type']} frame {received.at - at:.2f} s after its delete #{delete_seq} was "
                        f"acked (connection {received.connection})"
                    )
    return problems, checked


def _stored_text(body: str) -> str:
    """A body as the server stores it (chat.protocol.clean_body): NFC, trimmed."""
    return unicodedata.normalize("NFC", body).strip()


def _strings(value: Any) -> Iterator[str]:
    """Every string in a frame, however deep (a body, a quote's body, a history page's entries' bodies)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _maybe_made_before(client: ChatClient, received: Received, delete_seq: int, acked_at: float) -> bool:
    """Whether the server may have made this frame before the delete was committed: a history page asked for
    before its ack, or an entry below the delete's seq on a socket opened before it (live, in flight, or
    backlog). A socket opened after the ack gets its backlog, catch-ups and pages read after the commit, and
    drops live entries the backlog covered."""
    if received.frame["type"] == "history":
        return received.asked_at is None or received.asked_at < acked_at
    seq = received.frame.get("seq")
    return seq is not None and seq < delete_seq and client.opened_at[received.connection - 1] < acked_at


def check_servers(servers: Iterable[Server], *, killed: Iterable[Server] = ()) -> tuple[list[str], int]:
    """Problems with the servers, and how many handled tracebacks their logs hold."""
    problems: list[str] = []
    handled_count = 0
    killed = list(killed)
    for server in servers:
        if server not in killed:
            if not server.running:
                problems.append(f"server {server.url} exited (code {server.process and server.process.returncode})")
            elif not healthy_within(server, HEALTH_DEADLINE_SECONDS):
                problems.append(f"server {server.url} does not answer /healthz with 200: {health(server)}")
        handled, unhandled = tracebacks(server.log())
        handled_count += len(handled)
        for excerpt in unhandled[:3]:
            problems.append(f"server {server.url} logged an unhandled traceback:\n{excerpt}")
        if len(unhandled) > 3:
            problems.append(f"server {server.url} logged {len(unhandled) - 3} more unhandled tracebacks")
    return problems, handled_count


# A fault may have just ended: a server counts as healthy if /healthz answers 200 within this many seconds.
HEALTH_DEADLINE_SECONDS = 10


def healthy_within(server: Server, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not server.healthy():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def health(server: Server) -> str:
    """What /healthz says, for a failure message."""
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:  # noqa: S310 - loopback
            return f"{response.status} {response.read().decode()}"
    except urllib.error.HTTPError as error:
        return f"{error.code} {error.read().decode()}"
    except OSError as error:
        return repr(error)


async def settle(
    clients: Iterable[ChatClient], database_url: str, *, timeout: float = 30, what: str = "every view complete"
) -> None:
    """Wait until every (connected) client has resent its outbox and its view reaches the room's last seq.

    Each round resends what is still unacknowledged and pings: a pong's last_seq makes the client fetch any tail
    it missed. Raises AssertionError, naming the laggards, at the deadline.
    """
    clients = list(clients)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last = {}
        for room in {c.room for c in clients}:
            rows = await asyncio.to_thread(fetch_rows, database_url, room)
            last[room] = len(rows)
        behind = [c for c in clients if c.outbox or c.contiguous < last[c.room] or len(c.view) != last[c.room]]
        if not behind:
            return
        if loop.time() > deadline:
            detail = ", ".join(
                f"{c.you or '?'}(connected={c.connected}, view={len(c.view)}/{last[c.room]}, outbox={len(c.outbox)}, "
                f"connections={c.connections}, close codes {c.close_codes[-3:]}, reader failures "
                f"{c.reader_failures[-1:]}, connect errors {getattr(c, 'connect_errors', [])[-1:]})"
                for c in behind[:10]
            )
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {detail}")
        for client in behind:
            if client.connected:
                await client.resend(older_than=1.0)
                with contextlib.suppress(ConnectionClosed, AssertionError):  # reconnected, then asked again
                    await client.ping()
        await asyncio.sleep(0.25)


def check(
    database_url: str,
    *,
    clients: Iterable[ChatClient],
    views_of: Iterable[ChatClient] | None = None,
    servers: Iterable[Server] = (),
    killed: Iterable[Server] = (),
) -> Verdict:
    """Run every check of the oracle. ``clients`` are all whose acks count (including ones that left);
    ``views_of`` those whose view must equal the database (by default all of ``clients``)."""
    clients = list(clients)
    views_of = clients if views_of is None else list(views_of)
    verdict = Verdict()
    for room in sorted({c.room for c in clients}):
        rows = fetch_rows(database_url, room)
        verdict.rows[room] = len(rows)
        verdict.kinds.update(row.kind for row in rows)
        in_room = [c for c in clients if c.room == room]
        verdict.problems += check_log(room, rows)
        ack_problems, no_ops = check_acks(room, rows, in_room)
        verdict.problems += ack_problems
        verdict.no_op_acks += no_ops
        verdict.problems += check_views(room, rows, [c for c in views_of if c.room == room])
        erased_problems, checked = check_erased(room, rows, in_room)
        verdict.problems += erased_problems
        verdict.erased.update(checked)
    server_problems, verdict.handled_tracebacks = check_servers(servers, killed=killed)
    verdict.problems += server_problems
    return verdict
