"""Worker tests: the task module is importable here and in `qc-worker` subprocesses (and their pools)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
# Spawned pool processes and qc-worker subprocesses find worker_tasks through PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
