"""Operational endpoints: /healthz for load balancers, /metrics for Prometheus."""

import asyncio
import time
from collections.abc import Awaitable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import metrics
from .broadcast import LAYER_ERRORS

LAYER_TIMEOUT_SECONDS = 2.0
_CHECK_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, *LAYER_ERRORS)


@database_sync_to_async
def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class _LayerProbe:
    """One channel per process for the round trip, reused: with the pub/sub layer a fresh channel per probe is a
    Redis subscription left behind per probe. The lock keeps two probes from reading each other's ping."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = asyncio.Lock()
        self.channel: str | None = None

    async def round_trip(self) -> None:
        if self.loop is not asyncio.get_running_loop():
            # A new event loop (one per test) cannot use the old loop's lock or subscription.
            self.loop = asyncio.get_running_loop()
            self.lock = asyncio.Lock()
            self.channel = None
        async with self.lock:
            layer = get_channel_layer()
            if self.channel is None:
                self.channel = await layer.new_channel()
            try:
                await layer.send(self.channel, {"type": "healthz.ping"})
                await layer.receive(self.channel)
            except BaseException:
                # An interrupted round trip may leave a ping behind or (pub/sub) the channel unsubscribed:
                # start the next probe on a fresh channel.
                self.channel = None
                raise


_probe = _LayerProbe()


async def _check_layer() -> None:
    """A round trip through the channel layer: send to this process's probe channel and read it back."""
    await _probe.round_trip()


async def _timed(check: Awaitable[None]) -> dict[str, object]:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check, LAYER_TIMEOUT_SECONDS)
    except _CHECK_ERRORS as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer both answer, 503 (with which one failed) otherwise."""
    checks = {"database": await _timed(_check_database()), "channel_layer": await _timed(_check_layer())}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
