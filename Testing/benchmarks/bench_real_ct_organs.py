"""Per-lesion extraction on the real 20-slice CT in ../shared/data: abcir against stock pyradiomics.

Organs of lesion size (and the large spleen and liver) stand in for target
lesions. Both run in this process, one lesion at a time, one worker; the values
are compared for identity and the wall times printed with their ratio.

    python Testing/benchmarks/bench_real_ct_organs.py [SHARED_DATA_FOLDER]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import radiomics
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from abcir.features.extract import extract_lesions
from abcir.features.catalogue import feature_names
from abcir.imaging.ct import read_ct
from abcir.patient.lesions import Lesion, align_to_ct
from abcir.patient.measurements import measure_lesion
from abcir.resources import parameter_file

ORGANS = ((7, "pancreas"), (8, "adrenal"), (20, "colon"), (1, "spleen"), (5, "liver"))


def main(shared: Path) -> None:
    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("abcir").setLevel(logging.ERROR)
    ct = read_ct(shared / "ct_dicom_example" / "dicom")
    labels = sitk.ReadImage(str(shared / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    stock = RadiomicsFeatureExtractor(str(parameter_file()))
    print(f"{'organ':9s} {'voxels':>7s} {'stock s':>8s} {'abcir s':>8s} {'ratio':>6s} identical")
    for label, name in ORGANS:
        mask = align_to_ct(name, sitk.Cast(labels == label, sitk.sitkUInt8), ct)
        lesion = Lesion(name, "other", mask, measure_lesion(mask))
        start = time.perf_counter()
        result = stock.execute(ct, mask)
        stock_s = time.perf_counter() - start
        reference = np.array([float(result[feature]) for feature in feature_names()])
        start = time.perf_counter()
        ours = extract_lesions(ct, [lesion], "P", jobs=1)[0].values
        ours_s = time.perf_counter() - start
        identical = np.array_equal(reference, ours, equal_nan=True)
        print(f"{name:9s} {lesion.size.voxel_count:7d} {stock_s:8.2f} {ours_s:8.2f} {ours_s / stock_s:6.3f} {identical}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data")
