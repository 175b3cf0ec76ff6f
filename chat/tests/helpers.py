"""Shared fixtures for the chat tests: threads with their own database connections, channel-layer listeners."""

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from channels.layers import get_channel_layer
from django.db import connection
from django.test import TransactionTestCase, override_settings

from chat.models import Room
from chat.rooms import group_name
from chat.services import Posted, message_create
from chat.store import Draft

T = TypeVar("T")

# For test classes that create users: the production password hasher would make them slow for no gain.
FAST_HASHING = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])

# Long enough for a broadcast that is coming to arrive, short enough to keep "nothing arrives" tests fast.
QUIET_SECONDS = 0.2
# A bound on waiting for an event that must arrive; reaching it fails the test instead of hanging it.
ARRIVAL_SECONDS = 5.0


class ChatTransactionTestCase(TransactionTestCase):
    """A test case whose writes really commit, and which empties only the chat tables between tests.

    Real commits are needed where other threads read the data, and around database_sync_to_async helpers: they
    close the connection they find in an atomic block, which breaks a TestCase's wrapping transaction. Emptying
    only the chat tables halves the cost of each test on PostgreSQL.
    """

    available_apps = ["chat"]


async def eventually(
    condition: Callable[..., object], *, timeout: float = ARRIVAL_SECONDS, interval: float = 0.02, what: str = "it"
) -> None:
    """Poll ``condition()`` until it is true, or fail the test after ``timeout`` seconds: never sleep-and-hope."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[..., object], *, timeout: float = ARRIVAL_SECONDS, interval: float = 0.05, what: str = "it"
) -> None:
    """``eventually`` for code outside an event loop (threads, subprocesses)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def run_in_threads(count: int, task: Callable[[int], T], *, timeout: float = 60.0) -> list[T]:
    """Run ``task(i)`` for i in range(count), each in its own thread with its own database connection.

    The threads start together behind a barrier so that they really contend. Each thread closes its connection
    when it ends, or the test database could not be dropped. The results come back in thread order; the first
    exception a thread raised is re-raised here.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = task(index)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,), name=f"writer-{index}") for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"a thread was still running after {timeout} s")
    if errors:
        raise errors[0]
    return results


class RoomListener:
    """A channel added to a room's group on the in-memory layer, to see what services broadcast.

    Use it inside one event loop (an async test, or one ``async_to_sync`` call), since the layer's queues belong
    to the loop that first waits on them.
    """

    def __init__(self, room_name: str) -> None:
        self.group = group_name(room_name)
        self.layer = get_channel_layer()
        self.channel = ""

    async def __aenter__(self) -> "RoomListener":
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.layer.group_discard(self.group, self.channel)

    async def receive(self, timeout: float = ARRIVAL_SECONDS) -> dict[str, Any]:
        return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

    async def receive_or_none(self, timeout: float = QUIET_SECONDS) -> dict[str, Any] | None:
        """The event that arrived within ``timeout``, or None when the channel stayed quiet."""
        try:
            return await self.receive(timeout)
        except TimeoutError:
            return None


def post(room: Room, body: str = "hello", *, client_id: str | None = None, author: str = "ada") -> Posted:
    """Post through the one write path, as the admin and chat_post do."""
    return message_create(room=room, author=author, body=body, client_id=client_id)


def draft(room: Room, body: str = "hello", *, client_id: str | None = None) -> Draft:
    """A checked message by ada, ready for chat.store."""
    return Draft(room=room, author="ada", user=None, body=body, client_id=client_id)


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [message["seq"] for message in messages]
