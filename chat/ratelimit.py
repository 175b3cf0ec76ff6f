"""A token bucket: ``burst`` frames at once, refilled at ``per_second``. Per connection, so process-local."""

import time


class TokenBucket:
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
