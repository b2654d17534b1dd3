"""``python -m cnfm_core``: see :mod:`cnfm_core.cli`."""

import sys

from .cli import main

sys.exit(main())
