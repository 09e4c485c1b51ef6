"""One call from files to features: read the CT, load the lesions, extract, for one patient."""

from __future__ import annotations

import os
from typing import Sequence

from .feature_cache import FeatureCache
from .features import LesionFeatures, ProgressCallback, extract_lesions
from .imaging import read_ct
from .lesions import load_lesions
from .patient_ids import default_patient_id


def extract_patient(ct_path: str | os.PathLike, lesion_paths: Sequence[str | os.PathLike],
                    patient_id: str | None = None, sites_csv: str | os.PathLike | None = None,
                    jobs: int = 1, progress: ProgressCallback | None = None,
                    series_uid: str | None = None, cache: FeatureCache | None = None) -> list[LesionFeatures]:
    """Features of every lesion of one patient, from a CT path and lesion file(s).

    The patient id defaults to the DICOM series' PatientID, or the CT file's name
    (``patient_ids.default_patient_id``).
    """
    ct = read_ct(ct_path, series_uid=series_uid)
    lesions = load_lesions(lesion_paths, ct, sites_csv)
    patient = patient_id or default_patient_id(ct_path, ct)
    return extract_lesions(ct, lesions, patient, jobs=jobs, progress=progress, cache=cache)
