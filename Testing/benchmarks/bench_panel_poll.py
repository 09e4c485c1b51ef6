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

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "ABCImmunoResponse"), str(REPO / "Testing" / "mrml")]

from abcir.imaging.ct import read_ct  # noqa: E402
from abcir.imaging.segfile import SITE_TAG, Segment, write_seg_nrrd  # noqa: E402
from abcir.models.bundle import bundled_bundle  # noqa: E402
from abcir.patient.sites import SITES  # noqa: E402
from mrml_scene import LESION_LABELS  # noqa: E402

BUDGET_S = 0.020  # per timer call, on the GUI thread

ROUND = """
import json, sys, time
sys.path[:0] = sys.argv[1:3]
from mrml_scene import case_logic, case_parameter_node, load_segmentation, load_volume
from ABCImmunoResponseLib.segments import setSegmentIncluded
from ABCImmunoResponseLib.standalone import newStandaloneScene

standalone = newStandaloneScene()
nodes = {"scene": standalone.scene, "volume": load_volume(standalone.scene, sys.argv[3]),
         "segmentation": load_segmentation(standalone.scene, sys.argv[4])}
setSegmentIncluded(nodes["segmentation"], "Segment_20", False)
run = case_logic(nodes, sys.argv[6], jobs=2).startPrediction(case_parameter_node(nodes, sys.argv[5]))
durations, update = [], None
while update is None or update.outcome is None:
    time.sleep(0.1)
    started = time.perf_counter()
    update = run.poll()
    durations.append(time.perf_counter() - started)
print(json.dumps({"status": update.outcome.status, "message": update.outcome.message, "durations": durations}))
"""


def case_files(shared: Path, folder: Path) -> tuple[Path, Path]:
    """The real CT as NRRD and a .seg.nrrd of three of its organs (as the MRML tests' fixtures make them)."""
    image = read_ct(shared / "ct_dicom_example" / "dicom")
    ct = folder / "ct.nrrd"
    sitk.WriteImage(image, str(ct))
    labels = sitk.Resample(sitk.ReadImage(str(shared / "ct_dicom_example" / "organs_totalsegmentator.nii.gz")),
                           image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    segments = [Segment(f"Segment_{value}", name, sitk.Cast(labels == value, sitk.sitkUInt8), SITES[site].color,
                        {SITE_TAG: site}) for value, (name, site) in LESION_LABELS.items()]
    return ct, write_seg_nrrd(folder / "lesions.seg.nrrd", segments)


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
