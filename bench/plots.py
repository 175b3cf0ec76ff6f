"""The report's two pictures: fan-out throughput against room size, and the latency CDFs of the 500-client room."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .stats import Histogram

COLORS = {
    "baseline": "#444444",
    "chatsite-daphne": "#1f77b4",
    "chatsite-uvicorn": "#2ca02c",
    "chatsite-pg-redis": "#9467bd",
    "tutorial": "#d62728",
    "external": "#ff7f0e",
}


def _fanout_runs(results: dict[str, Any], name: str) -> list[dict[str, Any]]:
    scenario = results["targets"][name].get("scenarios", {}).get("fanout")
    return scenario["runs"] if scenario else []


def throughput(results: dict[str, Any], path: Path) -> None:
    """Deliveries/s and server CPU per delivery against room size, at saturation."""
    figure, (rate, cost) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for name in results["targets"]:
        runs = sorted(
            (run for run in _fanout_runs(results, name) if run["label"] == "saturation"),
            key=lambda run: run["params"]["members"],
        )
        if runs:
            sizes = [run["params"]["members"] for run in runs]
            rate.plot(sizes, [r["deliveries_per_s"] for r in runs], marker="o", label=name, color=COLORS.get(name))
            micros = [(size, r["server_us_per_delivery"]) for size, r in zip(sizes, runs, strict=True)]
            micros = [(size, value) for size, value in micros if value]
            if micros:
                xs, ys = zip(*micros, strict=True)
                cost.plot(xs, ys, marker="o", label=name, color=COLORS.get(name))
    senders = results["plan"]["senders"]
    rate.set_yscale("log")
    rate.set_ylabel("deliveries / s (log)")
    rate.set_title(f"Fan-out at saturation: one room, {senders} senders")
    cost.set_yscale("log")
    cost.set_ylabel("server CPU µs per delivery (log)")
    cost.set_title("Server CPU per delivery (lower is better)")
    for panel in (rate, cost):
        panel.set_xlabel("clients in the room")
        panel.grid(True, which="both", alpha=0.3)
        if panel.get_legend_handles_labels()[0]:
            panel.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def latency_cdf(results: dict[str, Any], path: Path, rate_label: str) -> None:
    figure, panels = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110, sharey=True)
    for panel, label in zip(panels, [rate_label, "saturation"], strict=True):
        for name in results["targets"]:
            runs = [run for run in _fanout_runs(results, name) if run["label"] == label]
            if not runs:
                continue
            run = max(runs, key=lambda r: r["params"]["members"])
            points = Histogram.from_dict(run["latency_hist"]).cdf_ms()
            if points:
                xs, ys = zip(*points, strict=True)
                panel.step(xs, ys, where="post", label=f"{name} ({run['params']['members']})", color=COLORS.get(name))
        panel.set_xscale("log")
        panel.set_xlabel("end-to-end latency, ms (log)")
        panel.set_title(f"Fan-out latency CDF, {label}")
        panel.grid(True, which="both", alpha=0.3)
        if panel.get_legend_handles_labels()[0]:
            panel.legend(fontsize=8, loc="lower right")
    panels[0].set_ylabel("fraction of deliveries")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
