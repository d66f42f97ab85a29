"""`make demo`: the project's main job on one machine.

For now it brings up the local stack and prints what runs and how to reach it; the end-to-end run
(chart, operator, QueueConsumers, a burst, live view) is being built on top of it.
"""

from __future__ import annotations

from devstack.__main__ import main as stack_main

if __name__ == "__main__":
    raise SystemExit(stack_main(["up"]))
