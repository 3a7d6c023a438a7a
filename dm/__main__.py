"""``python -m dm``: the command line (`dm.cli`)."""

import sys

from .cli import main

sys.exit(main())
