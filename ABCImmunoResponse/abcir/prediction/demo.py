"""``abcir demo``: the whole path on one generated patient, with the bundled weights.

Makes an example patient (phantom CT + three target lesions), checks RECIST,
extracts the features once, predicts with all three bundled models, and writes
a small report folder: the predictions as JSON, the features CSV, and an HTML
page with a slice through each lesion.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure

from ..cohort.generator import make_example_patient
from ..errors import InputError
from ..features.extract import ProgressCallback, extract_lesions
from ..features.table import write_features_csv
from ..files import check_writable_folder
from ..imaging.ct import read_ct
from ..models import MODEL_KINDS
from ..patient.lesions import Lesion, load_lesions
from ..patient.recist import validate_targets
from ..records import write_new_json
from .result import CTIdentity, Prediction
from .predict import predict_features


@dataclass
class DemoResult:
    """What the demo made."""

    folder: Path
    predictions: dict[str, Prediction]
    report: Path


def _lesion_figure(ct: sitk.Image, lesions: list[Lesion], path: Path) -> None:
    """One axial slice through the centre of each lesion, outlined, at a soft-tissue window (W400/L40 HU)."""
    volume = sitk.GetArrayViewFromImage(ct)
    figure = Figure(figsize=(4.2 * len(lesions), 4.6))
    for index, lesion in enumerate(lesions):
        mask = sitk.GetArrayViewFromImage(lesion.mask)
        z = int(np.round(np.nonzero(mask)[0].mean()))
        axis = figure.add_subplot(1, len(lesions), index + 1)
        spacing = ct.GetSpacing()
        rows, cols = np.arange(volume.shape[1]) * spacing[1], np.arange(volume.shape[2]) * spacing[0]
        extent = (-spacing[0] / 2, cols[-1] + spacing[0] / 2, rows[-1] + spacing[1] / 2, -spacing[1] / 2)
        axis.imshow(volume[z], cmap="gray", vmin=-160, vmax=240, extent=extent)
        axis.contour(cols, rows, mask[z], levels=[0.5], colors="orange", linewidths=1.2)
        axis.set_title(f"{lesion.lesion_id} ({lesion.site}): {lesion.longest_axial_diameter_mm:.0f} mm", fontsize=11)
        axis.set_xlabel("mm")
        axis.set_ylabel("mm")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def _report(folder: Path, predictions: dict[str, Prediction], figure: str) -> Path:
    rows = "".join(
        f"<tr><td>{kind}</td><td>{p.probability:.3f}</td><td>{p.score:.3f}</td><td>{p.risk_group or 'n/a'}</td>"
        f"<td>{'n/a' if p.cutoff is None else f'{p.cutoff:.3f}'}</td><td>{html.escape(p.provenance)}</td></tr>"
        for kind, p in predictions.items())
    warnings = sorted({warning for p in predictions.values() for warning in p.warnings})
    first = next(iter(predictions.values()))
    lesions = "".join(f"<tr><td>{html.escape(l.lesion_id)}</td><td>{l.site}</td><td>{l.volume_mm3 / 1000:.2f}</td>"
                      f"<td>{l.longest_axial_diameter_mm:.1f}</td><td>{l.short_axis_mm:.1f}</td></tr>"
                      for l in first.lesions)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>abcir demo</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}td,th{{border:1px solid #bbb;padding:4px 8px}}
table{{border-collapse:collapse}}.warn{{background:#fff3cd;padding:8px;border:1px solid #e0c060}}</style></head><body>
<h1>abcir demo: one generated patient</h1>
<p class="warn"><b>Synthetic example, demonstration weights.</b> The patient is a phantom made by
<code>abcir make-cohort</code>'s generator and the weights were trained on generated data: the numbers show how the
software works and mean nothing about any patient. Not clinically validated.</p>
<h2>Predictions</h2><table><tr><th>model</th><th>probability of response</th><th>score (log-odds)</th>
<th>risk group</th><th>cut-off</th><th>weights</th></tr>{rows}</table>
<h2>Warnings</h2><ul>{''.join(f'<li>{html.escape(w)}</li>' for w in warnings) or '<li>none</li>'}</ul>
<h2>Target lesions</h2><table><tr><th>lesion</th><th>site</th><th>volume (mL)</th>
<th>longest axial diameter (mm)</th><th>short axis (mm)</th></tr>{lesions}</table>
<p><img src="{figure}" alt="axial slices through the target lesions" style="max-width:100%"></p>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def run_demo(folder: str | os.PathLike, seed: int = 0, jobs: int = 1,
             progress: ProgressCallback | None = None) -> DemoResult:
    """Make the example patient in ``folder`` (new or empty) and predict with the three bundled models.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder that does not exist or is empty. It receives ``example/`` (the
        generated CT and segmentation), ``result_<model>.json`` per model,
        ``features.csv`` (with its provenance sidecar), ``lesions.png`` and ``report.html``.
    seed : int, default 0
        Seed of the generated patient; the same seed gives the same patient.
    jobs : int, default 1
        Processes for the feature extraction.
    progress : callable, optional
        Called as ``progress(lesions done, number of lesions, lesion id)`` during extraction.

    Returns
    -------
    DemoResult
        The folder, the prediction per model kind (clinical, radiomics, combined)
        and the path of ``report.html``.

    Raises
    ------
    InputError
        ``folder`` is not empty, is a file or cannot be written, or the generated patient breaks RECIST 1.1.
    BundleError
        The bundled weights of a model are missing or fail verification.
    """
    folder = check_writable_folder(folder, "Demo folder")
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"Demo folder '{folder}' is not empty; choose a new one (nothing is overwritten).")
    example = make_example_patient(folder / "example", seed)
    ct = read_ct(example.ct)
    lesions = load_lesions([example.lesions], ct)
    errors = [finding.message for finding in validate_targets(lesions) if finding.severity == "error"]
    if errors:
        raise InputError("Demo patient breaks RECIST: " + " ".join(errors))
    rows = extract_lesions(ct, lesions, example.patient.patient_id, jobs=jobs, progress=progress)
    identity = CTIdentity.from_image(ct)
    predictions = {kind: predict_features(rows, example.patient.clinical, model=kind, ct=identity)
                   for kind in MODEL_KINDS}
    for kind, prediction in predictions.items():
        write_new_json(folder / f"result_{kind}.json", prediction.to_dict())
    write_features_csv(folder / "features.csv", rows)
    _lesion_figure(ct, lesions, folder / "lesions.png")
    return DemoResult(folder, predictions, _report(folder, predictions, "lesions.png"))
