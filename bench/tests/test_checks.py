"""The report's targets, read off hand-made results: the mixed fan-out against the baseline's."""

import unittest
from typing import Any

from bench import checks

MIXED_TARGET = "500 clients, mixed entries at saturation (messages, reactions, edits): ≥ 50% of the baseline's"


def _run(deliveries_per_s: float, other_cpu: float = 0.0) -> dict[str, Any]:
    return {
        "label": "saturation",
        "params": {"members": 500, "rate": 0.0},
        "deliveries_per_s": deliveries_per_s,
        "server_us_per_delivery": None,
        "other_cpu": other_cpu,
        "lost": 0,
        "expected": 10,
        "healing": {"missing": 0, "healed": 0, "requests": 0},
    }


def _results(chatsite: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    return {
        "plan": {"clients": [50, 500], "rate": 2.0, "ingest_rate": 100.0},
        "targets": {
            "baseline": {"scenarios": {"mixed": {"runs": [baseline]}}},
            "chatsite-uvicorn": {"scenarios": {"mixed": {"runs": [chatsite]}}},
        },
    }


def _mixed(results: dict[str, Any]) -> checks.Check:
    (found,) = [check for check in checks.evaluate(results) if check.target.startswith(MIXED_TARGET)]
    return found


class MixedFanoutTests(unittest.TestCase):
    def test_half_the_baselines_deliveries_meets_the_target(self) -> None:
        found = _mixed(_results(_run(50_000), _run(100_000)))
        self.assertEqual(found.met, {"chatsite-uvicorn": True})
        self.assertIn("50,000/s = 50% of 100,000", found.cells["chatsite-uvicorn"])

    def test_less_misses_it(self) -> None:
        self.assertEqual(_mixed(_results(_run(49_000), _run(100_000))).met, {"chatsite-uvicorn": False})

    def test_a_noisy_machine_leaves_it_undecided(self) -> None:
        found = _mixed(_results(_run(20_000, other_cpu=0.8), _run(100_000)))
        self.assertEqual(found.met, {"chatsite-uvicorn": None})

    def test_its_runs_count_in_the_lost_deliveries(self) -> None:
        run = _run(50_000) | {"lost": 3}
        (healed,) = [c for c in checks.evaluate(_results(run, _run(100_000))) if c.target.startswith("At saturation")]
        self.assertIn("dropped 3 of 10 in 1 saturated runs", healed.cells["chatsite-uvicorn"])
