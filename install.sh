#!/usr/bin/env bash
# Creates .venv with abcir and what its tests need. pyradiomics 3.0.1 has no wheel
# for current Pythons and its sdist imports numpy in setup.py, so numpy goes in
# first and pyradiomics is built without build isolation.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel numpy
.venv/bin/python -m pip install --quiet --no-build-isolation pyradiomics==3.0.1
.venv/bin/python -m pip install --quiet ".[dev]"
echo "abcir installed in $(pwd)/.venv"
