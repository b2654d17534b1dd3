#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned requirements and the project itself.
# Idempotent and quiet; safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setting up .venv (first run takes a few minutes) ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet -r requirements.txt
  .venv/bin/python -m pip install --quiet --no-deps -e .
  # torch must be the pinned CPU build, never one that another package pulled in.
  .venv/bin/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'unexpected torch {v}')"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
