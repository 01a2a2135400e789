"""`python -m drvfs`: the `drvfs` command."""

from .cli import main

raise SystemExit(main())
