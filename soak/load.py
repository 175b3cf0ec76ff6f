"""Load for the soak and the fault tests: clients that keep themselves connected, senders at a fixed rate, and the
latencies they saw.

Every client is a chat.tests.wsclient.ChatClient (it resumes by seq, fills gaps and resends its outbox), kept
connected by ``keep_connected`` as a page is: on a lost socket it reconnects, to the next server in its list if
the one it had does not answer (a load balancer's other process), with a capped backoff. Every loop here has a
deadline or a count, and every wait a timeout.
"""

import asyncio
import contextlib
import itertools
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed, WebSocketException

from chat.tests.wsclient import ChatClient, Folded

CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)


@dataclass
class Recorder:
    """Send times by client_id, and the ack and delivery latencies (seconds) measured against them."""

    sent: dict[str, float] = field(default_factory=dict)
    ack: list[float] = field(default_factory=list)
    delivery: list[float] = field(default_factory=list)
    healed: int = 0  # deliveries that came by history (a gap filled), not as a live or backlog frame

    def reset(self) -> None:
        self.ack.clear()
        self.delivery.clear()
        self.healed = 0


class LoadClient(ChatClient):
    """A ChatClient that reports its latencies to a Recorder and keeps (arrival, latency) of what it received."""

    def __init__(self, *, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder
        # (monotonic arrival, latency, how it came: "message" or "history"), for messages the recorder knows.
        self.arrivals: list[tuple[float, float, str]] = []
        self.disconnected_at: list[float] = []
        self.connected_at: list[float] = []
        self.connect_errors: list[str] = []

    def _queued(self, client_id: str) -> None:
        self.recorder.sent[client_id] = self.sent_at[client_id]

    async def _handle(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        kind = frame["type"]
        if kind == "ack" and frame["client_id"] not in self.acked and frame["client_id"] in self.recorder.sent:
            self.recorder.ack.append(now - self.recorder.sent[frame["client_id"]])
        elif kind == "message":
            self._arrived(frame, now, "message")
        elif kind == "history":
            for message in frame["messages"]:
                self._arrived(message, now, "history")
        await super()._handle(frame)

    def _arrived(self, message: dict[str, Any], now: float, how: str) -> None:
        sent = self.recorder.sent.get(message.get("client_id") or "")
        if sent is None or message["seq"] in self.view:
            return
        self.recorder.delivery.append(now - sent)
        self.arrivals.append((now, now - sent, how))
        if how == "history":
            self.recorder.healed += 1

    def live_since(self, moment: float, *, within: float = 1.0) -> float | None:
        """When this client first got a message sent after ``moment`` as a frame of its own within ``within`` s."""
        for arrival, latency, how in self.arrivals:
            if how == "message" and arrival - latency >= moment and latency <= within:
                return arrival
        return None


async def keep_connected(
    client: ChatClient,
    urls: Sequence[str],
    stop: asyncio.Event,
    *,
    ping_every: float = 2.0,
    resend_after: float = 3.0,
) -> None:
    """Keep ``client`` connected until ``stop``: reconnect (to the next URL after a failure) with a capped backoff,
    ping every ``ping_every`` s (a pong reveals a missed tail), resend what stayed unacknowledged for
    ``resend_after`` s (an ``unavailable`` error names no client_id, so the outbox is resent by age)."""
    index = 0
    backoff = 0.1
    last_ping = 0.0
    was_connected = False
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        if not client.connected:
            if was_connected and isinstance(client, LoadClient):
                client.disconnected_at.append(loop.time())
            was_connected = False
            try:
                await client.connect(urls[index % len(urls)])
            except CONNECT_ERRORS as exc:
                if isinstance(client, LoadClient):
                    client.connect_errors.append(repr(exc))
                index += 1
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            was_connected = True
            backoff = 0.1
            if isinstance(client, LoadClient):
                client.connected_at.append(loop.time())
        now = loop.time()
        with contextlib.suppress(ConnectionClosed):
            if ping_every and now - last_ping >= ping_every:
                last_ping = now
                await client.ping()
            await client.resend(older_than=resend_after)
        await _wait(stop, 0.05)
    await client.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def send_at_rate(
    clients: Sequence[ChatClient],
    *,
    rate: float,
    seconds: float,
    count: int | None = None,
    prefix: str = "m",
    stop: asyncio.Event | None = None,
) -> int:
    """Send ``rate`` messages a second in all, from ``clients`` in turn, for ``seconds`` (or ``count`` messages);
    returns how many were sent. A client that is disconnected keeps its message in the outbox until it is back."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    turn = itertools.cycle(clients)
    while loop.time() - start < seconds and (count is None or sent < count) and not (stop and stop.is_set()):
        await next(turn).send(f"{prefix} {sent}")
        sent += 1
        delay = start + sent / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent


# The shares of a mixed load's turns. A turn with nothing to act on (no message of one's own to edit yet, nobody
# else's to react to) sends a message instead.
MIX = {"message": 0.40, "reply": 0.05, "edit": 0.15, "delete": 0.10, "react": 0.30}
MIX_EMOJI = ("\U0001f44d", "\u2764\ufe0f", "\U0001f389")  # three of CHAT_REACTIONS' defaults
# How many of the newest messages a turn picks its target among, as a person scrolled to the bottom would.
RECENT = 30


async def send_mixed(
    clients: Sequence[ChatClient],
    *,
    rate: float,
    seconds: float,
    prefix: str = "mix",
    stop: asyncio.Event | None = None,
    seed: int = 0,
) -> Counter[str]:
    """Like ``send_at_rate``, but each turn (``rate`` a second in all, from ``clients`` in turn) is, by the shares
    in MIX: a message; a reply to someone else's message; an edit, or a delete, of one of the sender's own
    messages that was acked and is not being deleted; or a reaction to someone else's message, taken back if the
    sender's view shows it on. Targets come from the sender's folded view, so some turns race a delete (and are
    refused ``gone``) or repeat a reaction (and write nothing): both are part of the load. Every body is unique, for
    the oracle's erased-body check. Returns how many turns of each kind were sent.

    The clients must keep one identity across reconnects (a session cookie): a guest without one is someone new
    on each socket, and may not edit what it sent before."""
    rng = random.Random(seed)  # noqa: S311 - a load, not a secret
    loop = asyncio.get_running_loop()
    start = loop.time()
    done: Counter[str] = Counter()
    deleting: dict[int, set[int]] = {id(c): set() for c in clients}
    turn = itertools.cycle(clients)
    kinds, weights = list(MIX), list(MIX.values())
    while loop.time() - start < seconds and not (stop and stop.is_set()):
        client = next(turn)
        number = done.total()
        body = f"{prefix} {number} {uuid.uuid4().hex[:12]}"
        kind = rng.choices(kinds, weights)[0]
        mine = _own_messages(client, deleting[id(client)])
        theirs = [m for m in _recent(client) if m.author != client.you and not m.deleted]
        if kind in ("edit", "delete") and mine:
            target = rng.choice(mine)
            if kind == "edit":
                await client.edit(target, f"{body} edited")
            else:
                deleting[id(client)].add(target)
                await client.delete(target)
        elif kind == "react" and theirs:
            message = rng.choice(theirs)
            emoji = rng.choice(MIX_EMOJI)
            await client.react(message.seq, emoji, on=client.you not in message.reactions.get(emoji, []))
        elif kind == "reply" and theirs:
            await client.send(body, reply_to=rng.choice(theirs).seq)
        else:
            kind = "message"
            await client.send(body)
        done[kind] += 1
        delay = start + done.total() / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return done


def _recent(client: ChatClient) -> list[Folded]:
    return list(itertools.islice(reversed(client.messages.values()), RECENT))


def _own_messages(client: ChatClient, deleting: set[int]) -> list[int]:
    """The seqs of the client's own newest messages that it holds, neither deleted in its view nor being deleted."""
    seqs = []
    for message in _recent(client):
        if message.client_id in client.sent and message.seq not in deleting and not message.deleted:
            seqs.append(message.seq)
    return seqs


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of latencies given in seconds, in milliseconds."""
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values, default=math.nan) * 1000, 1),
    }
