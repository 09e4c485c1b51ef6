#!/usr/bin/env bash
# Runs ABCImmunoResponseTest (the module's ScriptedLoadableModuleTest) inside a real 3D Slicer,
# without a main window, on the module as it is in this checkout.
#
#   SLICER=/path/to/Slicer Testing/slicer/run_slicer_tests.sh
#
# SLICER is the Slicer launcher (Slicer on Linux, Slicer.exe on Windows,
# Slicer.app/Contents/MacOS/Slicer on macOS), 5.8 or later. The prediction also needs the
# SlicerRadiomics extension (pyradiomics) and the packages the panel offers to install
# (pandas, pynrrd, pyyaml, safetensors); without them the test is skipped and says which
# are missing. Without SLICER the script says so and exits 0: nothing was run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
module_dir="$repo/ABCImmunoResponse"

if [ -z "${SLICER:-}" ]; then
  echo "run_slicer_tests.sh: SKIPPED - no Slicer executable given; nothing was run." >&2
  echo "  Set SLICER=/path/to/Slicer (3D Slicer 5.8 or later) to run ABCImmunoResponseTest in Slicer." >&2
  exit 0
fi
if [ ! -x "$SLICER" ]; then
  echo "run_slicer_tests.sh: error: SLICER='$SLICER' is not an executable file; give the Slicer launcher." >&2
  exit 2
fi

echo "Running ABCImmunoResponseTest in $("$SLICER" --version 2>/dev/null || echo "$SLICER")"
# --testing makes Slicer exit when the test ends, with a non-zero code if it failed.
exec "$SLICER" --no-splash --testing --no-main-window --disable-cli-modules \
  --additional-module-paths "$module_dir" \
  --python-code "import slicer.testing; slicer.testing.runUnitTest(['$module_dir'], 'ABCImmunoResponse')"
