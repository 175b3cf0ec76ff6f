"""Limits on what one client can take: frames per second per socket, open sockets per address and per user.

Both are process-local: the token bucket belongs to one socket, and the socket counts are per server process
(with N processes behind a load balancer, a client can hold up to N times the cap).
"""

import time
from collections import Counter


class TokenBucket:
    __slots__ = ("_clock", "_tokens", "_updated", "burst", "per_second")  # one per socket

    def __init__(self, *, burst: int, per_second: float, clock=time.monotonic) -> None:
        self.burst = burst
        self.per_second = per_second
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    @property
    def enabled(self) -> bool:
        return self.burst > 0 and self.per_second > 0

    def take(self) -> bool:
        """Spend one token if there is one; False means the caller is over its rate."""
        if not self.enabled:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ConnectionCounter:
    """Open sockets per key (a client address, a user name) in this process."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def try_open(self, keys: list[str], limit: int) -> bool:
        """Count a new socket under every key, unless one of them is already at ``limit`` (0: no limit)."""
        if limit and any(self._open[key] >= limit for key in keys):
            return False
        self._open.update(keys)
        return True

    def counts(self) -> dict[str, int]:
        """The keys holding sockets now, and how many each."""
        return dict(self._open)

    def close(self, keys: list[str]) -> None:
        self._open.subtract(keys)
        for key in keys:
            if self._open[key] <= 0:
                del self._open[key]
