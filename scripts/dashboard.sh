#!/usr/bin/env bash
# Set up (if needed) and start the dashboard on http://127.0.0.1:8501 (bundled data set preselected).
# Environment: CNFM_DATA_DIR (a folder of CSVs to offer), CNFM_RUNS (run store), CNFM_MAX_CONCURRENT,
# HOST (default 127.0.0.1: this machine only), PORT (default 8501), CNFM_ADMIN_KEY (the teacher's key).
# Serving a class (docs/reliability.md, "Classroom deployment"):
#   HOST=0.0.0.0 CNFM_ADMIN_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')" bash scripts/dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HOST="${HOST:-127.0.0.1}"
case "$HOST" in
  127.0.0.1|localhost|::1) ;;
  *) if [ -z "${CNFM_ADMIN_KEY:-}" ]; then
       echo "warning: serving on $HOST (reachable from the network) without CNFM_ADMIN_KEY: single-user mode," \
            "so every visitor may stop or delete runs started from the command line, and no teacher can stop" \
            "a student's run. Set CNFM_ADMIN_KEY to serve a class (docs/reliability.md)." >&2
     fi ;;
esac
echo "dashboard: http://${HOST}:${PORT:-8501}  (Ctrl-C to stop; runs are kept in ${CNFM_RUNS:-runs/})" >&2
exec .venv/bin/python -m streamlit run dashboard/app.py --server.port "${PORT:-8501}" --server.address "$HOST"
