"""The model card: what a training run produced, on what data, and how well it did, in Markdown.

Written next to the bundles so that whoever loads them can read what they are.
Every number comes from the saved, verified bundles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..models.bundle import load_bundle
from .settings import TrainingSettings

NOT_VALIDATED = ("**Not clinically validated.** These weights have not been validated on patients for clinical use; "
                 "their probabilities must not inform treatment.")
SYNTHETIC = ("**Trained on generated data.** The training cohort is synthetic (`abcir make-cohort`): phantom CTs "
             "whose lesion texture and response follow a documented model, not patients. The numbers below "
             "describe that model, not breast cancer.")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def write_model_card(out: Path, table: pd.DataFrame, train: np.ndarray, bundles: dict[str, Path],
                     settings: TrainingSettings) -> Path:
    """Write ``out/MODEL_CARD.md`` for the bundles of one training run.

    Parameters
    ----------
    out : Path
        The training run's output folder (must exist); an earlier card there is replaced.
    table : pd.DataFrame
        The training cohort, one row per patient: ``response`` (1 = CR/PR, 0 = SD/PD), optional ``split`` and
        ``center``.
    train : np.ndarray
        Boolean, one per row of ``table``: True = training.
    bundles : dict of str to Path
        The saved bundle folder of each model kind; their manifests give every number on the card.
    settings : TrainingSettings
        The run's settings (site, source, aggregation, seed, command).

    Returns
    -------
    Path
        The card written, ``out/MODEL_CARD.md``.

    Raises
    ------
    BundleError
        When a bundle fails its checks on loading.
    """
    labels = table["response"].to_numpy()
    lines = [f"# Model card: {settings.site}", ""]
    if settings.source == "synthetic":
        lines += [SYNTHETIC, ""]
    lines += [NOT_VALIDATED, "", "## Data", "",
              "| part | patients | responders (CR/PR) | non-responders (SD/PD) |", "|---|---|---|---|"]
    for name, part in (("training", train), ("validation", ~train)):
        lines.append(f"| {name} | {int(part.sum())} | {int(labels[part].sum())} | {int((labels[part] == 0).sum())} |")
    if "center" in table:
        counts = table.assign(part=np.where(train, "training", "validation")).groupby(["center", "part"]).size()
        lines += ["", "Patients per centre and part: " + "; ".join(f"{c} {p} {n}" for (c, p), n in counts.items())]
    lines += ["", "Label: CR/PR vs SD/PD by RECIST 1.1. Split: "
              + ("the cohort's `split` column." if "split" in table else
                 "the paper's design (largest centre halved at random, stratified by response; the next centre "
                 "trains, the others validate)." if "center" in table else "stratified random 70/30."),
              "", f"Aggregation of lesions into one patient vector: `{settings.aggregation}`. Seed: {settings.seed}.",
              f"Command: `{settings.command}`" if settings.command else "",
              "", "## Performance on the validation part", "",
              "| model | AUC (95% CI, DeLong) | SEN | SPE | ACC | PPV | NPV | risk cut-off (score) |",
              "|---|---|---|---|---|---|---|---|"]
    for kind, path in bundles.items():
        manifest = load_bundle(path).manifest
        record = manifest.validation[-1]
        ci = f" ({_fmt(record.auc_ci[0])}-{_fmt(record.auc_ci[1])})" if record.auc_ci else ""
        metrics = " | ".join(_fmt(record.metrics.get(name)) for name in ("sensitivity", "specificity", "accuracy",
                                                                            "ppv", "npv"))
        cutoff = _fmt(manifest.cutoff.value) if manifest.cutoff.value is not None else f"unset ({manifest.cutoff.note})"
        lines.append(f"| {kind} | {_fmt(record.auc)}{ci} | {metrics} | {cutoff} |")
    lines += ["", "Predicted responder: probability >= 0.5. High risk: score <= cut-off, chosen on the training "
              "part by the maximally selected log-rank statistic on PFS.", "", "## Models", ""]
    for kind, path in bundles.items():
        manifest = load_bundle(path).manifest
        lines.append(f"- **{kind}** (`{path.name}/`, weights SHA-256 `{manifest.files['weights.safetensors']}`): "
                     f"{manifest.training.get('method', '')}")
        if kind == "clinical":
            ors = manifest.training["odds_ratios"]
            cis = manifest.training["odds_ratio_ci95"]
            lines += [f"  - OR {name}: {_fmt(ors[name], 2)} (95% CI {_fmt(cis[name][0], 2)}-{_fmt(cis[name][1], 2)})"
                      for name in ors]
        else:
            architecture = manifest.architecture
            lines.append(f"  - inputs {architecture.n_inputs} selected features, hidden layers "
                         f"{architecture.hidden_sizes}, clinical inputs {architecture.n_clinical} at layer 4")
    lines += ["", "Re-evaluate with `abcir evaluate predictions.csv --out DIR` (rows with split=validation), "
              "or on another cohort with `abcir batch` then `abcir evaluate`.", ""]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
