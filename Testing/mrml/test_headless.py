"""`python -m ABCImmunoResponseLib.headless`: a prediction on a saved scene, as a CI system runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, load_volume, two_lesion_scene

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.errors import InputError  # noqa: E402
from abcir.jobs import SENSITIVITY_STEP  # noqa: E402
from ABCImmunoResponseLib.headless import EXIT_BUG, buildParser, caseParameters, main  # noqa: E402
from ABCImmunoResponseLib.parameters import (MODULE_NAME, findParameterNode, readCaseParameters,  # noqa: E402
                                             writeNodeReference)
from ABCImmunoResponseLib.results import RESULT_ATTRIBUTE, predictionFromJson  # noqa: E402
from ABCImmunoResponseLib.sensitivity import storedSensitivity  # noqa: E402
from ABCImmunoResponseLib.standalone import newStandaloneScene  # noqa: E402

MODULE_FOLDER = Path(__file__).resolve().parents[2] / "ABCImmunoResponse"


def headless(*args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(MODULE_FOLDER),
                                                                            os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "ABCImmunoResponseLib.headless", *args], capture_output=True,
                          text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def saved_scene(real_ct, core_seg_file, bundles, tmp_path_factory):
    """The stand-in patient saved as the panel would leave it: inputs, confirmed facts, model and weights."""
    nodes = two_lesion_scene(real_ct, core_seg_file)
    scene = nodes["scene"]
    for node in (nodes["volume"], nodes["segmentation"]):
        node.AddDefaultStorageNode()
    panel = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    panel.SetSingletonTag(MODULE_NAME)
    panel.SetAttribute("ModuleName", MODULE_NAME)
    for name, value in (("priorLines", "1"), ("metastaticSites", "1-2"), ("visceral", "yes"), ("tnbc", "no"),
                        ("metastaticSitesPrefilled", "False"), ("visceralPrefilled", "False"),
                        ("model", "combined"), ("bundlePath", str(bundles["combined"]))):
        panel.SetParameter(name, value)
    writeNodeReference(panel, "ctVolume", nodes["volume"])
    writeNodeReference(panel, "segmentation", nodes["segmentation"])
    folder = tmp_path_factory.mktemp("headless")
    scene.SetRootDirectory(str(folder))
    assert scene.WriteToMRB(str(folder / "case.mrb"))
    return folder / "case.mrb"


def test_headless_prediction_on_a_saved_scene_matches_the_panel_s(saved_scene, predicted, tmp_path):
    done = headless(str(saved_scene), "--out", str(tmp_path / "result.json"), "--table", str(tmp_path / "result.csv"),
                    "--save-scene", str(tmp_path / "with-result.mrb"))
    assert done.returncode == 0, done.stderr
    # Progress counts lesions as they finish (the child uses every core, so either may finish first). The scene
    # was saved before the sensitivity choice existed: automatic, and two small lesions cost about 4 s, so it runs.
    steps = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert [line[:6] for line in steps[:2]] == ["[1/2] ", "[2/2] "]
    assert sorted(line[6:] for line in steps[:2]) == ["adrenal_1", "pancreas_1"]
    assert steps[2:] == [f"[{done}/20] {SENSITIVITY_STEP}" for done in range(1, 21)]
    assert "Response probability" in done.stdout and "NOT clinically validated" in done.stdout
    assert "Under 20 outline changes" in done.stdout
    result = json.loads((tmp_path / "result.json").read_text())
    panel = predicted["applied"].prediction
    assert result["model"] == "combined" and result["risk_group"] == panel.risk_group
    assert result["probability"] == pytest.approx(panel.probability, rel=1e-9)
    with open(tmp_path / "result.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["row"] for row in rows] == ["lesion", "lesion", "patient"]
    assert float(rows[2]["probability"]) == pytest.approx(panel.probability, rel=1e-5)
    assert [float(row["outline_changes"]) for row in rows] == [10, 10, 20]

    reopened = newStandaloneScene()
    reopened.load(tmp_path / "with-result.mrb")
    table = readCaseParameters(findParameterNode(reopened.scene)).resultTable
    assert predictionFromJson(table.GetAttribute(RESULT_ATTRIBUTE)).probability == result["probability"]
    sensitivity = storedSensitivity(table)
    assert sensitivity.n_perturbations == 20 and sensitivity.probability == result["probability"]
    assert sensitivity.probability_low <= result["probability"] <= sensitivity.probability_high


def test_options_override_the_saved_facts_and_outputs_are_never_overwritten(saved_scene, bundles, tmp_path):
    existing = tmp_path / "result.json"
    existing.write_text("an earlier result")
    refused = headless(str(saved_scene), "--out", str(existing))
    assert refused.returncode == 2
    assert f"Output '{existing}' already exists" in refused.stderr
    assert existing.read_text() == "an earlier result"

    clinical = headless(str(saved_scene), "--out", str(tmp_path / "clinical.json"), "--model", "clinical",
                        "--weights", str(bundles["clinical"]), "--clinical", "lines=1", "sites=3+", "visceral=no",
                        "tnbc=yes")
    assert clinical.returncode == 0, clinical.stderr
    result = json.loads((tmp_path / "clinical.json").read_text())
    assert result["model"] == "clinical" and result["clinical"]["tnbc"] is True
    assert result["clinical"]["metastatic_sites_ge3"] is True and result["clinical"]["visceral"] is False


def test_a_scene_without_the_panel_s_facts_says_what_is_missing(real_ct, bundles, tmp_path):
    standalone = newStandaloneScene()
    volume = load_volume(standalone.scene, real_ct["path"])
    volume.AddDefaultStorageNode()
    standalone.scene.SetRootDirectory(str(tmp_path))
    assert standalone.scene.WriteToMRB(str(tmp_path / "bare.mrb"))
    done = headless(str(tmp_path / "bare.mrb"), "--out", str(tmp_path / "r.json"), "--model", "clinical",
                    "--weights", str(bundles["clinical"]))
    assert done.returncode == 2
    assert "prior lines of therapy, number of metastatic sites, visceral metastasis, triple-negative subtype " \
           "not entered" in done.stderr


def test_a_ct_saved_with_a_label_map_is_the_ct_and_the_label_map_is_refused_as_one(real_ct, bundles, tmp_path):
    """Slicer's class queries count a label map as a scalar volume; the CT must still be the only CT."""
    import slicer

    standalone = newStandaloneScene()
    ct = load_volume(standalone.scene, real_ct["path"])
    sitk.WriteImage(real_ct["labels"], str(tmp_path / "organs.nrrd"))
    organs = standalone.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "organs")
    reader = slicer.vtkMRMLVolumeArchetypeStorageNode()
    reader.SetFileName(str(tmp_path / "organs.nrrd"))
    assert reader.ReadData(organs)
    for node in (ct, organs):
        node.AddDefaultStorageNode()
    standalone.scene.SetRootDirectory(str(tmp_path))
    assert standalone.scene.WriteToMRB(str(tmp_path / "ct-and-labels.mrb"))

    reopened = newStandaloneScene()
    reopened.load(tmp_path / "ct-and-labels.mrb")
    scene = reopened.scene
    assert scene.GetFirstNodeByName("organs").GetClassName() == "vtkMRMLLabelMapVolumeNode"
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 2  # what made the CT ambiguous
    options = ["scene.mrb", "--out", "r.json", "--model", "clinical"]
    assert caseParameters(scene, buildParser().parse_args(options)).ctVolume.GetName() == "CT"
    with pytest.raises(InputError) as refused:
        caseParameters(scene, buildParser().parse_args([*options, "--ct", "organs"]))
    assert str(refused.value) == ("CT volume 'organs': that node is a vtkMRMLLabelMapVolumeNode, not a "
                                  "vtkMRMLScalarVolumeNode; name a vtkMRMLScalarVolumeNode with --ct.")

    # From the command line: the CT is taken (the run stops later, on the facts this bare scene lacks) ...
    done = headless(str(tmp_path / "ct-and-labels.mrb"), "--out", str(tmp_path / "r.json"), "--model", "clinical",
                    "--weights", str(bundles["clinical"]))
    assert done.returncode == 2
    assert "not entered" in done.stderr and "CT volume" not in done.stderr
    # ... and naming the label map is refused in one line, with exit code 2.
    refused = headless(str(tmp_path / "ct-and-labels.mrb"), "--out", str(tmp_path / "r.json"), "--model",
                       "clinical", "--weights", str(bundles["clinical"]), "--ct", "organs")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == ("ABCImmunoResponse headless: error: CT volume 'organs': "
                                                       "that node is a vtkMRMLLabelMapVolumeNode, not a "
                                                       "vtkMRMLScalarVolumeNode; name a vtkMRMLScalarVolumeNode "
                                                       "with --ct.")
    assert not (tmp_path / "r.json").exists()


def test_an_unreadable_scene_is_one_line_and_exit_code_2(tmp_path, capsys):
    """The wheel's reader raises OSError, Slicer's ``loadScene`` RuntimeError: either way the scene is bad input."""
    scene = tmp_path / "case.mrb"
    scene.write_text("not a scene bundle")
    code = main([str(scene), "--out", str(tmp_path / "result.json")])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"ABCImmunoResponse headless: error: Scene '{scene}': cannot be read (Slicer's scene reader "
                     "failed); give a .mrb or .mrml scene saved by Slicer, with the files it references beside it."]
    assert not (tmp_path / "result.json").exists()
    assert Path.cwd().is_dir()  # Slicer's unzip left the process in the removed unpacking folder; it is back


def test_an_unexpected_error_is_an_exit_code_with_its_traceback_not_an_escaping_exception(tmp_path, capsys,
                                                                                          monkeypatch):
    """Inside Slicer an exception escaping ``main`` leaves the application running and the CI job hanging:
    anything that is not bad input (a bug, a failed write) must end in exit code 1 with its traceback."""
    import ABCImmunoResponseLib.headless as headless

    def broken(args, scene, load):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(headless, "run", broken)
    code = main([str(tmp_path / "case.mrb"), "--out", str(tmp_path / "result.json")])
    assert code == EXIT_BUG == 1
    stderr = capsys.readouterr().err
    assert "ABCImmunoResponse headless: unexpected error:" in stderr and "Traceback (most recent call last)" in stderr
    assert "ZeroDivisionError: a bug" in stderr
    assert not (tmp_path / "result.json").exists()
