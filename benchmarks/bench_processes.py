"""`make bench-worker`, the parts measured on whole processes: `qc-worker` as its own process (its pool
forked by the zygote) against Celery prefork, on the same task module (`benchmarks.bench_tasks`), the same
RabbitMQ and the same concurrency, in one run.

1. Memory per process slot: PSS summed over each side's whole process tree (the worker, the zygote and
   the pool; Celery's main process and its prefork children) with every slot busy, at concurrency 1, 8,
   16. PSS splits shared pages between the processes sharing them: what the slots cost the machine.
2. CPU-bound throughput: the same heavy-tailed sample of tasks, qc-worker (its default prefetch, the
   window + 1, and the window alone) and Celery (acks late, default prefetch multiplier) alternating
   over ROUNDS rounds; the ratio to ideal (cores / mean CPU) counted from
   the first task's start, and from the launch of the worker, from the times the tasks record; the
   median idle time of a slot between two tasks, the share of the time the slots were in a task, the
   main process's own CPU time per task (the worker's or Celery's parent: it takes from the cores the
   tasks burn on), and the load average, per pass and as medians.

Celery runs from .venv-celery (`ensure_celery`), a virtualenv of its own (benchmarks/celery-constraints.txt).

Run under a raised priority (`nice -n -15 python -m benchmarks.bench_worker ...`, as root) on a shared
machine: `share_priority` hands the benchmark's niceness to every session it starts (each side, the broker),
as the kernel's autogroups would otherwise give each of them an ordinary share whatever its niceness.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import bench_tasks
from devstack.binaries import REPO_ROOT
from devstack.polling import wait_until
from devstack.process import cpu_seconds, free_port
from devstack.services import RabbitMQ
from qc_common import worker_env

CELERY_VENV = REPO_ROOT / ".venv-celery"
CELERY_CONSTRAINTS = REPO_ROOT / "benchmarks" / "celery-constraints.txt"
MEMORY_CONCURRENCIES = (1, 8, 16)
HOLD_SECONDS = 60.0  # a memory task's sleep: far longer than the measurement, which kills the worker
SETTLE_SECONDS = 3.0  # after every slot started its task, before PSS is read
START_TIMEOUT_SECONDS = 120.0
ROUNDS = 3
LOGS = REPO_ROOT / "out" / "bench-worker"  # each side's output (Celery's banner included), appended


def log_file(name: str) -> Any:
    LOGS.mkdir(parents=True, exist_ok=True)
    return (LOGS / f"{name}.log").open("ab")


def ensure_celery() -> Path:
    """The Celery virtualenv, made on first use from the pinned versions; returns its `bin`."""
    bin_dir = CELERY_VENV / "bin"
    if not (bin_dir / "celery").exists():
        print("bench: installing Celery into .venv-celery (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(CELERY_VENV)], check=True)
        pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "-c", str(CELERY_CONSTRAINTS)]
        subprocess.run([*pip, "celery"], check=True)
    return bin_dir


def share_priority(pid: int) -> None:
    """Give `pid`'s session this process's niceness, when it is raised (below 0).

    With autogroups on (/proc/sys/kernel/sched_autogroup_enabled), the scheduler first shares the CPU
    equally among sessions, and a niceness counts only against processes of the same session: a side
    started in a session of its own (`start_new_session`, so one kill stops its tree) would run at an
    ordinary share beside every other session on the machine however `nice` the benchmark was. Root may
    set a session's own niceness in /proc/PID/autogroup; elsewhere this does nothing."""
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    autogroup = Path(f"/proc/{pid}/autogroup")
    if niceness >= 0 or not autogroup.exists():
        return
    try:
        autogroup.write_text(str(niceness))
    except OSError as error:
        print(f"bench: cannot raise the priority of session {pid}: {error}", file=sys.stderr)


def priority_note() -> str:
    """The niceness and 1-minute load average a measurement ran under, for printing beside it."""
    autogroup = Path("/proc/self/autogroup")
    group = autogroup.read_text().split()[-1] if autogroup.exists() else "-"
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    return f"nice {niceness} (session {group}), load average {os.getloadavg()[0]:.1f}"


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def tree_pss_mib(root: int) -> tuple[int, float]:
    """(processes, PSS in MiB) of `root`'s whole tree, from /proc/PID/smaps_rollup."""
    total_kib, counted = 0, 0
    for pid in descendants(root):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total_kib += next(int(line.split()[1]) for line in lines if line.startswith("Pss:"))
        counted += 1
    return counted, total_kib / 1024


def slot_gaps_seconds(records: Path) -> list[float]:
    """In each process (slot), the idle time from one task's end to its next task's start: what a
    prefetch beyond the window hides (the ack's and the next delivery's round trips)."""
    gaps = []
    for path in records.glob("*.log"):
        ordered = sorted(tuple(map(float, line.split())) for line in path.read_text().splitlines())
        gaps += [start - end for (_, end), (start, _) in itertools.pairwise(ordered)]
    return gaps


def spans(records: Path) -> list[tuple[float, float]]:
    """(start, end) of every recorded task, seconds since the epoch."""
    found = []
    for path in records.glob("*.log"):
        for line in path.read_text().splitlines():
            start, end = line.split()
            found.append((float(start), float(end)))
    return found


@dataclass
class Side:
    """How to launch one side (qc-worker or Celery) on a queue and feed it."""

    name: str
    launch: Callable[[str, str, int, Path], subprocess.Popen[bytes]]  # queue, task kind, concurrency, records
    publish: Callable[[str, str, list[float]], None]  # queue, task kind ("timed_burn" | "hold"), arguments


def qc_worker_side(
    broker: RabbitMQ, fill: Callable[[str, list[bytes]], None], prefetch_extra: int | None = None
) -> Side:
    """`qc-worker` on the queue; `prefetch_extra` set: that many messages prefetched beyond the window (else
    its default)."""
    tasks = {"timed_burn": "timed_cpu_task", "hold": "hold_task"}
    fields = {"timed_burn": "cpu_seconds", "hold": "sleep_seconds"}

    def launch(queue: str, kind: str, concurrency: int, records: Path) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            worker_env.SOURCE: "rabbitmq",
            worker_env.RABBITMQ_URL: broker.amqp_url,
            worker_env.RABBITMQ_QUEUE: queue,
            worker_env.TASK: f"benchmarks.bench_tasks:{tasks[kind]}",
            worker_env.CONCURRENCY: str(concurrency),
            worker_env.METRICS_PORT: str(free_port()),
            worker_env.LOG_LEVEL: "WARNING",
            "PYTHONPATH": str(REPO_ROOT),
            bench_tasks.RECORDS_ENV: str(records),
        }
        if prefetch_extra is not None:
            env[worker_env.RABBITMQ_PREFETCH_EXTRA] = str(prefetch_extra)
        qc_worker = str(Path(sys.executable).with_name("qc-worker"))
        with log_file("qc-worker") as log:
            process = subprocess.Popen([qc_worker], env=env, start_new_session=True, stdout=log, stderr=log)
        share_priority(process.pid)
        return process

    def publish(queue: str, kind: str, arguments: list[float]) -> None:
        fill(queue, [json.dumps({fields[kind]: a}).encode() for a in arguments])

    name = "qc-worker" if prefetch_extra is None else f"qc-worker, {prefetch_extra} beyond window"
    return Side(name, launch, publish)


def celery_side(broker: RabbitMQ, bin_dir: Path) -> Side:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "worker")]),
        "BENCH_CELERY_BROKER": broker.amqp_url,
    }

    def launch(queue: str, kind: str, concurrency: int, records: Path) -> subprocess.Popen[bytes]:
        command = [str(bin_dir / "celery"), "-A", "benchmarks.celery_app", "worker", "--pool", "prefork"]
        command += ["--concurrency", str(concurrency), "-Q", queue, "--loglevel", "WARNING"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with log_file("celery") as log:
            env_here = {**env, bench_tasks.RECORDS_ENV: str(records)}
            process = subprocess.Popen(command, env=env_here, start_new_session=True, stdout=log, stderr=log)
        share_priority(process.pid)
        return process

    def publish(queue: str, kind: str, arguments: list[float]) -> None:
        command = [str(bin_dir / "python"), "-m", "benchmarks.celery_app", queue, kind, json.dumps(arguments)]
        subprocess.run(command, env=env, check=True, cwd=REPO_ROOT)

    return Side("Celery prefork", launch, publish)


def stop(process: subprocess.Popen[bytes]) -> None:
    """The whole process group at once: the measurement is over, nothing needs draining."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def slot_memory(side: Side, concurrency: int, queue: str) -> tuple[int, float]:
    """(processes, PSS MiB) of one side's tree once `concurrency` tasks hold every slot."""
    with tempfile.TemporaryDirectory() as directory:
        records = Path(directory)
        side.publish(queue, "hold", [HOLD_SECONDS] * concurrency)
        process = side.launch(queue, "hold", concurrency, records)
        try:
            wait_until(
                lambda: len(spans(records)) >= concurrency,
                START_TIMEOUT_SECONDS,
                f"{side.name}: {concurrency} tasks running",
            )
            time.sleep(SETTLE_SECONDS)
            return tree_pss_mib(process.pid)
        finally:
            stop(process)


def bench_memory(ours: Side, celery: Side, purge: Callable[[str], None]) -> None:
    rows = []
    for concurrency in MEMORY_CONCURRENCIES:
        row = []
        for side in (ours, celery):
            queue = f"memory-{side.name.split()[0].lower()}-{concurrency}"  # one queue per side and run
            row.append(slot_memory(side, concurrency, queue))
            purge(queue)
        rows.append((concurrency, row))
    print("\n## Memory: every slot busy, PSS of the whole process tree (same task module, RabbitMQ)")
    print(f"{'concurrency':<12}{'qc-worker':>22}{'Celery prefork':>22}   (processes, PSS; PSS per slot)")
    for concurrency, ((n1, p1), (n2, p2)) in rows:
        ours_text = f"{n1:3d} {p1:6.1f} MiB {p1 / concurrency:5.1f}"
        celery_text = f"{n2:3d} {p2:6.1f} MiB {p2 / concurrency:5.1f}"
        print(f"{concurrency:<12}{ours_text:>22}{celery_text:>22}")
    (c1, ((_, ours_1), (_, celery_1))), (c2, ((_, ours_2), (_, celery_2))) = rows[0], rows[-1]
    ours_slope, celery_slope = (ours_2 - ours_1) / (c2 - c1), (celery_2 - celery_1) / (c2 - c1)
    print(
        f"each further slot ({c1} -> {c2})   qc-worker {ours_slope:5.1f} MiB   Celery {celery_slope:5.1f} MiB"
    )


@dataclass(frozen=True)
class ThroughputPass:
    """One side's pass over the sample, from the times its tasks recorded."""

    from_first_seconds: float  # the first task's start to the last task's end
    from_launch_seconds: float  # the worker's launch to the last task's end
    gap_seconds: float  # the median idle time of a slot between two of its tasks
    busy: float  # the slots' time spent in a task, of slots x (from the first task to the last's end)
    main_cpu_ms_per_task: float  # the main process's own CPU from the first task done to the last, per task
    load: float  # the 1-minute load average at its end


def throughput_pass(side: Side, queue: str, durations: list[float], concurrency: int) -> ThroughputPass:
    with tempfile.TemporaryDirectory() as directory:
        records = Path(directory)
        side.publish(queue, "timed_burn", durations)
        launched = time.time()
        process = side.launch(queue, "timed_burn", concurrency, records)
        try:
            wait_until(lambda: spans(records), START_TIMEOUT_SECONDS, f"{side.name}: a first CPU task done")
            main_cpu_at_first, done_at_first = cpu_seconds(process.pid), len(spans(records))
            wait_until(
                lambda: len(spans(records)) >= len(durations), 600, f"{side.name}: every CPU task done"
            )
            main_cpu_ms = 1000 * (cpu_seconds(process.pid) - main_cpu_at_first)
        finally:
            stop(process)
        done = spans(records)
        first_start, last_end = min(s for s, _ in done), max(e for _, e in done)
        busy = sum(end - start for start, end in done) / (concurrency * (last_end - first_start))
        gap = statistics.median(slot_gaps_seconds(records))
        main_cpu_ms_per_task = main_cpu_ms / max(1, len(durations) - done_at_first)
        return ThroughputPass(
            last_end - first_start, last_end - launched, gap, busy, main_cpu_ms_per_task, os.getloadavg()[0]
        )


def bench_throughput(sides: list[Side], durations: list[float], cores: int, rounds: int = ROUNDS) -> None:
    """Alternating rounds of every side; per pass and the medians: of ideal (cores / mean CPU) from the
    first task and from the launch, the idle gap, the slots' busy share and the load average.

    The busy share is what the worker answers for on a shared machine: a task burns its CPU time however
    long that takes, so when other sessions take part of the cores every side's ratio to ideal falls by
    the same share, while the time a slot sits between two tasks is the worker's own."""
    ideal = sum(durations) / cores
    runs: dict[str, list[ThroughputPass]] = {side.name: [] for side in sides}
    mean_ms = 1000 * sum(durations) / len(durations)
    print(
        f"\n## CPU-bound through RabbitMQ, each worker its own process: {len(durations)} tasks, mean "
        f"{mean_ms:.0f} ms CPU, concurrency {cores} = cores; medians of {rounds} alternating rounds"
    )
    print(f"({priority_note()} at the start; ideal assumes the {cores} cores are this run's alone)")
    columns = ("of ideal from 1st task", "from launch", "idle gap", "slots busy", "main CPU/task", "load")
    header = "".join(f"{c:>{w}}" for c, w in zip(columns, (24, 13, 11, 12, 15, 11), strict=True))
    print(f"{'':<36}{header}")

    def row(label: str, passes: list[ThroughputPass]) -> str:
        from_first = statistics.median(ideal / p.from_first_seconds for p in passes)
        from_launch = statistics.median(ideal / p.from_launch_seconds for p in passes)
        gap_ms = 1000 * statistics.median(p.gap_seconds for p in passes)
        busy = statistics.median(p.busy for p in passes)
        main_cpu_ms = statistics.median(p.main_cpu_ms_per_task for p in passes)
        loads = sorted(p.load for p in passes)
        load = f"{loads[0]:.1f}" if len(loads) == 1 else f"{loads[0]:.1f}-{loads[-1]:.1f}"
        ratios = f"{from_first:>24.3f}{from_launch:>13.3f}"
        return f"{label:<36}{ratios}{gap_ms:>8.1f} ms{busy:>12.3f}{main_cpu_ms:>12.2f} ms{load:>11}"

    for round_number in range(rounds):
        for number, side in enumerate(sides):
            measured = throughput_pass(side, f"cpu-{number}-{round_number}", durations, cores)
            runs[side.name].append(measured)
            print(row(f"round {round_number + 1}: {side.name}", [measured]), flush=True)
    print("medians:")
    for name, passes in runs.items():
        print(row(name, passes))
