"""The features CSV, written without pandas: the bytes pandas wrote, every double back bit for bit.

``abcir extract`` writes its table with the ``csv`` module (importing pandas
took a tenth of the whole command); the file must stay what
``DataFrame.to_csv(index=False, float_format="%.17g")`` wrote before, and a
whole ``abcir extract`` process must neither import pandas nor lose output when
it exits without the garbage collector's last passes.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from abcir.errors import InputError
from abcir.features.table import LESION_COLUMNS, features_frame, read_features_csv, write_features_csv
from abcir.paper import N_FEATURES
from abcir.features.catalogue import LesionFeatures, Provenance, feature_names
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import LesionSize, measure_lesion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synthetic_ct import add_lesion, synthetic_ct  # noqa: E402

PROVENANCE = Provenance("3.0.1", "p" * 64, "c" * 64, "m" * 64, (0.7, 0.7, 1.25), (1.0, 1.0, 1.0))
MASK = sitk.Image(2, 2, 2, sitk.sitkUInt8)
# Bad cases for a hand-written CSV: a value pyradiomics failed on (NaN), infinities, a negative zero, the
# smallest subnormal, the largest double, and doubles that need all 17 digits.
SPECIAL = (np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo(float).max, 0.1, 1 / 3, 2.0, -1e-300)
SCRIPT = """
import json, sys
from abcir.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "pandas": "pandas" in sys.modules}))
"""


def rows() -> list[LesionFeatures]:
    values = np.random.default_rng(1).normal(size=(3, N_FEATURES)) * 10.0 ** np.arange(-12, 12, 24 / N_FEATURES)
    values[0, :len(SPECIAL)] = SPECIAL
    lesions = [
        Lesion('liver, "segment 2"', "liver", MASK, LesionSize(1042, 1042 * 0.6125, 12.345678901234567, 7.5),
               "segment tag"),
        Lesion("Läsion ñ", None, MASK, LesionSize(1, 0.1, 0.0, 0.0)),
        Lesion("bone_1", "bone", MASK, LesionSize(35186, 35186 * 0.7 * 0.7 * 1.25, 1 / 3, 0.1), "sites file"),
    ]
    return [LesionFeatures(f"patient {index}", lesion, values[index], PROVENANCE)
            for index, lesion in enumerate(lesions)]


def test_the_table_is_byte_for_byte_what_pandas_wrote(tmp_path):
    written = write_features_csv(tmp_path / "features.csv", rows())
    features_frame(rows()).to_csv(tmp_path / "pandas.csv", index=False, float_format="%.17g")
    assert written.read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_every_value_reads_back_bit_for_bit(tmp_path):
    table = read_features_csv(write_features_csv(tmp_path / "features.csv", rows()))
    assert list(table.columns) == [*LESION_COLUMNS, *feature_names()]
    values = table[list(feature_names())].to_numpy()
    expected = np.vstack([row.values for row in rows()])
    assert values.view(np.uint64).tolist() == np.where(np.isnan(expected), np.nan, expected).view(np.uint64).tolist()
    assert table["lesion_id"].tolist() == [row.lesion.lesion_id for row in rows()]
    assert table["volume_mm3"].tolist() == [row.lesion.size.volume_mm3 for row in rows()]
    assert pd.isna(table["site"][1]) and table["visceral"].tolist()[0] == 1


def test_a_damaged_table_is_refused_naming_the_cell_or_rows(tmp_path):
    """Text in a feature cell was a traceback in training; a lesion on two rows was counted twice, silently."""
    path = write_features_csv(tmp_path / "features.csv", rows())
    header, *lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    name = feature_names()[5]
    cells = next(csv.reader([lines[2]]))
    cells[len(LESION_COLUMNS) + 5] = "n/a?"
    text_cell = tmp_path / "text_cell.csv"
    text_cell.write_text(header + "".join(lines[:2]) + ",".join(cells) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"column '{name}' must hold numbers .*row 4 \(patient_id patient 2; "
                                         r"values 'n/a\?'\)"):
        read_features_csv(text_cell)
    twice = tmp_path / "twice.csv"
    twice.write_text(header + "".join(lines) + lines[2], encoding="utf-8")
    with pytest.raises(InputError, match=r"a patient's lesion is on more than one row: rows 4, 5 \(patient_id "
                                         r"patient 2, patient 2; values 'bone_1', 'bone_1'\)"):
        read_features_csv(twice)
    for content, message in ((b"", "cannot be read"), (b"\x89PNG\r\n\x1a\n", "not UTF-8 text")):
        other = tmp_path / "other.csv"
        other.write_bytes(content)
        with pytest.raises(InputError, match=f"Features '{other}': {message}"):
            read_features_csv(other)


def test_the_extract_command_imports_no_pandas_and_loses_no_output(tmp_path):
    """A whole process, as a user runs it: exit skips the collector's passes, yet everything is written."""
    ct = synthetic_ct((48, 44, 30), (0.7, 0.7, 1.25), seed=5)
    ct, placed = add_lesion(ct, "L0", (24, 22, 15), 5.0, seed=0)
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(placed.mask, str(tmp_path / "L0.nrrd"))
    out = tmp_path / "features.csv"
    result = subprocess.run([sys.executable, "-c", SCRIPT, "extract", "--ct", str(tmp_path / "ct.nrrd"),
                             "--lesions", str(tmp_path / "L0.nrrd"), "--out", str(out), "--jobs", "1"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    *shown, last = result.stdout.strip().splitlines()
    assert json.loads(last) == {"code": 0, "pandas": False}
    assert shown == [f"1 lesions x {N_FEATURES} features written to {out}"]
    with open(out, newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["lesion_id"] == "L0" and float(row["voxel_count"]) == measure_lesion(placed.mask).voxel_count
    assert all(row[name] != "" for name in feature_names() if "original_shape" in name)
    sidecar = json.loads((tmp_path / "features.provenance.json").read_text(encoding="utf-8"))
    assert [lesion["lesion_id"] for lesion in sidecar["lesions"]] == ["L0"]
