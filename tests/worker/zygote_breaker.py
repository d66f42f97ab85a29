"""A task module that cannot be imported in the pool's zygote, though the worker imports it: as a module
whose import needs what only the worker's process has. Every zygote dies as it starts (tests of
`executors.ProcessExecutor`'s broken pool, named "zygote_breaker:work")."""

from __future__ import annotations

import sys

import qc_worker

if getattr(sys.modules["__main__"].__spec__, "name", None) == "qc_worker.zygote":
    raise ImportError("zygote_breaker cannot be imported in the pool's zygote (on purpose)")


@qc_worker.task(time_limit_seconds=60)
def work(message: qc_worker.Message) -> None:
    raise AssertionError("never runs: no pool process can be forked")
