#!/usr/bin/env bash
# The GPU check: one command for a machine with a CUDA GPU (docs/gpu.md).
#
#   bash scripts/gpu_check.sh          on the GPU machine: the device tests on cuda, then bench/bench_gpu.py
#   bash scripts/gpu_check.sh --cpu    the same steps on the CPU, with the quick bench: a dry run without a GPU
#
# In order: nvidia-smi must list a GPU; the first of $CNFM_PYTHON, .venv/bin/python, python3,
# /opt/torch/.venv/bin/python3 and python whose torch sees CUDA is used; the wheels carried in .whl/
# (scripts/gpu_wheels.sh) go to /tmp/site (or $CNFM_SITE; a dry run: a temporary folder), which with the
# repository goes on PYTHONPATH; then tests/test_device_paths.py with CNFM_TEST_DEVICE=cuda, then
# bench/bench_gpu.py, which prints one table. The table
# (gpu_table.md), the raw numbers (gpu_results.json) and both logs go to $OUT when it is set, else out/gpu_check/.
# The Earth rows read $CNFM_EARTH (default ../shared/data/earth/earthquake.csv), and are left out when it is absent.
#
# Exit status: 0 all went through; 1 a device test failed; 2 nothing was run (no GPU, no python whose torch has
# CUDA, a package missing); 3 the bench failed or ran out of time.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
MODE=cuda
case "${1:-}" in
  --cpu) MODE=cpu ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--cpu]" >&2; exit 2 ;;
esac
RESULTS=${OUT:-$REPO/out/gpu_check}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1

# 1. The GPU.
if [ "$MODE" = cuda ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi lists none); 'bash scripts/gpu_check.sh --cpu' is the dry run" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi

# 2. The python whose torch sees CUDA (for --cpu: any torch).
PY=""
for cand in "${CNFM_PYTHON:-}" .venv/bin/python python3 /opt/torch/.venv/bin/python3 python; do
  if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 &&
     "$cand" -c 'import sys, torch; sys.exit(0 if sys.argv[1] == "cpu" or torch.cuda.is_available() else 1)' \
       "$MODE" >/dev/null 2>&1; then
    PY=$(command -v "$cand")
    break
  fi
done
if [ -z "$PY" ]; then
  echo "gpu_check: no python here has a torch that sees a CUDA GPU (docs/gpu.md says how a GPU machine gets one)" >&2
  exit 2
fi

# 3. The carried wheels, and what the core imports (a dry run installs them into a folder of its own, removed after).
if [ "$MODE" = cpu ] && [ -z "${CNFM_SITE:-}" ]; then
  SITE=$(mktemp -d)
  trap 'rm -rf "$SITE"' EXIT
else
  SITE=${CNFM_SITE:-/tmp/site}
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  then
    echo "gpu_check: installing the carried wheels (.whl/) into $SITE failed" >&2
    exit 2
  fi
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
missing=$("$PY" -c '
import importlib.util
names = ("torch", "torchdiffeq", "geoopt", "numpy", "scipy", "pytest")
print(" ".join(m for m in names if not importlib.util.find_spec(m)))')
if [ -n "$missing" ]; then
  echo "gpu_check: $PY lacks $missing; run scripts/gpu_wheels.sh where there is a network and carry .whl" >&2
  exit 2
fi
"$PY" -c 'import platform, sys, torch, torchdiffeq, geoopt
print(f"python {platform.python_version()} ({sys.executable}), torch {torch.__version__} (CUDA {torch.version.cuda}),",
      f"torchdiffeq {torchdiffeq.__version__}, geoopt {geoopt.__version__}")'

# 4. The device tests.
echo "== tests/test_device_paths.py with CNFM_TEST_DEVICE=$MODE"
CNFM_TEST_DEVICE=$MODE timeout 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_device_paths.py 2>&1 |
  tee "$RESULTS/tests.log"
tests_rc=${PIPESTATUS[0]}
summary=$(grep -E "[0-9]+ (passed|failed|error)" "$RESULTS/tests.log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
[ "$tests_rc" = 124 ] && summary="ran out of time (180 s); ${summary}"

# 5. The measurements, one table.
echo "== bench/bench_gpu.py on $MODE (its log: $RESULTS/bench.log)"
args=(--device "$MODE" --out "$RESULTS" --earth "${CNFM_EARTH:-$REPO/../shared/data/earth/earthquake.csv}"
      --tests "device tests (tests/test_device_paths.py, CNFM_TEST_DEVICE=$MODE): ${summary:-no result}")
[ "$MODE" = cpu ] && args+=(--quick)
timeout 400 "$PY" bench/bench_gpu.py "${args[@]}" 2>"$RESULTS/bench.log"
bench_rc=$?
if [ "$bench_rc" != 0 ]; then
  why=$([ "$bench_rc" = 124 ] && echo " (out of time)")
  echo "gpu_check: bench/bench_gpu.py exited with $bench_rc$why; the end of its log:"
  tail -n 30 "$RESULTS/bench.log"
fi

if [ "$tests_rc" != 0 ]; then
  echo "gpu_check: a device test failed ($summary)" >&2
  exit 1
fi
[ "$bench_rc" = 0 ] || exit 3
echo "gpu_check: done; the table and the raw numbers are in $RESULTS"
