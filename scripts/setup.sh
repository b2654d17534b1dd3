#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned requirements and the project itself.
# Idempotent and quiet; safe to run before every command.
#   --browser   also install Debian's chromium (for the end-to-end tests) when /usr/bin/chromium is missing
#   --ray       also install requirements-ray.txt (jobs on a Ray cluster, docs/scaling.md; the tests use it)
set -euo pipefail
cd "$(dirname "$0")/.."
browser=0
ray=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --ray) ray=1 ;;
    *) echo "setup.sh: unknown option $arg (known: --browser, --ray)" >&2; exit 2 ;;
  esac
done
if [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
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
if [ "$ray" = 1 ]; then
  ray_stamp=.venv/.ray-installed-$(cat requirements-ray.txt requirements.txt | sha256sum | cut -c1-16)
  if [ ! -f "$ray_stamp" ]; then
    echo "installing Ray (requirements-ray.txt) ..." >&2
    .venv/bin/python -m pip install --quiet -r requirements-ray.txt
    .venv/bin/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'Ray brought torch {v}')"
    rm -f .venv/.ray-installed-*
    touch "$ray_stamp"
  fi
fi
