"""The PNG: backlog, replicas and message wait over time, for each scaler on shared axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qc_operator.simulator.model import Run, Series

COLORS = ("tab:blue", "tab:orange")


def rolling_wait(run: Run) -> Series:
    """Approximate wait at each second: the backlog divided by the service rate (Little's law)."""
    rate = np.convolve(run.departures, np.ones(60) / 60, mode="same")
    return np.where(rate > 1e-9, run.backlog / np.maximum(rate, 1e-9), 0.0)


def plot(runs: list[Run], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (backlog_axis, replicas_axis, wait_axis) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    for run, color in zip(runs, COLORS, strict=False):
        minutes = np.arange(len(run.backlog)) / 60
        backlog_axis.plot(minutes, run.backlog, color=color, label=run.scaler)
        replicas_axis.step(minutes, run.replicas, where="post", color=color, label=run.scaler)
        wait_axis.plot(minutes, rolling_wait(run), color=color, label=run.scaler)
    arrivals = runs[0].arrivals
    rate_axis = backlog_axis.twinx()
    rate_axis.plot(np.arange(len(arrivals)) / 60, arrivals, color="tab:gray", alpha=0.4, linewidth=0.8)
    rate_axis.set_ylabel("arrivals / s", color="tab:gray")
    backlog_axis.set_ylabel("backlog (messages)")
    replicas_axis.set_ylabel("replicas")
    wait_axis.set_ylabel("wait (s, approx.)")
    wait_axis.set_xlabel("minutes")
    backlog_axis.legend(loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
