"""How long the panel's timer call takes while a prediction runs: the slowest ``poll`` against its 20 ms budget.

The panel polls its child process from a Qt timer every 100 ms (``ABCImmunoResponseLib.process``); each
call runs on Slicer's GUI thread, so it must return at once: read the child's new lines, and at the end
put the result in the scene. The budget is 20 ms per call.

Each round is a fresh interpreter, as Slicer is at the first Predict (a result that needs a heavy
import to be applied would show in the last call), with the slicer-core wheel's real scene: the real CT
of ``../shared/data/ct_dicom_example`` and two of its organs as lesions, the bundled combined weights,
two processes. The child's own work competes with the polls for the two cores, as in Slicer.

    python Testing/benchmarks/bench_panel_poll.py [--rounds 3] [--shared ../shared/data]

Prints, per round, the number of calls and the slowest, and the slowest of all against the budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "ABCImmunoResponse"), str(REPO / "Testing" / "mrml")]

from abcir.models.bundle import bundled_bundle  # noqa: E402
from mrml_scene import real_ct_files, write_lesion_seg  # noqa: E402

BUDGET_S = 0.020  # per timer call, on the GUI thread

ROUND = """
import json, sys, time
sys.path[:0] = sys.argv[1:3]
from mrml_scene import start_two_lesion_prediction

_, run = start_two_lesion_prediction(*sys.argv[3:7])
durations, update = [], None
while update is None or update.outcome is None:
    time.sleep(0.1)
    started = time.perf_counter()
    update = run.poll()
    durations.append(time.perf_counter() - started)
print(json.dumps({"status": update.outcome.status, "message": update.outcome.message, "durations": durations}))
"""


def case_files(shared: Path, folder: Path) -> tuple[Path, Path]:
    """The real CT as NRRD and a .seg.nrrd of three of its organs, as the MRML tests' fixtures make them."""
    real_ct = real_ct_files(shared, folder)
    return real_ct["path"], write_lesion_seg(real_ct["labels"], folder / "lesions.seg.nrrd")


def one_round(ct: Path, segmentation: Path, work: Path) -> list[float]:
    """The duration of every timer call of one prediction, in a fresh interpreter (s)."""
    done = subprocess.run([sys.executable, "-c", ROUND, str(REPO / "ABCImmunoResponse"), str(REPO / "Testing" / "mrml"),
                           str(ct), str(segmentation), str(bundled_bundle("combined").path), str(work)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_panel_poll: the round failed:\n{done.stderr[-3000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["status"] != "succeeded":
        raise SystemExit(f"bench_panel_poll: the prediction {measured['status']}: {measured['message']}")
    return measured["durations"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    slowest = []
    with tempfile.TemporaryDirectory(prefix="abcir-bench-poll-") as folder:
        ct, segmentation = case_files(args.shared, Path(folder))
        for index in range(args.rounds):
            durations = one_round(ct, segmentation, Path(folder) / f"work{index}")
            slowest.append(max(durations))
            print(f"round {index + 1}: {len(durations)} calls, slowest {max(durations) * 1000:.1f} ms, "
                  f"last (applies the result) {durations[-1] * 1000:.1f} ms")
    worst = max(slowest)
    print(f"slowest call of all rounds: {worst * 1000:.1f} ms; budget {BUDGET_S * 1000:.0f} ms; "
          f"ratio {worst / BUDGET_S:.2f} ({'met' if worst < BUDGET_S else 'NOT met'})")


if __name__ == "__main__":
    main()
