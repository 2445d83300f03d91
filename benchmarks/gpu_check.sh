#!/usr/bin/env bash
# The one prepared GPU check (issue 13): bash benchmarks/gpu_check.sh [--out DIR] [--cpu-dry-run]
# On a GPU machine it installs the project with its gpu extra (faiss-gpu) first; on one
# without network it installs the wheels carried in .whl/ (if any) and runs what it can: each
# part that lacks a package says so in the table. --cpu-dry-run runs every part on the CPU at a
# tiny size with the environment scripts/setup.sh built. See benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=${PYTHON:-python3}; fi
case " $* " in
*" --cpu-dry-run "*) ;;
*)
    if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site \
            .whl/*.whl && export PYTHONPATH=/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}
    else
        "$PY" -m pip install -q -e ".[gpu]" \
            || echo "gpu_check: could not install .[gpu] (offline?); parts whose packages are missing will say so" >&2
    fi
    ;;
esac
export PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"
