"""Shared pytest fixtures: where the real test images are, and a small synthetic CT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
# The tests import the checkout's abcir and bridge (pyproject's pythonpath); so do the processes they start
# (commands, the panel's child, extraction workers), whatever abcir is installed.
os.environ["PYTHONPATH"] = os.pathsep.join([str(_REPO / "ABCImmunoResponse"),
                                            *filter(None, [os.environ.get("PYTHONPATH")])])
SHARED_DATA = Path(os.environ.get("ABCIR_SHARED_DATA", _REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real CT and pyradiomics test cases), or skip when this checkout has none beside it."""
    if not (SHARED_DATA / "ct_dicom_example" / "dicom").is_dir():
        pytest.skip(f"real test images not found at {SHARED_DATA} (set ABCIR_SHARED_DATA to the shared/data folder)")
    return SHARED_DATA
