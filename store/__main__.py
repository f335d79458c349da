"""``python -m msgflux.store``: the same command line as ``msgflux-store``."""

import sys

from msgflux.store.cli import main

sys.exit(main())
