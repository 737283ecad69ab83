#!/usr/bin/env bash
# Set up .venv with everything the tests need (CPU only, no model weights), then run pytest.
# Extra arguments go to pytest: scripts/test.sh -k etude
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned to the CPU build, so no dependency pulls several GB of CUDA packages.
.venv/bin/python -m pip install -q -c constraints.txt torch
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
# basic-pitch only for its bundled ONNX model: its declared deps would pull TensorFlow.
.venv/bin/python -m pip install -q --no-deps basic-pitch==0.4.0
exec .venv/bin/python -m pytest "$@"
