"""FanoutConsumer: an AsyncWebsocketConsumer fed by the process's room fan-out, with a bound on what it holds.

A socket is *live* (the fan-out's frames are written to it as they come) or *behind* (they are not, and it is
caught up from the log instead). The log already holds everything a socket missed, so falling behind costs no
memory per frame: the server holds at most CHAT_SEND_BUFFER_BYTES for a socket, whatever its reader does.

- Live, a frame goes straight to the server's ``send`` when the outlet (chat.outlets) says that returns without
  waiting; otherwise into the socket's outbox, which the socket's own writer task sends. The fan-out never waits.
- When the server's buffer and the outbox would exceed the bound, the socket falls behind: the fan-out skips it
  and notes the highest seq it skipped. Its writer sends what the outbox still holds, then reads the log after
  the last seq it sent, page by page, each page only once the previous one has drained, and goes live again when
  nothing it skipped is left unsent: no gap, no duplicate. Opening a socket is the same catch-up: it joins the
  room behind, sends ``hello`` and the backlog, then catches up whatever arrived meanwhile.
- A socket behind for CHAT_SEND_BEHIND_SECONDS is closed with 4008 (a timer of its own, never the room's loop):
  the close frame goes behind what the server holds for it, so a reader that comes back reads what it had, then
  the close, and resumes. A connection still open CHAT_SEND_BEHIND_SECONDS later is dropped.
"""

import asyncio
import logging
import time
import uuid
from collections import deque
from typing import Any

from channels.consumer import get_handler_name
from channels.db import aclose_old_connections
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from . import metrics, protocol
from .fanout import hub
from .outlets import Outlet, outlet_for

logger = logging.getLogger(__name__)

# How long a 4008 close may wait for the server's send before it is written behind the buffered data instead.
CLOSE_SECONDS = 1.0
# How often a socket behind checks whether its server has drained it (daphne gives no signal; uvicorn's send waits).
DRAIN_POLL_SECONDS = 0.1
# How long a catch-up waits before reading the log again after the database failed it.
RETRY_SECONDS = 1.0
# Live seqs sent above a hole (broadcasts of several processes arrive in any order) that a socket remembers; past
# this many the hole is not a late broadcast but a lost one, and the socket catches up from the log.
MAX_AHEAD = 32


class TooSlow(Exception):
    """The socket did not drain within CHAT_SEND_BEHIND_SECONDS."""


class FanoutConsumer(AsyncWebsocketConsumer):
    """An AsyncWebsocketConsumer whose group events come from chat.fanout instead of a layer channel of its own.

    It overrides two things of Channels' consumer, for speed, and keeps the rest (connect / receive / disconnect,
    accept / send / close, handlers named after event types):

    - ``__call__`` takes no layer channel: the process's fan-out subscribes to each room once, and calls this
      socket's handlers (``chat.message`` -> ``chat_message``). A per-socket channel would cost a Redis
      subscription per connection, and a queue hop and a task wake-up per delivery.
    - ``dispatch`` skips the thread hop to ``aclose_old_connections`` before each frame (docs/performance.md):
      database work runs through database_sync_to_async, which closes stale connections in its own thread.

    Handlers of live events must not wait for the socket: they call ``send_live``. Subclasses say what a
    catch-up reads (``read_log``) and what to send when presence frames were skipped (``presence_missed``) or
    frames for this person alone (``own_missed``).
    """

    # No layer groups of its own (AsyncWebsocketConsumer would give each socket a new list): see join().
    groups = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_id = uuid.uuid4().hex
        self.room_name: str | None = None
        self.joined_at = 0.0  # time.monotonic() when it joined its room's group
        self.person = ""  # whose socket it is, for events meant for one person's sockets (chat.fanout)
        self.outlet: Outlet | None = None
        self.live = False
        self.sent_through = 0  # every seq up to this one was handed to the server for this socket
        self.ahead: set[int] | None = None  # seqs above sent_through handed to it too (out of order, live)
        self.missed_through = 0  # the highest seq the fan-out skipped while this socket was not live
        self.missed_presence = False
        self.missed_presence_at = 0.0  # time.monotonic() of the latest presence frame skipped
        # A frame for this person alone (a read marker) was skipped; the layer may have lost one (``own_stale``).
        self.missed_own = False
        self.own_stale = False
        self.stale = False  # the layer lost events: read the log once even if no skipped seq is known
        self.outbox: deque[tuple[dict[str, Any], int]] | None = None  # made on first use: idle sockets hold none
        self.outbox_bytes = 0
        self.writer: asyncio.Task[None] | None = None
        self.behind_since: float | None = None
        self.give_up: asyncio.TimerHandle | None = None
        self.closing: asyncio.Task[None] | None = None
        self.close_sent = False
        self.shut = False  # shut_out(): nothing more is sent on this socket
        self.ended = False  # disconnect() has run
        self.bound = settings.CHAT_SEND_BUFFER_BYTES

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        self.outlet = outlet_for(send)
        # One source of messages, so a plain loop: await_many_dispatch would keep a second task and an
        # asyncio.wait alive for every idle socket.
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except (OSError, RuntimeError) as exc:
            # The server refused a send: the connection was lost (uvicorn's ClientDisconnected) or closed under a
            # handler (a send after close). The client's doing, not a bug: clean up as if it had said goodbye.
            logger.info("room=%s: the socket went away mid-frame: %r", self.room_name, exc)
            await self._end(1006)
        finally:
            self._stop_writing()

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # As Channels' (no groups to discard: see join), and at most once.
        await self._end(message["code"])
        await aclose_old_connections()
        raise StopConsumer()

    async def _end(self, code: int) -> None:
        if not self.ended:
            self.ended = True
            await self.disconnect(code)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close from the server's end, once: a second close (or a send after it) would make the server raise."""
        if not self.close_sent:
            self.close_sent = True
            await super().close(code=code, reason=reason)

    # Joining and leaving a room's group, through the process's fan-out.

    async def join(self, room_name: str) -> None:
        """Add this socket to the room's group (chat.fanout's group_add); it is not live until ``go_live``."""
        self.joined_at = time.monotonic()
        await hub.join(room_name, self)
        self.room_name = room_name

    async def leave(self) -> None:
        self.live = False  # a fan-out still iterating over an older member list sends nothing more
        if self.room_name is not None:
            await hub.leave(self.room_name, self)
        self._stop_writing()

    async def go_live(self) -> None:
        """Catch up from the log whatever the room got since ``sent_through``, then take live frames."""
        await self._catch_up()

    # The fan-out's side.

    async def send_live(self, event: dict[str, Any]) -> None:
        """Send a live event's frame (chat.fanout adds "frame" and "size"), or note it as missed; never waits."""
        if self.shut:
            return
        seq = event.get("seq", 0)
        if seq and (seq <= self.sent_through or (self.ahead is not None and seq in self.ahead)):
            return  # already sent, from the log or live
        own = "person" in event
        if not self.live or self.close_sent:
            self._missed(seq, own=own)
            return
        size = event["size"]
        outlet = self.outlet
        held = self.outbox_bytes + (outlet.buffered() if outlet is not None else 0)
        if held + size > self.bound:
            self._fall_behind(seq, own=own)
            return
        if seq:
            self._sent(seq)
        if self.writer is None and outlet is not None and held <= outlet.waits_above:
            await self.base_send(event["frame"])  # returns without waiting: the outlet said so
        else:
            self._queue(event["frame"], size)

    def resync(self) -> None:
        """The layer lost events for a while: whatever they were is in the log, so catch up from it."""
        self.stale = True
        self.missed_presence = self.missed_own = self.own_stale = True
        self.missed_presence_at = time.monotonic()
        if self.live:
            self._fall_behind(0, slow=False)

    def _sent(self, seq: int) -> None:
        if seq == self.sent_through + 1:
            self.sent_through = seq
            if self.ahead is not None:
                self._absorb_ahead()
            return
        # A hole below: most likely another process's broadcast still on its way. Sent when it comes; if it
        # does not come (a lost broadcast), the log has it.
        if self.ahead is None:
            self.ahead = set()
        self.ahead.add(seq)
        if len(self.ahead) > MAX_AHEAD:
            self.stale = True
            self._fall_behind(0, slow=False)

    def _absorb_ahead(self) -> None:
        ahead = self.ahead
        if ahead is None:
            return
        while self.sent_through + 1 in ahead:
            self.sent_through += 1
        remaining = {seq for seq in ahead if seq > self.sent_through}
        self.ahead = remaining or None

    def _missed(self, seq: int, *, own: bool = False) -> None:
        if seq:
            self.missed_through = max(self.missed_through, seq)
        elif own:
            self.missed_own = True
        else:
            self.missed_presence = True
            self.missed_presence_at = time.monotonic()

    def _queue(self, frame: dict[str, Any], size: int) -> None:
        if self.outbox is None:
            self.outbox = deque()
        self.outbox.append((frame, size))
        self.outbox_bytes += size
        self._start_writer()

    def _start_writer(self) -> None:
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def _fall_behind(self, seq: int, *, slow: bool = True, own: bool = False) -> None:
        self.live = False
        self._missed(seq, own=own)
        if self.behind_since is None:
            self.behind_since = time.monotonic()
            loop = asyncio.get_running_loop()
            self.give_up = loop.call_later(settings.CHAT_SEND_BEHIND_SECONDS, self._too_slow)
            metrics.SOCKETS_BEHIND.inc()
            if slow:  # a resync after a layer failure is every socket's, and logged once by the fan-out
                logger.info("room=%s: a socket fell behind; caught up from the log once it drains", self.room_name)
        self._start_writer()

    # The socket's own writer task.

    async def _write(self) -> None:
        try:
            while True:
                while self.outbox:
                    frame, size = self.outbox[0]
                    await self.base_send(frame)
                    self.outbox.popleft()
                    self.outbox_bytes -= size
                if self.live or self.shut:
                    break
                try:
                    await self._catch_up()
                except DatabaseError as exc:
                    # Still behind, and the give-up timer still runs: read again shortly.
                    logger.warning("room=%s: a catch-up could not read the log: %r", self.room_name, exc)
                    await asyncio.sleep(RETRY_SECONDS)
        except TooSlow:
            self._too_slow()
        except (OSError, RuntimeError) as exc:
            # The socket closed under the writer; its disconnect handler cleans up.
            logger.debug("room=%s: send to a closed socket: %r", self.room_name, exc)
        except Exception:
            logger.exception("room=%s: a socket's writer failed", self.room_name)  # a bug: say so, with the stack
        finally:
            self.writer = None

    async def _catch_up(self) -> None:
        """Send the log after ``sent_through`` until nothing skipped is left, then go live; in this socket's task.

        From the last check to ``live = True`` nothing awaits, so no live frame can slip between the two.
        """
        while True:
            if self.shut:
                return
            if self.stale or self.missed_through > self.sent_through:
                self.stale = False
                try:
                    entries, last_seq, complete = await self.read_log(after=self.sent_through)
                except DatabaseError:
                    self.stale = True  # still owed: the writer retries the catch-up
                    raise
                for seq, text in entries:
                    if self.shut:
                        return
                    if self.ahead is None or seq not in self.ahead:
                        await self.drained()
                        await self.base_send({"type": "websocket.send", "text": text})
                        metrics.GAPS_HEALED.inc()
                    self.sent_through = max(self.sent_through, seq)
                if complete:
                    # Seqs are gapless, but an admin may delete a row: the tail counts as sent once read.
                    self.sent_through = max(self.sent_through, last_seq)
                self._absorb_ahead()
                self.missed_through = max(self.missed_through, last_seq)
                continue
            if self.missed_presence:
                self.missed_presence = False
                await self.drained()
                try:
                    await self.presence_missed()
                except DatabaseError:
                    self.missed_presence = True
                    raise
                continue
            if self.missed_own:
                self.missed_own = False
                stale, self.own_stale = self.own_stale, False
                await self.drained()
                try:
                    await self.own_missed(stale=stale)
                except DatabaseError:
                    self.missed_own = True
                    self.own_stale = self.own_stale or stale
                    raise
                continue
            break
        self.live = True
        if self.give_up is not None:
            self.give_up.cancel()
            self.give_up = None
            metrics.SOCKETS_BEHIND.dec()
            logger.info("room=%s: a socket caught up after %.1f s", self.room_name, self._behind_for())
        self.behind_since = None

    def _behind_for(self) -> float:
        return 0.0 if self.behind_since is None else time.monotonic() - self.behind_since

    async def drained(self) -> None:
        """Wait until the server holds less than half the bound for this socket; TooSlow past the deadline."""
        outlet = self.outlet
        if outlet is None or outlet.buffered() <= self.bound // 2:
            return  # without an outlet the server's send itself waits
        deadline = time.monotonic() + settings.CHAT_SEND_BEHIND_SECONDS
        while outlet.buffered() > self.bound // 2:
            if time.monotonic() > deadline:
                raise TooSlow()
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    def _too_slow(self) -> None:
        """Behind for too long, or never drained: close with 4008, so that the client reconnects and resumes from
        the log. The close has CLOSE_SECONDS to get through before the connection is dropped."""
        if self.closing is not None:
            return
        logger.warning("room=%s: closing a socket that was behind for %.0f s", self.room_name, self._behind_for())
        metrics.SOCKETS_TOO_SLOW.inc()
        if self.give_up is not None:
            self.give_up.cancel()
            self.give_up = None
            metrics.SOCKETS_BEHIND.dec()
        if self.writer is not None and self.writer is not asyncio.current_task():
            self.writer.cancel()
        self.live = False  # for good: the fan-out skips it until it is gone
        self.closing = asyncio.get_running_loop().create_task(self._close_too_slow())

    async def _close_too_slow(self) -> None:
        if self.close_sent:
            return
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.close(code=protocol.CLOSE_TOO_SLOW)
        except TimeoutError:
            # uvicorn's send waits while its transport is paused, and a reader that does not read never unpauses it.
            if self.outlet is not None:
                self.outlet.force_close(protocol.CLOSE_TOO_SLOW)
        except (OSError, RuntimeError):
            return  # already gone
        # The disconnect cancels this task; a connection that has not gone by then is dropped.
        await asyncio.sleep(settings.CHAT_SEND_BEHIND_SECONDS)
        if self.outlet is not None:
            self.outlet.abort()

    def shut_out(self) -> None:
        """Send nothing more on this socket, live or from the log, from now on: its person lost the room (the
        subclass closes it). What the fan-out hands it next, even in the same event, is dropped."""
        self.shut = True
        self.live = False
        self._stop_writing()

    def _stop_writing(self) -> None:
        if self.closing is not None and self.closing is not asyncio.current_task():
            self.closing.cancel()
        if self.writer is not None:
            self.writer.cancel()
            self.writer = None
        if self.give_up is not None:
            self.give_up.cancel()
            self.give_up = None
            metrics.SOCKETS_BEHIND.dec()
        self.outbox = None
        self.outbox_bytes = 0

    # What subclasses provide.

    async def read_log(self, *, after: int) -> tuple[list[tuple[int, str]], int, bool]:
        """The next page of the room's log after seq ``after``, as (seq, encoded frame) pairs oldest first; the
        room's last seq; whether the page reaches it."""
        raise NotImplementedError

    async def presence_missed(self) -> None:
        """Called, caught up, when presence frames were skipped (the latest at ``missed_presence_at``): send what
        the client needs to set it right."""

    async def own_missed(self, *, stale: bool) -> None:
        """Called, caught up, when frames for this person alone were skipped (``stale``: the layer may have lost
        some, so what this socket was told is not enough): send what sets them right."""
