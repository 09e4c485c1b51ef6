#!/usr/bin/env bash
# Creates a virtual environment with abcir and what its tests need.
#
#   PYTHON  the interpreter to build it with (default python3; 3.10 to 3.12)
#   VENV    its folder, relative to this checkout (default .venv); another name keeps a second
#           venv beside it, as CI does
#   EXTRAS  abcir's extras (default dev = test + train + cluster). EXTRAS=test installs no torch:
#           inference runs on numpy, and Slicer 5.10+'s Python 3.12 has no torch (nor has this
#           machine a torch file for 3.12).
#   CONSTRAINTS  a pip constraints file for every install step (default none), e.g.
#           tools/slicer-python-constraints.txt: the numpy, scipy, SimpleITK and pydicom that
#           Slicer's Python ships.
#
#   ./install.sh                                                   .venv, Python 3, with torch
#   PYTHON=python3.12 VENV=.venv312 EXTRAS=test CONSTRAINTS=tools/slicer-python-constraints.txt ./install.sh
#                                                                  as in Slicer's Python, no torch
#
# pyradiomics 3.0.1 has no wheel for current Pythons and its sdist imports numpy in setup.py, so
# numpy goes in first and pyradiomics is built without build isolation. On Python 3.12 its
# versioneer needs two configparser aliases that 3.12 removed: tools/pyradiomics-build puts them
# back for that build only (the sdist itself is built unmodified; see the file there).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev}
CONSTRAINTS=${CONSTRAINTS:-}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "install.sh: PYTHON=$PYTHON not found; give an interpreter's name or path, e.g. PYTHON=python3.12" >&2
  exit 2
fi
if [ -x "$VENV/bin/python" ]; then
  # An existing venv is reused; say so when it runs another Python than the one asked for, rather
  # than install into it silently.
  wanted=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  found=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$wanted" != "$found" ]; then
    echo "install.sh: $VENV has Python $found, but PYTHON=$PYTHON is $wanted;" \
         "remove $VENV or choose another folder with VENV=" >&2
    exit 2
  fi
else
  "$PYTHON" -m venv "$VENV"
  # Keeps any venv folder out of git without listing each name in .gitignore (Python 3.13's venv
  # writes the same file).
  echo '*' > "$VENV/.gitignore"
fi

pip_install=("$VENV/bin/python" -m pip install --quiet)
if [ -n "$CONSTRAINTS" ]; then
  [ -f "$CONSTRAINTS" ] || { echo "install.sh: CONSTRAINTS=$CONSTRAINTS is not a file" >&2; exit 2; }
  pip_install+=(--constraint "$CONSTRAINTS")
fi
"${pip_install[@]}" --upgrade pip setuptools wheel numpy
PYTHONPATH="$PWD/tools/pyradiomics-build${PYTHONPATH:+:$PYTHONPATH}" \
  "${pip_install[@]}" --no-build-isolation pyradiomics==3.0.1
"${pip_install[@]}" ".[$EXTRAS]"
echo "abcir[$EXTRAS] installed in $(cd "$VENV" && pwd) ($("$VENV/bin/python" --version))"
