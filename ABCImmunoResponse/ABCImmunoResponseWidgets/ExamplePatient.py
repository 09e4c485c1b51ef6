"""The generated example patient in Sample Data: made locally once, then loaded like any other sample.

Sample Data loads a source by downloading each of its URIs into its cache
(``SampleDataLogic.downloadFromSource``); scripts calling
``SampleData.downloadSample`` take that path and never see a custom
downloader. So the patient (CT and target lesions, about 3 MB, 0.7 s) is
generated into Slicer's cache folder and offered as ``file://`` URIs: the
button and scripts load the same two files. The button's downloader also
fills the panel (CT, lesions and the two clinical facts the record holds).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import slicer
from slicer.i18n import tr as _

from abcir.resources import resources_dir
from ABCImmunoResponseLib.dependencies import radiomicsAvailable, unmetRequirements
from ABCImmunoResponseLib.parameters import MODULE_NAME

EXAMPLE_SEED = 0
SAMPLE_NAME = "ABCImmunoResponseExamplePatient"
FILE_NAMES = ("SYN-EXAMPLE.nrrd", "SYN-EXAMPLE.seg.nrrd")  # as abcir.cohort.make_example_patient names them
NODE_NAMES = ("SYN-EXAMPLE", "SYN-EXAMPLE lesions")


def exampleFolder() -> Path:
    return Path(slicer.app.cachePath) / MODULE_NAME / f"example-seed{EXAMPLE_SEED}"


def ensureExampleFiles() -> Path:
    """Generate the example patient's files unless both are there (written whole, then moved in place)."""
    folder = exampleFolder()
    if all((folder / name).is_file() for name in FILE_NAMES):
        return folder
    from abcir.cohort import make_example_patient

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="example-", dir=folder.parent))
    try:
        make_example_patient(scratch, EXAMPLE_SEED)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def registerSampleData() -> None:
    """Offer the example patient in Sample Data (its files are generated now if the packages are there).

    With the files there, their SHA-256 go with the source, so Sample Data
    replaces a copy in its own cache that an older version generated.
    """
    import SampleData

    from abcir.imaging.ct import file_sha256

    if not unmetRequirements() and radiomicsAvailable():
        try:
            ensureExampleFiles()
        except Exception as error:  # never stop Slicer's start-up: the button makes them again
            logging.warning("ABCImmunoResponse: the example patient could not be generated now: %s", error)
    folder = exampleFolder()
    files = [folder / name for name in FILE_NAMES]
    checksums = [f"SHA256:{file_sha256(path)}" for path in files] if all(path.is_file() for path in files) \
        else None
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):  # Slicer 5.12+: a translated title
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(MODULE_NAME, title=_("ABC Immuno Response"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=MODULE_NAME, sampleName=SAMPLE_NAME,
        thumbnailFileName=str(resources_dir() / "Icons" / f"{MODULE_NAME}.png"),
        uris=[path.as_uri() for path in files], fileNames=list(FILE_NAMES), nodeNames=list(NODE_NAMES),
        loadFileTypes=["VolumeFile", "SegmentationFile"], checksums=checksums,
        customDownloader=lambda source: loadExamplePatient(source))


def loadExamplePatient(source=None):
    """Load the example patient (generating it if needed) and open the panel on it; returns (CT, lesions).

    None when the user declines installing what the example needs. Any other failure is shown in a
    message box and raised again (``tryWithErrorDisplay`` does both), so the Python console keeps
    its traceback.
    """
    import SampleData

    from .Dependencies import ensurePredictionDependencies

    if not ensurePredictionDependencies():
        return None
    with slicer.util.tryWithErrorDisplay(_("The example patient could not be made."), waitCursor=True):
        ensureExampleFiles()
        logic = SampleData.SampleDataLogic()
        ctVolume, segmentation = logic.downloadFromSource(source or logic.sourceForSampleName(SAMPLE_NAME))
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(ctVolume)
        moduleLogic = slicer.util.getModuleLogic(MODULE_NAME)
        moduleLogic.setExampleCase(ctVolume, segmentation)
        if slicer.util.mainWindow():
            slicer.util.selectModule(MODULE_NAME)
        return ctVolume, segmentation
