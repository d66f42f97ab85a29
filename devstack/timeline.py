"""What a demo or end-to-end run saw over time, its summary table and its plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the run started
    consumer: str
    backlog: float | None  # as the broker reports it (ready + unacked)
    desired: int | None  # the operator's decision, from the QueueConsumer status
    replicas: int  # the Deployment's spec.replicas
    ready: int  # the Deployment's ready replicas
    running_workers: int  # worker processes the kubelet stand-in runs
    processed: int  # distinct published messages completed so far


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def of(self, consumer: str) -> list[Sample]:
        return [s for s in self.samples if s.consumer == consumer]

    def max_replicas(self, consumer: str) -> int:
        return max((s.replicas for s in self.of(consumer)), default=0)

    def first_time(self, consumer: str, predicate: object) -> float | None:
        for sample in self.of(consumer):
            if predicate(sample):  # type: ignore[operator]
                return sample.seconds
        return None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([asdict(s) for s in self.samples]))

    def plot(self, path: Path, title: str) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        consumers = sorted({s.consumer for s in self.samples})
        figure, axes = plt.subplots(len(consumers), 1, figsize=(10, 3.6 * len(consumers)), squeeze=False)
        for axis, consumer in zip(axes[:, 0], consumers, strict=True):
            samples = self.of(consumer)
            times = [s.seconds for s in samples]
            axis.plot(times, [s.backlog or 0 for s in samples], color="tab:red", label="backlog (messages)")
            axis.plot(times, [s.processed for s in samples], color="tab:green", label="processed (distinct)")
            axis.set_ylabel("messages")
            axis.set_title(consumer)
            replicas_axis = axis.twinx()
            replicas_axis.step(
                times, [s.replicas for s in samples], where="post", color="tab:blue", label="replicas"
            )
            desired = [s.desired if s.desired is not None else float("nan") for s in samples]
            replicas_axis.step(
                times, desired, where="post", color="tab:cyan", linestyle="--", label="desired"
            )
            replicas_axis.step(
                times, [s.ready for s in samples], where="post", color="tab:purple", label="ready"
            )
            replicas_axis.set_ylabel("replicas")
            lines = axis.get_legend_handles_labels()
            more = replicas_axis.get_legend_handles_labels()
            axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize="small")
        axes[-1, 0].set_xlabel("seconds since the burst")
        figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path
