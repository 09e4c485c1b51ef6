"""The three models: architecture (clinical facts enter at layer 4), numpy = torch, and the fitting code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import statsmodels.api as sm
from abcir.models.bundle import load_bundle
from abcir.errors import InputError
from abcir.features.catalogue import feature_names
from abcir.models import LogisticArchitecture, LogisticModel, MLPArchitecture, MLPModel, sigmoid
from abcir.stats.delong import delong_auc
from tiny_bundles import INFORMATIVE, NO_TORCH, fast_settings, tiny_bundle, tiny_cohort, tiny_preprocessing

torch = pytest.importorskip("torch", reason=NO_TORCH)

from abcir.training import SelectionSettings, TorchMLP, fit_clinical, fit_mlp, fit_preprocessing, torch_model
from abcir.training.selection import univariate_auc  # noqa: E402

FAST = fast_settings()

COMBINED = MLPArchitecture(n_inputs=20, hidden_sizes=(32, 16, 8), activation="relu", dropout=0.2,
                           n_clinical=4, fusion_size=8)
RADIOMICS = MLPArchitecture(n_inputs=20, hidden_sizes=(32, 16, 8), activation="relu", dropout=0.2)


def random_tensors(architecture: MLPArchitecture, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in architecture.tensor_shapes().items()}


def test_radiomics_mlp_has_three_hidden_layers_then_the_output():
    assert RADIOMICS.layers == ("hidden1", "hidden2", "hidden3", "output")
    assert RADIOMICS.fusion_layer is None
    assert RADIOMICS.tensor_shapes() == {
        "hidden1.weight": (32, 20), "hidden1.bias": (32,), "hidden2.weight": (16, 32), "hidden2.bias": (16,),
        "hidden3.weight": (8, 16), "hidden3.bias": (8,), "output.weight": (1, 8), "output.bias": (1,)}


def test_combined_mlp_takes_the_clinical_vector_into_layer_four():
    assert COMBINED.layers == ("hidden1", "hidden2", "hidden3", "hidden4", "output")
    assert COMBINED.fusion_layer == "hidden4"
    shapes = COMBINED.tensor_shapes()
    assert shapes["hidden1.weight"] == (32, 20)  # radiomics only
    assert shapes["hidden4.weight"] == (8, 8 + 4)  # third hidden output + 4 clinical facts
    assert shapes["output.weight"] == (1, 8)


@pytest.mark.parametrize("architecture", [RADIOMICS, COMBINED])
def test_torch_module_has_the_tensors_the_bundle_holds(architecture):
    state = TorchMLP(architecture).state_dict()
    assert {name: tuple(value.shape) for name, value in state.items()} == architecture.tensor_shapes()
    assert all(value.dtype == torch.float64 for value in state.values())


def test_changing_only_the_clinical_input_changes_only_layer_four_on():
    preprocessing = tiny_preprocessing()
    model = MLPModel(COMBINED, preprocessing, random_tensors(COMBINED), feature_names())
    inputs = np.random.default_rng(1).normal(size=(5, 20))
    before = model.activations(inputs, np.zeros((5, 4)))
    after = model.activations(inputs, np.array([[1.0, 0.0, 1.0, 0.0]] * 5))
    for layer in ("hidden1", "hidden2", "hidden3"):
        np.testing.assert_array_equal(before[layer], after[layer])
    for layer in ("hidden4", "output"):
        assert np.abs(before[layer] - after[layer]).max() > 1e-3, layer

    torch_net = torch_model(COMBINED, random_tensors(COMBINED))
    with torch.no_grad():
        t_before = torch_net.layer_outputs(torch.from_numpy(inputs), torch.zeros(5, 4, dtype=torch.float64))
        t_after = torch_net.layer_outputs(torch.from_numpy(inputs), torch.ones(5, 4, dtype=torch.float64))
    for layer in ("hidden1", "hidden2", "hidden3"):
        assert torch.equal(t_before[layer], t_after[layer])
    assert not torch.equal(t_before["hidden4"], t_after["hidden4"])


def test_combined_model_refuses_to_run_without_clinical_facts():
    model = MLPModel(COMBINED, tiny_preprocessing(), random_tensors(COMBINED), feature_names())
    with pytest.raises(InputError, match="clinical facts"):
        model.activations(np.zeros((1, 20)), None)


@pytest.mark.parametrize("kind", ["radiomics", "combined"])
def test_numpy_and_torch_forward_passes_agree_on_a_trained_bundle(tmp_path, kind):
    bundle = load_bundle(tiny_bundle(tmp_path / kind, kind))
    model = bundle.model()
    radiomics, clinical, _ = tiny_cohort(n=60, seed=7)
    clinical_or_none = clinical if kind == "combined" else None
    numpy_scores = model.score(radiomics, clinical_or_none)
    net = torch_model(bundle.manifest.architecture, bundle.tensors)
    with torch.no_grad():
        torch_scores = net(torch.from_numpy(model.standardise(radiomics)),
                           None if clinical_or_none is None else torch.from_numpy(clinical_or_none)).numpy()
    assert np.ptp(numpy_scores) > 0.1  # a constant network would agree trivially
    np.testing.assert_allclose(numpy_scores, torch_scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "elu", "tanh"])
def test_every_activation_agrees_between_numpy_and_torch(activation):
    architecture = MLPArchitecture(n_inputs=20, hidden_sizes=(6, 5, 4), activation=activation, dropout=0.0,
                                   n_clinical=4, fusion_size=3)
    tensors = random_tensors(architecture, seed=3)
    model = MLPModel(architecture, tiny_preprocessing(), tensors, feature_names())
    inputs, clinical = np.random.default_rng(2).normal(size=(9, 20)), np.ones((9, 4))
    with torch.no_grad():
        expected = torch_model(architecture, tensors)(torch.from_numpy(inputs), torch.from_numpy(clinical)).numpy()
    np.testing.assert_allclose(model.activations(inputs, clinical)["output"][:, 0], expected, atol=1e-12)


def test_logistic_model_is_intercept_plus_coefficients():
    model = LogisticModel(LogisticArchitecture(("a", "b", "c", "d")),
                          {"coef": np.array([-1.0, 0.5, 2.0, 0.0]), "intercept": np.array([0.25])})
    assert model.score(None, np.array([[1, 1, 0, 1]]))[0] == pytest.approx(0.25 - 1.0 + 0.5)
    with pytest.raises(InputError, match="clinical facts"):
        model.score(None, None)


def test_sigmoid_is_stable_for_large_scores():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        values = sigmoid(np.array([-1000.0, 0.0, 1000.0, 2.0]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 1 / (1 + np.exp(-2.0))])


def test_fit_clinical_equals_an_independent_newton_fit():
    _, clinical, labels = tiny_cohort(n=200, seed=4)
    fit = fit_clinical(clinical, labels)
    design = np.column_stack([np.ones(len(labels)), clinical])
    beta = np.zeros(5)
    for _ in range(50):  # Newton-Raphson on the log-likelihood, written out
        p = 1 / (1 + np.exp(-design @ beta))
        beta += np.linalg.solve(design.T @ (design * (p * (1 - p))[:, None]), design.T @ (labels - p))
    np.testing.assert_allclose(fit.tensors["intercept"], beta[:1], atol=1e-8)
    np.testing.assert_allclose(fit.tensors["coef"], beta[1:], atol=1e-8)
    assert fit.training["odds_ratios"]["prior_lines_ge2"] == pytest.approx(np.exp(beta[1]))
    assert fit.training["odds_ratios"]["prior_lines_ge2"] < 1  # the signal tiny_cohort puts in
    ci = sm.Logit(labels, design).fit(disp=False).conf_int()[1]
    assert fit.training["odds_ratio_ci95"]["prior_lines_ge2"] == pytest.approx(np.exp(ci))


def test_fit_clinical_refuses_a_constant_fact_and_perfect_separation():
    _, clinical, labels = tiny_cohort(n=60, seed=5)
    constant = clinical.copy()
    constant[:, 3] = 1
    with pytest.raises(InputError, match="'tnbc' is the same for all 60"):
        fit_clinical(constant, labels)
    separated = clinical.copy()
    separated[:, 0] = 1 - labels
    with pytest.raises(InputError, match="no finite estimate"):
        fit_clinical(separated, labels)


def test_feature_selection_drops_constant_nonfinite_and_correlated_features():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(30), np.zeros(30)].astype(int)
    names = [f"f{i}" for i in range(8)]
    values = rng.normal(size=(60, 8))
    values[:, 0] += 2 * labels  # strongest
    values[:, 1] = 3 * values[:, 0] + 1  # same ranks as f0: must be skipped
    values[:, 2] += 1 * labels  # second
    values[:, 3] = 7.0  # constant
    values[:, 4] = np.where(np.arange(60) < 57, 0.0, 1.0)  # 95% one value: near-constant
    values[5, 5] = np.nan
    values[:, 6] -= 0.8 * labels  # third, protective direction
    result = fit_preprocessing(values, labels, names, "largest", SelectionSettings(top_k=3, max_correlation=0.8))
    assert result.selected == ("f0", "f2", "f6")
    assert result.aggregation == "largest"
    np.testing.assert_allclose(result.means, values[:, [0, 2, 6]].mean(axis=0))
    np.testing.assert_allclose(result.sds, values[:, [0, 2, 6]].std(axis=0))
    record = result.selection
    assert (record.n_candidates, record.n_nonfinite, record.n_near_constant, record.n_correlated_skipped) == (8, 1, 2, 1)
    assert record.univariate_auc[2] < 0.5  # kept although its AUC is below one half
    for column, auc in zip((0, 2, 6), record.univariate_auc):
        assert auc == pytest.approx(delong_auc(values[:, column], labels).auc)
    with pytest.raises(InputError, match="Aggregation 'max' is unknown"):
        fit_preprocessing(values, labels, names, "max")


def test_univariate_auc_counts_ties_as_half():
    values = np.array([[1.0], [1.0], [2.0], [0.0]])
    assert univariate_auc(values, np.array([1, 0, 1, 0]))[0] == pytest.approx(delong_auc(values[:, 0], [1, 0, 1, 0]).auc)


def test_fit_mlp_is_reproducible_and_leaves_the_global_random_state_alone():
    radiomics, _, labels = tiny_cohort(seed=1)
    short = replace(FAST, max_epochs=40)
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    first = fit_mlp("radiomics", radiomics, labels, settings=short)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    second = fit_mlp("radiomics", radiomics, labels, settings=short)
    for name in first.tensors:
        np.testing.assert_array_equal(first.tensors[name], second.tensors[name])
    other = fit_mlp("radiomics", radiomics, labels, settings=replace(short, seed=1))
    assert not np.array_equal(first.tensors["hidden1.weight"], other.tensors["hidden1.weight"])


def test_fit_mlp_finds_the_signal_and_stops_early():
    radiomics, clinical, labels = tiny_cohort(n=150, seed=2)
    fit = fit_mlp("combined", radiomics, labels, clinical=clinical, settings=FAST)
    names = feature_names()
    assert {names[i] for i in INFORMATIVE} <= set(fit.preprocessing.selected)
    record = fit.validation[0]
    assert record.cohort == "inner validation split" and record.n == 30 and record.auc > 0.8
    assert fit.training["best_epoch"] < fit.training["epochs_run"] <= FAST.max_epochs
    assert fit.training["epochs_run"] - fit.training["best_epoch"] == FAST.patience or \
        fit.training["epochs_run"] == FAST.max_epochs
    assert fit.training["n_inner_train"] + fit.training["n_inner_validation"] == 150


def test_fit_mlp_refuses_missing_clinical_facts_for_the_combined_model():
    radiomics, _, labels = tiny_cohort(n=40)
    with pytest.raises(InputError, match="clinical matrix"):
        fit_mlp("combined", radiomics, labels, settings=FAST)
    with pytest.raises(InputError, match="0 \\(SD/PD\\) or 1"):
        fit_mlp("radiomics", radiomics, labels + 1, settings=FAST)


def test_prediction_imports_and_scores_without_torch(tmp_path):
    path = tiny_bundle(tmp_path / "combined", "combined")
    radiomics, clinical, _ = tiny_cohort(n=3, seed=9)
    expected = load_bundle(path).model().score(radiomics, clinical)
    np.save(tmp_path / "radiomics.npy", radiomics)
    np.save(tmp_path / "clinical.npy", clinical)
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys
        import numpy as np

        class NoTorch(importlib.abc.MetaPathFinder):  # as if torch were not installed
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError("No module named 'torch'")

        sys.meta_path.insert(0, NoTorch())
        import abcir.prediction.predict, abcir.commands.predict, abcir.cli
        abcir.cli.build_parser()
        from abcir.models.bundle import load_bundle
        model = load_bundle({str(path)!r}).model()
        scores = model.score(np.load({str(tmp_path / 'radiomics.npy')!r}), np.load({str(tmp_path / 'clinical.npy')!r}))
        print(json.dumps({{"scores": scores.tolist(), "torch": [m for m in sys.modules if m.startswith("torch")]}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["torch"] == []
    np.testing.assert_allclose(output["scores"], expected, atol=1e-12)
