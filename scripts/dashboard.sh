#!/usr/bin/env bash
# Set up (if needed) and start the dashboard on http://127.0.0.1:8501 (bundled data set preselected).
# Environment: CNFM_DATA_DIR (a folder of CSVs to offer), CNFM_RUNS (run store), CNFM_MAX_CONCURRENT.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "dashboard: http://127.0.0.1:${PORT:-8501}  (Ctrl-C to stop; runs are kept in ${CNFM_RUNS:-runs/})" >&2
exec .venv/bin/python -m streamlit run dashboard/app.py --server.port "${PORT:-8501}" --server.address "${HOST:-127.0.0.1}"
