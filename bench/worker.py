"""One load-generator process: an asyncio loop holding many ``websockets`` client connections, driven over a pipe.

The coordinator (``bench.swarm``) sends one command at a time and waits for its answer; ``progress`` may be asked
while ``run`` is still going. Every delivery of a log entry, of any kind, is counted per connection by seq (so a
gap is a lost delivery and a repeat a duplicate), and its latency is the receive time minus the send time the
sender wrote into the body of a message or an edit: ``bench:<sender>:<n>:<time.time_ns()>``, then ``:`` and
padding when a run asks for bigger bodies. A reaction has no body: its sender notes the send time by the seq its
ack gives, and the reaction's deliveries are timed with those notes after the run (``op_stats``). Besides its
``websockets`` clients a worker may hold silent sockets (``bench.silent``), which never read until told to.
Every wait here has a deadline.
"""

import asyncio
import json
import os
import random
import time
import traceback
from collections import Counter, deque
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from . import silent
from .stats import Histogram

BODY_PREFIX = "bench:"
# The kinds of entry a sender sends (``op_run``'s ``mix``), as the client frame types name them.
MESSAGE, EDIT, REACT = "message", "edit", "react"
# What a reaction picks from: chatsite's default CHAT_REACTIONS (chatsite/settings.py).
REACTIONS = (
    "\N{THUMBS UP SIGN}",
    "\u2764\ufe0f",
    "\N{FACE WITH TEARS OF JOY}",
    "\N{PARTY POPPER}",
    "\N{FACE WITH OPEN MOUTH}",
    "\N{CRYING FACE}",
    "\N{EYES}",
    "\N{WHITE HEAVY CHECK MARK}",
)
# How many message seqs a sender keeps to choose from: its own latest, to edit; the room's latest, to react to.
RECENT = 16
_MESSAGE_START = '{"type":"message"'
_EDIT_START = '{"type":"edit"'
_REACTION_START = '{"type":"reaction"'
_BODY_START = '"body":"' + BODY_PREFIX


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _room_url(url: str, room: str) -> str:
    return f"{url}/ws/chat/{room}/"


def _room_socket(url: str, origin: str, room: str, timeout: float, **options: Any) -> Any:
    """A websockets ``connect`` to a room as every load-generator client opens one: no compression (the report
    says so) and no keepalive pings of its own. Await it, or use it with ``async with``."""
    return connect(
        _room_url(url, room),
        origin=origin,  # type: ignore[arg-type]
        compression=None,
        ping_interval=None,
        open_timeout=timeout,
        **options,
    )


class RefusedError(Exception):
    """The server accepted the socket, then closed it before its hello."""


class Link:
    """One WebSocket connection: a receiver, and a sender too when it has a sender id."""

    def __init__(self, room: str, sid: int | None) -> None:
        self.room = room
        self.sid = sid
        self.ws: ClientConnection | None = None
        self.hello: asyncio.Future[dict[str, Any]] | None = None
        self.reply: asyncio.Future[dict[str, Any]] | None = None  # the next history answer
        self.base = 0  # the room's last seq when this run began: anything at or below it is old (a backlog)
        self.last = 0  # the highest seq seen
        self.received = 0  # distinct bench messages seen
        self.gaps: list[list[int]] = []  # [lo, hi] runs of seqs skipped, still missing
        self.duplicates = 0
        self.late = 0
        self.backlog = 0  # messages at or below base: a join backlog, or a straggler from an earlier run
        self.last_ns = 0  # when the latest new message arrived
        # Sender side: message number -> send time (ns) and kind, until acked; and the window of unreleased sends.
        self.next_n = 0
        self.unacked: dict[int, tuple[int, str]] = {}
        self.in_flight: dict[int, int] = {}
        self.wake = asyncio.Event()
        # Sender side, for edits and reactions: its name (from hello), the seqs of its own latest messages and of
        # the room's, the reactions it has on (target, emoji), and its reactions not yet echoed, by their fields.
        self.you = ""
        self.own: deque[int] = deque(maxlen=RECENT)
        self.recent: deque[int] = deque(maxlen=RECENT)
        self.reacted: set[tuple[int, str]] = set()
        self.reacting: dict[tuple[int, str, bool], int] = {}
        self.rng = random.Random(sid)  # noqa: S311 - picks targets for a load, not secrets


def _read_fast(text: str, timed: bool) -> tuple[int, str | None] | None:
    """An entry frame's seq, and (``timed``) its body, read without decoding the frame; None for a frame laid out
    otherwise, or a body with escapes."""
    at = text.find('"seq":')
    end = text.find(",", at)
    if at < 0 or end < 0:
        return None
    seq = int(text[at + 6 : end])
    if not timed:
        return seq, None
    start = text.find(_BODY_START, end)
    if start < 0:
        return None
    body = text[start + 8 : text.find('"', start + 8)]
    return None if "\\" in body else (seq, body)


class Worker:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.links: list[Link] = []
        self.silent: list[silent.Silent] = []
        self.readers: set[asyncio.Task[None]] = set()
        self.window_ns = (0, 0)
        self.window_on = "echo"
        self.capacity = 0  # the in-flight window per sender; 0 means fixed rate
        self.body_bytes = 0  # pad bodies to this length (0: no padding)
        self.mix = [MESSAGE]  # the kinds each sender cycles through, by its message number
        self.reset()
        self.done = asyncio.Event()
        self.pending: set[asyncio.Task[None]] = set()

    def reset(self) -> None:
        self.latency = Histogram()  # deliveries of messages sent inside the window
        self.ack_latency = Histogram()  # acks of messages sent inside the window
        self.delivered = 0
        self.delivered_in_window = 0
        self.acked_in_window = 0
        self.sent = 0
        self.acked = 0
        self.errors: dict[str, int] = {}
        self.closed_codes: dict[str, int] = {}
        self.final_seq: dict[str, int] = {}  # the highest acked seq per room
        self.kinds: Counter[str] = Counter()  # entries sent, by kind
        self.stamps: dict[str, dict[int, int]] = {}  # room -> seq -> send time (ns) of this worker's reactions
        self.untimed: list[tuple[str, int, int]] = []  # (room, seq, arrival ns) of reactions delivered here
        self.cpu_marks: list[float] = []
        self.last_sent_ns = 0
        self.reads_sent = 0  # read frames sent (op_run's read_every)

    # Frames in.

    def on_frame(self, link: Link, text: str) -> None:
        # The hot path, once per delivery: read seq (and the body, with its send time) without decoding the whole
        # frame. A frame laid out otherwise, a body with escapes, and a reaction to a sender (which needs its fields
        # to release its window) take the json path below.
        message = text.startswith(_MESSAGE_START)
        timed = message or text.startswith(_EDIT_START)
        if timed or (link.sid is None and text.startswith(_REACTION_START)):
            fast = _read_fast(text, timed)
            if fast is not None:
                self.on_entry(link, *fast, message=message)
                return
        data = json.loads(text)
        kind = data.get("type")
        if kind in (MESSAGE, EDIT):
            self.on_entry(link, data["seq"], data.get("body", ""), message=kind == MESSAGE)
        elif kind == "reaction":
            self.on_reaction(link, data)
        elif kind == "ack":
            self.on_ack(link, data)
        elif kind == "hello":
            link.you = data.get("you", "")
            if link.hello is not None and not link.hello.done():
                link.hello.set_result(data)
        elif kind == "history":
            if link.reply is not None and not link.reply.done():
                link.reply.set_result(data)
        elif kind == "error":
            code = str(data.get("code"))
            self.errors[code] = self.errors.get(code, 0) + 1

    def on_entry(self, link: Link, seq: int, body: str | None, *, message: bool = False) -> None:
        """One entry of the room's log, of any kind, counted by its seq. ``body`` holds the send time (a message's
        or an edit's); None is a reaction's, timed after the run (``op_stats``). A sender notes the room's
        ``message`` seqs, to react to."""
        if seq <= link.base or (body is not None and not body.startswith(BODY_PREFIX)):
            link.backlog += 1
            return
        now = time.time_ns()
        if seq == link.last + 1:
            link.last = seq
        elif seq > link.last:
            link.gaps.append([link.last + 1, seq - 1])
            link.last = seq
        elif self._fill(link, seq):
            link.late += 1
        else:
            link.duplicates += 1
            return
        link.received += 1
        link.last_ns = now
        self.delivered += 1
        start, end = self.window_ns
        if start <= now <= end:
            self.delivered_in_window += 1
        if message and link.sid is not None:
            link.recent.append(seq)
        if body is None:
            self.untimed.append((link.room, seq, now))
            return
        _, sender, number, sent_ns = body.split(":", 4)[:4]  # the fifth part, if any, is padding
        sent = int(sent_ns)
        if start <= sent <= end:
            self.latency.add((now - sent) / 1000)
        if link.sid is not None and self.window_on == "echo" and int(sender) == link.sid:
            self._release_through(link, int(number))

    def on_reaction(self, link: Link, data: dict[str, Any]) -> None:
        """A reaction entry; a sender knows its own by its name and the reaction's fields."""
        if link.sid is not None and data.get("user") == link.you:
            number = link.reacting.pop((data["target"], data["emoji"], data["on"]), None)
            if number is not None and self.window_on == "echo":
                self._release_through(link, number)
        self.on_entry(link, data["seq"], None)

    @staticmethod
    def _fill(link: Link, seq: int) -> bool:
        for index, (lo, hi) in enumerate(link.gaps):
            if lo <= seq <= hi:
                parts = [p for p in ([lo, seq - 1], [seq + 1, hi]) if p[0] <= p[1]]
                link.gaps[index : index + 1] = parts
                return True
        return False

    def on_ack(self, link: Link, data: dict[str, Any]) -> None:
        number = int(str(data["client_id"]).rsplit("-", 1)[1])
        unacked = link.unacked.pop(number, None)
        if unacked is None:
            return
        now = time.time_ns()
        sent, kind = unacked
        self.acked += 1
        seq = data["seq"]
        if seq is not None:  # None: a change that wrote nothing, and nothing ever did
            self.final_seq[link.room] = max(self.final_seq.get(link.room, 0), seq)
            if kind == MESSAGE:
                link.own.append(seq)
            elif kind == REACT:
                self.stamps.setdefault(link.room, {})[seq] = sent
        start, end = self.window_ns
        if start <= sent <= end:
            self.ack_latency.add((now - sent) / 1000)
        if start <= now <= end:
            self.acked_in_window += 1
        if self.window_on == "ack" and link.in_flight.pop(number, None) is not None:
            link.wake.set()

    def _release_through(self, link: Link, number: int) -> None:
        # Echoes arrive in order, so an earlier message still in flight was dropped by the layer: release it too.
        for pending in [n for n in link.in_flight if n <= number]:
            del link.in_flight[pending]
        link.wake.set()

    # Connections.

    async def _read(self, link: Link, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                if isinstance(text, str):
                    self.on_frame(link, text)
        except ConnectionClosed:
            pass
        code = ws.close_code
        self.closed_codes[str(code)] = self.closed_codes.get(str(code), 0) + 1
        if link.hello is not None and not link.hello.done():
            # Closed before its hello (4429: too many sockets, 4404: bad room...): a failed open, at once.
            link.hello.set_exception(RefusedError(f"closed {code} before hello"))

    async def _open(self, link: Link, url: str, origin: str, timeout: float, max_queue: int | None) -> float:
        """Open a link and wait for its hello; returns the seconds that took."""
        started = time.perf_counter()
        link.hello = asyncio.get_running_loop().create_future()
        link.ws = await _room_socket(
            url, origin, link.room, timeout, close_timeout=2, max_size=2**24, max_queue=max_queue
        )
        task = asyncio.create_task(self._read(link, link.ws))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)
        await asyncio.wait_for(link.hello, timeout)
        return time.perf_counter() - started

    async def op_open(
        self,
        url: str,
        origin: str,
        links: list[tuple[str, int | None]],
        concurrency: int,
        timeout: float,
        max_queue: int | None = 16,
    ) -> dict[str, Any]:
        """Open links and wait for their hellos. ``max_queue``: websockets' default of 16 frames, or None for a
        client that never stops reading from TCP however far behind its loop is (a reader that must not look
        slow to the server)."""
        gate = asyncio.Semaphore(concurrency)
        durations: list[float] = []
        failures: dict[str, int] = {}

        async def one(link: Link) -> None:
            async with gate:
                try:
                    durations.append(await self._open(link, url, origin, timeout, max_queue))
                    self.links.append(link)
                except Exception as exc:  # any failure to open is counted and reported, by kind
                    reason = str(exc) if isinstance(exc, RefusedError) else type(exc).__name__
                    failures[reason] = failures.get(reason, 0) + 1
                    if link.ws is not None:
                        await link.ws.close()

        started = time.time()
        await asyncio.gather(*(one(Link(room, sid)) for room, sid in links))
        return {
            "opened": len(durations),
            "failures": failures,
            "durations": durations,
            "started": started,
            "finished": time.time(),
        }

    async def op_close(self, timeout: float) -> dict[str, Any]:
        async def one(link: Link) -> None:
            if link.ws is not None:
                try:
                    await asyncio.wait_for(link.ws.close(), timeout)
                except (TimeoutError, OSError):
                    link.ws.transport.abort()

        await asyncio.gather(*(one(link) for link in self.links))
        closed = len(self.links)
        self.links = []
        return {"closed": closed}

    # Traffic.

    async def _send(self, link: Link) -> None:
        if link.ws is None or link.sid is None:
            return  # not a sender, or not open: nothing to send
        number = link.next_n
        link.next_n += 1
        now = time.time_ns()
        kind, text = self._entry(link, number, now)
        link.unacked[number] = (now, kind)
        if self.capacity:
            link.in_flight[number] = now
        self.sent += 1
        self.kinds[kind] += 1
        self.last_sent_ns = now
        await link.ws.send(text)

    def _entry(self, link: Link, number: int, now: int) -> tuple[str, str]:
        """The kind and frame of a sender's entry ``number``, the run's mix cycled through: an edit of one of its
        own latest messages, a reaction to one of the room's latest (added, or taken back if it has it on), or a
        message, also in place of either while it has no message to change."""
        kind = self.mix[number % len(self.mix)]
        client_id = f"b{link.sid}-{number}"
        if kind == REACT and link.recent:
            target, emoji = link.rng.choice(link.recent), link.rng.choice(REACTIONS)
            on = (target, emoji) not in link.reacted
            link.reacted ^= {(target, emoji)}
            link.reacting[target, emoji, on] = number
            return REACT, json.dumps(
                {"type": REACT, "target": target, "emoji": emoji, "on": on, "client_id": client_id}
            )
        body = f"{BODY_PREFIX}{link.sid}:{number}:{now}"
        if len(body) < self.body_bytes:
            body += ":" + "x" * (self.body_bytes - len(body) - 1)
        if kind == EDIT and link.own:
            target = link.rng.choice(link.own)
            return EDIT, f'{{"type":"edit","target":{target},"body":"{body}","client_id":"{client_id}"}}'
        return MESSAGE, f'{{"type":"message","body":"{body}","client_id":"{client_id}"}}'

    async def _send_at_rate(self, link: Link, begin: float, end: float, interval: float, count: int) -> None:
        """Send every ``interval`` s from ``begin`` until ``end``, and at most ``count`` messages (0: no cap)."""
        loop = asyncio.get_running_loop()
        due, sent = begin, 0
        while due < end and (not count or sent < count):
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                await self._send(link)
            except ConnectionClosed:
                return  # the server closed this sender (its reading task counts the close code): stop sending
            due += interval
            sent += 1

    async def _read_every(self, link: Link, begin: float, end: float, every: float) -> None:
        """Send ``read`` with the highest seq seen every ``every`` s, each link at its own phase."""
        loop = asyncio.get_running_loop()
        due = begin + random.random() * every  # noqa: S311 - spreads a load's phases, not a secret
        while due < end:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if link.ws is None:
                return
            try:
                await link.ws.send(f'{{"type":"read","seq":{link.last}}}')
            except ConnectionClosed:
                return
            self.reads_sent += 1
            due += every

    async def _send_in_window(self, link: Link, begin: float, end: float, stale_ns: int) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, begin - loop.time()))
        while loop.time() < end:
            if len(link.in_flight) >= self.capacity:
                link.wake.clear()
                try:
                    await asyncio.wait_for(link.wake.wait(), min(1.0, max(0.001, end - loop.time())))
                except TimeoutError:
                    # A window that has not moved for a while lost its echoes: free the oldest slots.
                    cutoff = time.time_ns() - stale_ns
                    for number in [n for n, t in link.in_flight.items() if t < cutoff]:
                        del link.in_flight[number]
                continue
            await self._send(link)

    async def op_run(
        self,
        start: float,
        duration: float,
        warmup: float,
        rate: float,
        window: int,
        window_on: str,
        spread: int,
        stale: float,
        ack_wait: float,
        base_seq: dict[str, int],
        count: int = 0,
        body_bytes: int = 0,
        mix: list[str] | None = None,
        read_every: float = 0.0,
    ) -> dict[str, Any]:
        """Send from every sender link: ``rate`` entries/s each (``count`` at most, if given), or as fast as a
        window of ``window`` allows; bodies padded to ``body_bytes``; each sender's entries of the kinds ``mix``
        lists in turn (by default messages only). With ``read_every``, every link, receivers too, also says it
        has read the room up to the highest seq it has, every ``read_every`` s (a page's read marker)."""
        loop = asyncio.get_running_loop()
        self.reset()
        self.capacity, self.window_on, self.body_bytes = window, window_on, body_bytes
        self.mix = mix or [MESSAGE]
        offset = start - time.time()  # seconds from now, wall clock, mapped onto the loop's clock
        begin, end = loop.time() + offset, loop.time() + offset + duration
        self.window_ns = (int((start + warmup) * 1e9), int((start + duration) * 1e9))
        loop.call_at(begin + warmup, lambda: self.cpu_marks.append(_cpu_seconds()))
        loop.call_at(end, lambda: self.cpu_marks.append(_cpu_seconds()))
        for link in self.links:
            # Each run is counted on its own, from the room's last seq when it begins.
            link.base = link.last = base_seq.get(link.room, 0)
            link.received, link.gaps, link.duplicates, link.late = 0, [], 0, 0
        senders = [link for link in self.links if link.sid is not None]
        jobs = []
        for link in senders:
            # Message numbers go on across runs: a client_id used again would be answered as a resend.
            link.unacked, link.in_flight, link.reacting = {}, {}, {}
            if window:
                jobs.append(self._send_in_window(link, begin, end, int(stale * 1e9)))
            else:
                # Stagger all ``spread`` senders of the run over one interval: no burst at the top of each.
                interval = 1 / rate
                phase = interval * ((link.sid or 0) % spread) / spread
                jobs.append(self._send_at_rate(link, begin + phase, end, interval, count))
        if read_every:
            jobs += [self._read_every(link, begin, end, read_every) for link in self.links]
        await asyncio.gather(*jobs)
        deadline = loop.time() + ack_wait
        while any(link.unacked for link in senders) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return {
            "sent": self.sent,
            "acked": self.acked,
            "final_seq": self.final_seq,
            "unacked": sum(len(link.unacked) for link in senders),
            "last_sent": self.last_sent_ns / 1e9,
            "kinds": dict(self.kinds),
            "stamps": self.stamps,
            "reads_sent": self.reads_sent,
        }

    def op_progress(self, final_seq: dict[str, int]) -> dict[str, Any]:
        expected = sum(max(0, final_seq.get(link.room, 0) - link.base) for link in self.links)
        return {
            "expected": expected,
            "received": sum(link.received for link in self.links),
            "last_at": max((link.last_ns for link in self.links), default=0) / 1e9,
        }

    async def op_heal(self, final_seq: dict[str, int], budget: float, concurrency: int) -> dict[str, Any]:
        """Ask ``history`` for every seq a link missed, as chatsite's page does; count what the log gives back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        gate = asyncio.Semaphore(concurrency)
        totals = {"missing": 0, "healed": 0, "requests": 0, "unhealed_in_budget": 0}

        async def one(link: Link) -> None:
            runs = [(lo, hi) for lo, hi in link.gaps]
            if link.last < final_seq.get(link.room, 0):
                runs.append((link.last + 1, final_seq[link.room]))
            missing = sum(hi - lo + 1 for lo, hi in runs)
            totals["missing"] += missing
            healed = 0
            async with gate:
                for lo, hi in runs:
                    top = hi
                    while top >= lo and loop.time() < deadline and link.ws is not None:
                        limit = min(100, top - lo + 1)
                        link.reply = loop.create_future()
                        try:
                            await link.ws.send(json.dumps({"type": "history", "before": top + 1, "limit": limit}))
                        except ConnectionClosed:
                            break  # closed during the run (counted by its close code): what it missed stays missing
                        totals["requests"] += 1
                        try:
                            answer = await asyncio.wait_for(link.reply, max(0.1, deadline - loop.time()))
                        except TimeoutError:
                            break
                        healed += sum(1 for m in answer["messages"] if lo <= m["seq"] <= top)
                        top -= limit
            totals["healed"] += healed
            totals["unhealed_in_budget"] += missing - healed

        await asyncio.gather(*(one(link) for link in self.links))
        return totals

    def op_stats(self, stamps: dict[str, dict[int, int]] | None = None) -> dict[str, Any]:
        """The run's figures. ``stamps``: the send times of the run's reactions, from every worker's ``run``
        answer, to time the reactions delivered here (a reaction sent before the window is not timed, as a
        message is not)."""
        start, end = self.window_ns
        for room, seq, at in self.untimed:
            sent = (stamps or {}).get(room, {}).get(seq)
            if sent is not None and start <= sent <= end:
                self.latency.add((at - sent) / 1000)
        self.untimed = []
        cpu = self.cpu_marks[1] - self.cpu_marks[0] if len(self.cpu_marks) >= 2 else None
        return {
            "latency": self.latency.to_dict(),
            "ack_latency": self.ack_latency.to_dict(),
            "delivered": self.delivered,
            "delivered_in_window": self.delivered_in_window,
            "acked_in_window": self.acked_in_window,
            "sent": self.sent,
            "acked": self.acked,
            "received": sum(link.received for link in self.links),
            "duplicates": sum(link.duplicates for link in self.links),
            "late": sum(link.late for link in self.links),
            "errors": self.errors,
            "closed_codes": self.closed_codes,
            "cpu_seconds": cpu,
        }

    # Joining: open, wait for hello and the backlog, close.

    async def op_join(
        self, url: str, origin: str, room: str, joins: int, concurrency: int, timeout: float
    ) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        hello_s: list[float] = []
        backlog_s: list[float] = []
        close_s: list[float] = []
        failures: dict[str, int] = {}

        async def one() -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    # Others' joins and leaves keep arriving after the backlog; with a bounded queue, unread frames
                    # would pause reading, and the close handshake would wait for close_timeout.
                    async with _room_socket(url, origin, room, timeout, max_size=2**24, max_queue=None) as ws:
                        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                        hello_s.append(time.perf_counter() - started)
                        wanted = min(50, hello.get("last_seq", 0))
                        while wanted > 0:
                            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                            wanted -= frame.get("type") == "message"  # not the joins and leaves of the others
                        backlog_s.append(time.perf_counter() - started)
                        closing = time.perf_counter()
                    close_s.append(time.perf_counter() - closing)
                except Exception as exc:  # any failure to join is counted and reported, by kind
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1

        await asyncio.gather(*(one() for _ in range(joins)))
        return {"hello": hello_s, "backlog": backlog_s, "close": close_s, "failures": failures}

    async def op_seed(self, url: str, origin: str, room: str, count: int, timeout: float) -> dict[str, Any]:
        """Post ``count`` messages to a room, one at a time, each acked before the next."""
        async with _room_socket(url, origin, room, timeout) as ws:
            acked = 0
            for number in range(count):
                await ws.send(json.dumps({"type": "message", "body": f"seed {number}", "client_id": f"seed-{number}"}))
                while acked <= number:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                    if frame.get("type") == "ack":
                        acked += 1
        return {"seeded": acked}

    # Silent sockets: opened, left unread through a run, then read again to see how each one ended.

    async def op_silent_open(
        self, url: str, origin: str, room: str, count: int, rcvbuf: int, timeout: float
    ) -> dict[str, Any]:
        opens = [silent.open_silent(_room_url(url, room), origin, rcvbuf, timeout) for _ in range(count)]
        failures: dict[str, int] = {}
        held = []
        for result in await asyncio.gather(*opens, return_exceptions=True):
            if isinstance(result, silent.Silent):
                held.append(result)
            else:
                failures[type(result).__name__] = failures.get(type(result).__name__, 0) + 1
        self.silent += held
        return {
            "opened": count - sum(failures.values()),
            "failures": failures,
            "rcvbuf": held[0].rcvbuf if held else None,
        }

    async def op_silent_catch_up(self, through: int, timeout: float) -> list[dict[str, Any]]:
        """Read every silent socket again, all at once, until each ends (``bench.silent.catch_up``); close them."""
        deadline = asyncio.get_running_loop().time() + timeout
        held, self.silent = self.silent, []
        return list(await asyncio.gather(*(silent.catch_up(one, through, deadline) for one in held)))

    # The command loop.

    async def handle(self, command: dict[str, Any]) -> None:
        op = command.pop("op")
        try:
            method = getattr(self, f"op_{op}")
            result = method(**command)
            if asyncio.iscoroutine(result):
                result = await result
            self.pipe.send({"ok": result})
        except Exception:
            self.pipe.send({"error": traceback.format_exc()})

    def on_command(self) -> None:
        try:
            # The event loop's add_reader may leave the pipe non-blocking (uvloop does): then a command bigger than
            # the socket buffer (a stats call with many reaction stamps) arrives in parts, and recv() would fail
            # with BlockingIOError halfway. The coordinator writes each command whole, so blocking is brief.
            os.set_blocking(self.pipe.fileno(), True)
            command = self.pipe.recv()
        except (EOFError, OSError):
            # The coordinator is gone: so is the reason to run.
            command = {"op": "exit"}
        if command.get("op") == "exit":
            self.done.set()
            return
        task = asyncio.create_task(self.handle(command))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self.on_command)
        await self.done.wait()
        loop.remove_reader(self.pipe.fileno())
        await self.op_close(timeout=2)
        for one in self.silent:
            one.sock.close()


def main(pipe: Any) -> None:
    """The worker process's entry point."""
    try:
        import uvloop

        uvloop.run(Worker(pipe).serve())
    except ImportError:
        asyncio.run(Worker(pipe).serve())
