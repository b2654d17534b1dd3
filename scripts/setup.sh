#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned requirements and the project itself.
# Idempotent and quiet; safe to run before every command.
#   --browser   also install Debian's chromium (for the end-to-end tests) when /usr/bin/chromium is missing
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the browser tests ..." >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setting up .venv (first run takes a few minutes) ..." >&2
  .venv/bin/python -m pip install --quiet -r requirements.txt
  .venv/bin/python -m pip install --quiet --no-deps -e .
  # torch must be the pinned CPU build, never one that another package pulled in.
  .venv/bin/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'unexpected torch {v}')"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
