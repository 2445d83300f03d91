#!/usr/bin/env bash
# One-command set-up on a fresh machine: system data, a virtual environment in .venv, torch,
# and this project with its test tools. Safe to run again (it only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

# Fashion-MNIST comes from Debian (idx files in /usr/share/datasets/fashion-mnist).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
            || echo "setup: could not install dataset-fashion-mnist (Fashion-MNIST runs need --from DIR)" >&2
    elif command -v sudo >/dev/null 2>&1; then
        { sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
            || echo "setup: could not install dataset-fashion-mnist (Fashion-MNIST runs need --from DIR)" >&2
    else
        echo "setup: cannot install dataset-fashion-mnist (not root); Fashion-MNIST runs need --from DIR" >&2
    fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: an unpinned resolve would fetch a newer multi-GB build.
.venv/bin/python -c "import torch, torchvision" 2>/dev/null \
    || .venv/bin/python -m pip install -q $TORCH_SPEC 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import torch, torchvision, ray, faiss, ot, pauc_ray, cluster" \
    || { echo "setup: the environment is incomplete (see pip output above)" >&2; exit 1; }
echo "setup: ready (.venv, torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
