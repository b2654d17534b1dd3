"""``python -m cnfm_core``: see :mod:`cnfm_core.cli`. The OpenMP settings of
:data:`cnfm_core.config.OPENMP_ENV` are set (where the environment does not set them) before torch loads."""

import os
import sys

from .config import OPENMP_ENV

for _name, _value in OPENMP_ENV.items():
    os.environ.setdefault(_name, _value)

from .cli import main  # noqa: E402  (torch must load after the OpenMP settings)

sys.exit(main())
