"""Stock pyradiomics features of one CT and label map, to check that two builds agree bit for bit.

pyradiomics 3.0.1 is built from source on each Python (see sitecustomize.py beside this file), so
the Python 3.12 build, with the numpy and PyWavelets that 3.12 gets, is compared with the 3.11 one
on the same files with the paper's settings (Resources/Parameters/abcir_paper.yaml):

    VENV/bin/python tools/pyradiomics-build/stock_features.py extract CT LABELS OUT.json
    python tools/pyradiomics-build/stock_features.py compare A.json B.json

``extract`` writes every feature of every label in LABELS with ``repr`` (which round-trips a float
exactly), leaving out pyradiomics' diagnostics (versions, timings); ``compare`` lists the features
whose values differ and exits 1 if any does. Only stock pyradiomics, SimpleITK and the standard
library are used, so abcir's own code cannot hide or cause a difference.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib import metadata
from pathlib import Path

PARAMETERS = Path(__file__).resolve().parents[2] / "Resources" / "Parameters" / "abcir_paper.yaml"


def _exact(value) -> str:
    """``repr`` of the value as a float; numpy 2.5's ``linalg.eigvals`` makes glcm MCC complex (with a zero
    imaginary part), so a complex value is written as its real part only when that part is zero."""
    number = complex(value)
    return repr(number.real) if number.imag == 0 else repr(number)


def extract(ct: Path, labels: Path, out: Path) -> None:
    import numpy as np
    import radiomics
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    image, label_map = sitk.ReadImage(str(ct)), sitk.ReadImage(str(labels))
    extractor = RadiomicsFeatureExtractor(str(PARAMETERS))
    values = {}
    for label in sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(label_map)) if v != 0):
        result = extractor.execute(image, label_map, label=label)
        values[str(label)] = {name: _exact(value) for name, value in result.items()
                              if not name.startswith("diagnostics_")}
    versions = {"python": sys.version.split()[0], "pyradiomics": radiomics.__version__}
    versions.update({name: metadata.version(name) for name in ("numpy", "SimpleITK", "PyWavelets")})
    out.write_text(json.dumps({"versions": versions, "features": values}, indent=1, sort_keys=True))
    print(f"{sum(map(len, values.values()))} values of {len(values)} labels written to {out} ({versions})")


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    print(f"{a}: {left['versions']}\n{b}: {right['versions']}")
    if left["features"].keys() != right["features"].keys():
        print(f"different labels: {sorted(left['features'])} vs {sorted(right['features'])}")
        return 1
    differing, count = [], 0
    for label, features in left["features"].items():
        other = right["features"][label]
        if features.keys() != other.keys():
            print(f"label {label}: different feature names")
            return 1
        for name, value in features.items():
            count += 1
            if value != other[name]:
                x, y = float(value), float(other[name])
                differing.append((abs(x - y) / max(abs(x), abs(y), 1e-300), label, name, value, other[name]))
    for relative, label, name, x, y in sorted(differing, reverse=True)[:20]:
        print(f"  label {label} {name}: {x} vs {y} (relative {relative:.2e})")
    print(f"{count - len(differing)} of {count} values identical, {len(differing)} differ")
    return 1 if differing else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "extract":
        extract(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
