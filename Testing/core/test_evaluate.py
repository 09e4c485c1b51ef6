"""``abcir evaluate`` end to end: metrics.json against R, the report, and bad input."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from abcir.commands.evaluate import add_cli, run_evaluate
from abcir.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stats"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
SUBGROUPS = {"cohort": ["center", "cps"], "ties": ["arm"], "tiny": ["stage"]}
MODEL_KEYS = {"n", "n_excluded", "n_responders", "auc", "auc_ci", "threshold_probability",
              "sensitivity", "specificity", "accuracy", "ppv", "npv", "calibration", "survival",
              "subgroups"}
SURVIVAL_KEYS = {"cutoff", "maxstat_statistic", "maxstat_p", "n_high_risk", "n_low_risk",
                 "logrank_p", "hr", "hr_ci", "c_index", "c_index_se", "median_pfs_low_risk",
                 "median_pfs_high_risk"}


def _run(tmp_path_factory: pytest.TempPathFactory, dataset: str, cutoff: float | None) -> dict:
    out = tmp_path_factory.mktemp(f"{dataset}_{'auto' if cutoff is None else 'fixed'}")
    metrics_path, report_path = run_evaluate(FIXTURES / f"{dataset}.csv", out,
                                             SUBGROUPS[dataset], cutoff)
    return {"metrics": json.loads(metrics_path.read_text()), "report": report_path}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results = {d: _run(tmp_path_factory, d, None) for d in SUBGROUPS}
    results["tiny_fixed"] = _run(tmp_path_factory, "tiny", REFERENCE["tiny"]["fixed_cutoff"])
    return results


@pytest.mark.parametrize("dataset", list(SUBGROUPS))
def test_metrics_json_matches_r(outputs: dict, dataset: str) -> None:
    metrics = outputs[dataset]["metrics"]
    for name, expected in REFERENCE[dataset]["models"].items():
        got = metrics["models"][name]
        assert MODEL_KEYS <= set(got)
        assert (got["n"], got["n_excluded"], got["n_responders"]) == (
            expected["n"], expected["n_excluded"], expected["n_responders"])
        assert got["auc"] == pytest.approx(expected["auc"], abs=1e-9)
        assert got["auc_ci"] == pytest.approx(expected["ci"], abs=1e-6)
        for key in ("sensitivity", "specificity", "accuracy", "ppv", "npv"):
            assert got[key] == pytest.approx(expected[key], abs=1e-12)
        mle = dict(expected["calibration_mle"], brier=expected["calibration"]["brier"])
        assert got["calibration"] == pytest.approx(mle, abs=1e-9)
        survival, reference = got["survival"], expected["survival"]
        assert SURVIVAL_KEYS <= set(survival)
        auto = reference["auto"]
        assert survival["cutoff"] == reference["maxstat_cutoff"]
        assert survival["maxstat_statistic"] == pytest.approx(reference["maxstat_statistic"],
                                                              rel=1e-12)
        assert survival["maxstat_p"] == pytest.approx(min(reference["maxstat_p"], 1), rel=1e-9)
        assert (survival["n_high_risk"], survival["n_low_risk"]) == (auto["n_high"],
                                                                     auto["n_low"])
        assert survival["logrank_p"] == pytest.approx(auto["logrank_p"], rel=1e-7)
        assert survival["hr"] == pytest.approx(auto["hr"], rel=1e-5)
        assert survival["hr_ci"] == pytest.approx(auto["hr_ci"], rel=1e-5)
        assert survival["c_index"] == pytest.approx(reference["c_index"], abs=1e-9)
        assert survival["c_index_se"] == pytest.approx(reference["c_index_se"], abs=1e-9)
        assert survival["median_pfs_low_risk"] == auto["median_low"]
        assert survival["median_pfs_high_risk"] == auto["median_high"]
        for column, levels in expected["subgroups"].items():
            for level, sub in levels.items():
                mine = got["subgroups"][column][level]
                assert mine["n"] == sub["n"]
                assert mine["auc"] == (None if sub["auc"] is None
                                       else pytest.approx(sub["auc"], abs=1e-9))
                assert mine["auc_ci"] == (None if sub["ci"] is None
                                          else pytest.approx(sub["ci"], abs=1e-6))
    pairs = {(c["a"], c["b"]): c for c in metrics["comparisons"]}
    for expected in REFERENCE[dataset]["comparisons"]:
        assert pairs[(expected["a"], expected["b"])]["delong_p"] == pytest.approx(expected["p"],
                                                                                  rel=1e-7)


def test_fixed_cutoff_is_applied_not_chosen(outputs: dict) -> None:
    survival = outputs["tiny_fixed"]["metrics"]["models"]["m"]["survival"]
    expected = REFERENCE["tiny"]["models"]["m"]["survival"]["fixed"]
    assert survival["cutoff"] == expected["cutoff"]
    assert survival["maxstat_statistic"] is None and survival["maxstat_p"] is None
    assert (survival["n_high_risk"], survival["n_low_risk"]) == (expected["n_high"],
                                                                 expected["n_low"])
    assert survival["hr"] == pytest.approx(expected["hr"], rel=1e-5)
    assert survival["median_pfs_high_risk"] == expected["median_high"]


def test_report_is_offline_and_links_existing_figures(outputs: dict) -> None:
    report = outputs["cohort"]["report"]
    page = report.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"fig_roc.png", "fig_calibration.png", "fig_decision_curve.png",
            "fig_clinical_impact.png", "fig_km_radiomics.png", "fig_waterfall_combined.png",
            "fig_violin.png", "fig_forest.png"} <= set(images)
    for image in images:
        assert (report.parent / image).stat().st_size > 10_000
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "Table 2 layout" in page and "Table 1 layout" in page and "Fisher exact" in page
    assert "0.929 (0.886\u20130.973)" in page  # radiomics AUC (95% CI), as in Table 2


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    return path


GOOD = "patient_id,response,pfs_months,pfs_event,x_score\n" + "".join(
    f"P{i},{i % 2},{i + 1.5},{i % 3 > 0:d},{(i % 5) / 2 - 1}\n" for i in range(20))


@pytest.mark.parametrize(("text", "pattern"), [
    ("patient_id,x_score\nP1,0.2\n", r"no 'response' column"),
    (GOOD.replace("P3,1,4.5,0,0.5", "P3,1,4.5,0,high"),
     r"column 'x_score' .*row 5 \(patient_id P3; values 'high'\)"),
    (GOOD.replace("P3,1,4.5,0,0.5", "P3,2,4.5,0,0.5"),
     r"column 'response' must be 1 \(CR/PR\) or 0 \(SD/PD\).*row 5 \(patient_id P3"),
    (GOOD.replace("P3,1,4.5,0,0.5", "P3,1,-4.5,0,0.5"),
     r"column 'pfs_months' must be > 0.*row 5 \(patient_id P3"),
    ("patient_id,response,x_score\nP1,1,0.2\nP2,1,0.5\n", r"only the value 1"),
    ("patient_id,response,x_score\nP1,1,0.2\nP1,0,0.5\n", r"patient ids occur more than once: 'P1' on rows 2 and 3"),
    ("patient_id,response\nP1,1\nP2,0\n", r"no '<model>_score' column"),
    ("patient_id,response,pfs_months,x_score\nP1,1,3,0.2\nP2,0,4,0.5\n", r"no 'pfs_event'"),
])
def test_bad_input_names_column_and_rows(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        run_evaluate(_write(tmp_path, text), tmp_path / "out")
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_folder_or_a_latin1_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"Predictions file '{tmp_path}' is a folder; give the predictions CSV"):
        run_evaluate(tmp_path, tmp_path / "out")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(GOOD.replace("P3,", "M\u00fcller,").encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.csv is not UTF-8 text .*; save it as UTF-8"):
        run_evaluate(latin1, tmp_path / "out")


def test_one_class_among_a_models_scored_rows_names_the_column(tmp_path: Path) -> None:
    text = "patient_id,response,a_score,b_score\nP1,1,0.1,0.3\nP2,0,0.2,\nP3,1,0.5,0.9\n"
    with pytest.raises(InputError, match=r"'b_score'.*all responders"):
        run_evaluate(_write(tmp_path, text), tmp_path / "out")


def test_unknown_subgroup_lists_the_choices(tmp_path: Path) -> None:
    text = "patient_id,response,x_score,site\nP1,1,0.2,A\nP2,0,0.1,B\nP3,1,0.4,A\n"
    with pytest.raises(InputError, match=r"--subgroup 'center'.*choose from: site"):
        run_evaluate(_write(tmp_path, text), tmp_path / "out", subgroups=["center"])


def test_without_pfs_the_survival_part_is_left_out_with_a_note(tmp_path: Path) -> None:
    text = "patient_id,response,x_score\n" + "".join(
        f"P{i},{i % 2},{(i % 7) / 3 - 1}\n" for i in range(16))
    metrics_path, report_path = run_evaluate(_write(tmp_path, text), tmp_path / "out")
    metrics = json.loads(metrics_path.read_text())
    assert "survival" not in metrics["models"]["x"]
    assert any("survival analysis" in note for note in metrics["notes"])
    assert "Progression-free survival" not in report_path.read_text()


@pytest.mark.parametrize("cutoff, group", [(1e9, "high"), (-1e9, "low")])
def test_fixed_cutoff_beyond_every_score_leaves_survival_out_with_a_note(tmp_path: Path, cutoff: float,
                                                                         group: str) -> None:
    """Every patient in one risk group was a lifelines traceback (an empty Kaplan-Meier group)."""
    metrics_path, _ = run_evaluate(_write(tmp_path, GOOD), tmp_path / "out", cutoff=cutoff)
    metrics = json.loads(metrics_path.read_text())
    assert metrics["models"]["x"]["survival"] is None
    assert metrics["models"]["x"]["auc"] is not None
    assert any(f"puts all 20 patients in the {group}-risk group (x_score ranges from" in note
               for note in metrics["notes"])


def test_missing_cells_are_left_out_and_counted(tmp_path: Path) -> None:
    text = GOOD.replace("P3,1,4.5,0,0.5", "P3,1,4.5,0,").replace("P4,0,5.5,1,", "P4,0,,,")
    metrics = json.loads(run_evaluate(_write(tmp_path, text), tmp_path / "out")[0].read_text())
    model = metrics["models"]["x"]
    assert (model["n"], model["n_excluded"]) == (19, 1)
    assert (model["survival"]["n"], model["survival"]["n_excluded"]) == (18, 2)


def test_existing_report_is_kept_unless_forced(tmp_path: Path) -> None:
    source = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    run_evaluate(source, out)
    first = (out / "metrics.json").read_text()
    (out / "fig_stale.png").write_bytes(b"old")
    with pytest.raises(InputError, match="already holds a report.*--force"):
        run_evaluate(source, out)
    run_evaluate(source, out, force=True)
    assert (out / "metrics.json").read_text() == first
    assert not (out / "fig_stale.png").exists()


def test_cli_parses_arguments_and_returns_zero(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="abcir")
    add_cli(parser.add_subparsers(dest="command"))
    source = _write(tmp_path, GOOD)
    args = parser.parse_args(["evaluate", str(source), "--out", str(tmp_path / "o"),
                              "--cutoff", "-0.5"])
    assert args.cutoff == -0.5
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "metrics.json" in printed
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    # No batch.json beside the file: nobody recorded the weights, and the outputs say so.
    assert metrics["weights"] == [f"x: where its weights came from is not recorded beside {source.name} "
                                  "(abcir batch and abcir train write it there); do not read its probabilities as "
                                  "validated."]
    assert f"Weights of {metrics['weights'][0]}" in printed
    assert "not recorded beside" in (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert metrics["models"]["x"]["survival"]["cutoff"] == -0.5
    assert parser.parse_args(["evaluate", str(source), "--out", "o", "--cutoff", "auto"]).cutoff \
        is None
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", str(source), "--out", "o", "--cutoff", "best"])
