"""Latency histograms: cheap to fill on every delivery, mergeable across processes, read as percentiles.

Buckets are logarithmic in microseconds, 2% wide, so a percentile is exact to 2% whatever the range (1 µs to hours)
and one histogram is a list of ~1,100 counts however many samples went in. The maximum is kept exactly.
"""

import math
from collections.abc import Iterable
from typing import Any

_PER_E = 50  # buckets per factor of e: each one is exp(1/50) = 2% wider than the last
_SIZE = 1100  # exp(1100/50) µs ≈ 100 hours: nothing measured here is longer


class Histogram:
    __slots__ = ("counts", "max_us", "n", "total_us")

    def __init__(self) -> None:
        self.counts = [0] * _SIZE
        self.n = 0
        self.total_us = 0.0
        self.max_us = 0.0

    def add(self, micros: float) -> None:
        index = int(math.log(micros) * _PER_E) if micros > 1.0 else 0
        self.counts[index if index < _SIZE else _SIZE - 1] += 1
        self.n += 1
        self.total_us += micros
        if micros > self.max_us:
            self.max_us = micros

    def merge(self, other: "Histogram") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.n += other.n
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, fraction: float) -> float | None:
        """The value below which ``fraction`` of the samples fall, in µs (the top of its bucket), or None."""
        if self.n == 0:
            return None
        rank = max(1, math.ceil(fraction * self.n))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(math.exp((index + 1) / _PER_E), self.max_us)
        return self.max_us

    def summary_ms(self) -> dict[str, float | None]:
        """n, mean, p50, p95, p99 and max in milliseconds."""

        def ms(value: float | None) -> float | None:
            return None if value is None else value / 1000

        return {
            "n": self.n,
            "mean": ms(self.total_us / self.n) if self.n else None,
            "p50": ms(self.percentile(0.50)),
            "p95": ms(self.percentile(0.95)),
            "p99": ms(self.percentile(0.99)),
            "max": ms(self.max_us) if self.n else None,
        }

    def cdf_ms(self) -> list[tuple[float, float]]:
        """(latency ms, fraction at or below) at each non-empty bucket, for plotting."""
        points, seen = [], 0
        for index, count in enumerate(self.counts):
            if count:
                seen += count
                points.append((min(math.exp((index + 1) / _PER_E), self.max_us) / 1000, seen / self.n))
        return points

    def to_dict(self) -> dict[str, Any]:
        # Sparse: most buckets are empty.
        return {
            "buckets": {i: c for i, c in enumerate(self.counts) if c},
            "n": self.n,
            "total_us": self.total_us,
            "max_us": self.max_us,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Histogram":
        histogram = cls()
        for index, count in data["buckets"].items():
            histogram.counts[int(index)] = count
        histogram.n = data["n"]
        histogram.total_us = data["total_us"]
        histogram.max_us = data["max_us"]
        return histogram

    @classmethod
    def merged(cls, parts: Iterable["Histogram"]) -> "Histogram":
        total = cls()
        for part in parts:
            total.merge(part)
        return total


def quantiles_ms(samples_s: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in ms of a short list of durations in seconds (join times, connect times)."""
    if not samples_s:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(samples_s)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))] * 1000

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1] * 1000}
