"""`python -m qc_operator.simulator` (the same as `qc-operator simulate`)."""

from qc_operator.simulator.cli import main

raise SystemExit(main())
