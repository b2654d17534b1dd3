#!/usr/bin/env bash
# Download, on a machine with a network, the wheels a GPU machine without one lacks, into .whl/ (ignored by git;
# name it in the device call's `carry`, and scripts/gpu_check.sh installs them there). See docs/gpu.md.
#
#   bash scripts/gpu_wheels.sh            wheels for the GPU machine's Python 3.12 on x86-64 Linux
#   PY_VERSION=3.11 bash scripts/gpu_wheels.sh
#
# What the core imports that such a machine (one with torch, torchdiffeq, numpy and scipy) lacks: geoopt, at the
# version requirements.txt pins. Pure-Python wheels, fetched without their dependencies (--no-deps): torch is the
# machine's own and must not be replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${PY_VERSION:-3.12}
PACKAGES=(geoopt)
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi

pins=()
for name in "${PACKAGES[@]}"; do
  pin=$(grep -E "^${name}==" requirements.txt || true)
  if [ -z "$pin" ]; then echo "gpu_wheels: $name is not pinned in requirements.txt" >&2; exit 2; fi
  pins+=("$pin")
done

rm -rf .whl
mkdir -p .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
ls -l .whl
echo "gpu_wheels: ${pins[*]} in .whl/ ($(du -sh .whl | cut -f1)); carry \".whl\" in the device call (docs/gpu.md)"
