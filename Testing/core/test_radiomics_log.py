"""pyradiomics' logger is quiet only while abcir extracts, and has its own level again afterwards."""

from __future__ import annotations

import logging

import pytest
import radiomics
import SimpleITK as sitk
from abcir.features.engine_check import CT_FILE, MASK_FILE, reference_dir
from abcir.errors import InputError
from abcir.features.extract import extract_lesions
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion
from abcir.features.radiomics_log import QUIET_LEVEL, quiet_radiomics
from abcir.resources import parameter_file
from radiomics.featureextractor import RadiomicsFeatureExtractor


class Records(logging.Handler):
    """Keeps every record that reaches it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def radiomics_logger():
    """The ``radiomics`` logger with a recording handler; level and handlers as they were afterwards."""
    logger = logging.getLogger("radiomics")
    level, handler_level = logger.level, radiomics.handler.level
    records = Records()
    logger.addHandler(records)
    yield logger, records
    logger.removeHandler(records)
    logger.setLevel(level)
    assert radiomics.handler.level == handler_level  # pyradiomics' stderr handler is never touched


@pytest.fixture(scope="module")
def lesion() -> tuple[sitk.Image, list[Lesion]]:
    ct = sitk.ReadImage(str(reference_dir() / CT_FILE))
    mask = sitk.ReadImage(str(reference_dir() / MASK_FILE))
    return ct, [Lesion("L1", "liver", mask, measure_lesion(mask))]


@pytest.mark.parametrize("level", [logging.NOTSET, logging.DEBUG, logging.INFO, logging.CRITICAL])
@pytest.mark.parametrize("backend", ["thread", None])
def test_extraction_leaves_the_level_as_it_was(radiomics_logger, lesion, level, backend):
    logger, records = radiomics_logger
    logger.setLevel(level)
    ct, lesions = lesion
    extract_lesions(ct, lesions, "P", jobs=2 if backend else 1, backend=backend or "process")
    assert logger.level == level
    assert not [record for record in records.records if record.levelno < QUIET_LEVEL]


def test_stock_pyradiomics_logs_outside_abcir(radiomics_logger, lesion):
    """What the quiet period hides: the same extraction outside abcir logs every step at INFO."""
    logger, records = radiomics_logger
    logger.setLevel(logging.INFO)
    ct, lesions = lesion
    RadiomicsFeatureExtractor(str(parameter_file())).execute(ct, lesions[0].mask)
    assert sum(record.levelno == logging.INFO for record in records.records) > 100


def test_level_is_restored_after_an_error(radiomics_logger, lesion):
    logger, _ = radiomics_logger
    logger.setLevel(logging.DEBUG)
    ct, _ = lesion
    line = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    line.CopyInformation(ct)
    line[10, 10, 5] = 1
    with pytest.raises(InputError, match="pyradiomics refused it"):
        extract_lesions(ct, [Lesion("dot", "liver", line, measure_lesion(line))], "P")
    assert logger.level == logging.DEBUG


def test_overlapping_quiet_periods_restore_once_the_last_ends(radiomics_logger):
    logger, _ = radiomics_logger
    logger.setLevel(logging.INFO)
    first, second = quiet_radiomics(), quiet_radiomics()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # threads need not finish in the order they started
    assert logger.level == QUIET_LEVEL
    second.__exit__(None, None, None)
    assert logger.level == logging.INFO
