"""`python -m ninep`: the same as `ninep-server`."""

import sys

from .cli import main

sys.exit(main())
