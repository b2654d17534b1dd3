#!/usr/bin/env bash
# Set up (if needed, with Ray for tests/test_ray.py) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser --ray
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest -q --durations=25 "$@"
