"""python -m benchmarks: the ninep-bench suite (see benchmarks/suite/cli.py)."""

import sys

from .suite.cli import main

sys.exit(main())
