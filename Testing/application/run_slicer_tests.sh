#!/usr/bin/env bash
# Runs the tests of module ABCImmunoResponse (its ScriptedLoadableModuleTest classes) inside a real
# 3D Slicer 5.10 or later (Python 3.12), without a main window, on the module in this checkout.
#
#   SLICER=/path/to/Slicer \
#   SLICER_EXTENSION_DIRS=/path/to/Extensions-<revision>/SlicerRadiomics \
#     Testing/application/run_slicer_tests.sh
#
# SLICER                 the Slicer launcher: Slicer on Linux, Slicer.exe on Windows,
#                        Slicer.app/Contents/MacOS/Slicer on macOS; 5.10 or later.
# SLICER_EXTENSION_DIRS  the installed extensions the tests need, separated by ':': SlicerRadiomics,
#                        which brings pyradiomics. Each is that extension's own folder in Slicer's
#                        extensions folder (slicer.app.extensionsInstallPath in Slicer's Python
#                        console; ~/.config/slicer.org/Extensions-<revision> on Linux).
#
# Why they must be named: --testing implies --disable-settings and --ignore-slicerrc
# (qSlicerCoreCommandOptions), so Slicer reads its revision settings from a fresh
# Slicer-<revision>-tmp.ini and never sees the Modules/AdditionalPaths that the Extensions Manager
# wrote into Slicer-<revision>.ini: no installed extension's modules are loaded. (The launcher
# still reads that file's Python and library paths whatever the options, when it finds it where it
# looks; the modules are another matter.) The script gives the extensions back as ctest does for an
# extension's own tests: each folder goes to --additional-module-paths (Slicer finds
# lib/Slicer-X.Y/qt-scripted-modules, cli-modules and qt-loadable-modules below it) and its Python
# site-packages (lib/python3.*/site-packages; Lib/site-packages on Windows) goes in front of
# PYTHONPATH, which the launcher keeps after its own paths.
#
# unittest, and so slicer.testing.runUnitTest, count a skipped test as a success; here a skipped test
# means the module was not tested. Exit codes:
#   0  every test ran and passed
#   1  a test failed or raised, or Slicer could not run them
#   2  bad input: no such launcher or extension folder, or a Slicer older than 5.10
#   3  not tested: a test was skipped (e.g. pyradiomics missing) or the module has none
# Without SLICER the script says so and exits 0: nothing was run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
module=ABCImmunoResponse
module_dir="$repo/$module"

if [ -z "${SLICER:-}" ]; then
  echo "run_slicer_tests.sh: SKIPPED - no Slicer executable given; nothing was run." >&2
  echo "  Set SLICER=/path/to/Slicer (3D Slicer 5.10 or later) to run the tests of module $module in Slicer." >&2
  exit 0
fi
if [ ! -x "$SLICER" ]; then
  echo "run_slicer_tests.sh: error: SLICER='$SLICER' is not an executable file; give the Slicer launcher." >&2
  exit 2
fi

module_paths=("$module_dir")
python_paths=()
if [ -n "${SLICER_EXTENSION_DIRS:-}" ]; then
  IFS=: read -r -a extension_dirs <<< "$SLICER_EXTENSION_DIRS"
  for extension_dir in "${extension_dirs[@]}"; do
    [ -n "$extension_dir" ] || continue
    if [ ! -d "$extension_dir" ]; then
      echo "run_slicer_tests.sh: error: SLICER_EXTENSION_DIRS names '$extension_dir', which is not a folder;" \
           "give an installed extension's folder, e.g. .../Extensions-<revision>/SlicerRadiomics." >&2
      exit 2
    fi
    found=
    for modules in "$extension_dir"/lib/Slicer-*/qt-scripted-modules "$extension_dir"/lib/Slicer-*/cli-modules \
                   "$extension_dir"/lib/Slicer-*/qt-loadable-modules; do
      if [ -d "$modules" ]; then found=yes; fi
    done
    for site_packages in "$extension_dir"/lib/python3*/site-packages "$extension_dir"/Lib/site-packages; do
      if [ -d "$site_packages" ]; then python_paths+=("$site_packages"); found=yes; fi
    done
    if [ -z "$found" ]; then
      echo "run_slicer_tests.sh: error: '$extension_dir' (in SLICER_EXTENSION_DIRS) has no lib/Slicer-X.Y" \
           "module folder nor Python site-packages; give the extension's own folder," \
           "e.g. .../Extensions-<revision>/SlicerRadiomics." >&2
      exit 2
    fi
    module_paths+=("$extension_dir")
  done
else
  echo "run_slicer_tests.sh: note: SLICER_EXTENSION_DIRS is not set; --testing loads no installed extension's" \
       "modules, so tests that need SlicerRadiomics may be skipped, and a skipped test counts as not tested." >&2
fi
if [ ${#python_paths[@]} -gt 0 ]; then
  joined="$(IFS=:; echo "${python_paths[*]}")"
  export PYTHONPATH="$joined${PYTHONPATH:+:$PYTHONPATH}"
fi

# Runs in Slicer's __main__ after startup. The module and its folder come through the environment so
# that no path has to be quoted inside Python source.
python_code="$(cat <<'PYTHON'
import os
import sys
import unittest

PASSED, FAILED, BAD_INPUT, NOT_TESTED = 0, 1, 2, 3


def run_module_tests(module_name, module_dir, stream=sys.stderr):
    """Runs every TestCase of module `module_name` and returns the exit code (see run_slicer_tests.sh).

    A skipped test, or none at all, gives NOT_TESTED, although unittest counts skips as successes.
    """
    if module_dir not in sys.path:
        sys.path.insert(0, module_dir)
    suite = unittest.defaultTestLoader.loadTestsFromName(module_name)
    result = unittest.TextTestRunner(stream=stream, verbosity=2).run(suite)
    if not result.wasSuccessful():
        return FAILED
    if result.skipped or result.testsRun == 0:
        print(f"NOT TESTED: {len(result.skipped)} of the {result.testsRun} tests of module '{module_name}'"
              " were skipped; a skipped test counts as a failure here.", file=stream)
        for test, reason in result.skipped:
            print(f"  {test.id()}: {reason}", file=stream)
        return NOT_TESTED
    return PASSED


def main():
    """Runs the tests and makes Slicer exit with their code.

    With --testing, Slicer exits after this code with 1 if it raised and 0 otherwise;
    slicer.util.exit replaces that with the given code.
    """
    import slicer

    version = (slicer.app.majorVersion, slicer.app.minorVersion)
    if version < (5, 10) or sys.version_info < (3, 12):
        print(f"Module tests need 3D Slicer 5.10 or later (Python 3.12); this is Slicer {version[0]}.{version[1]}"
              f" with Python {sys.version.split()[0]}.", file=sys.stderr)
        code = BAD_INPUT
    else:
        code = run_module_tests(os.environ["ABCIR_SLICER_TEST_MODULE"], os.environ["ABCIR_SLICER_TEST_MODULE_DIR"])
    slicer.util.exit(code)


if __name__ == "__main__":
    main()
PYTHON
)"
export ABCIR_SLICER_TEST_MODULE="$module" ABCIR_SLICER_TEST_MODULE_DIR="$module_dir"

echo "Running the tests of module $module in $("$SLICER" --version 2>/dev/null || echo "$SLICER")" >&2
set +e
"$SLICER" --no-splash --testing --no-main-window --disable-cli-modules \
  --additional-module-paths "${module_paths[@]}" \
  --python-code "$python_code"
status=$?
set -e
case $status in
  0) echo "run_slicer_tests.sh: PASSED - every test of module $module ran and passed in Slicer." >&2 ;;
  2) echo "run_slicer_tests.sh: error: Slicer could not run the tests (see above); exit code 2." >&2 ;;
  3) echo "run_slicer_tests.sh: NOT TESTED - tests of module $module were skipped or none was found (listed above)." \
          "Install what they ask for, or name SlicerRadiomics's folder in SLICER_EXTENSION_DIRS; exit code 3." >&2 ;;
  *) echo "run_slicer_tests.sh: FAILED - tests of module $module failed in Slicer; exit code $status." >&2 ;;
esac
exit "$status"
