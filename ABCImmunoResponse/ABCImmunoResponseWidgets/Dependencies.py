"""Python packages the prediction needs: checked when first needed, installed only with the user's consent."""

from __future__ import annotations

import importlib
import subprocess

import slicer
from slicer.i18n import tr as _

from ABCImmunoResponseLib.dependencies import RADIOMICS_EXTENSION, radiomicsAvailable, unmetRequirements
from ABCImmunoResponseLib.parameters import MODULE_NAME


def _slicerPackaging():
    """``slicer.packaging`` (Slicer 5.12+), imported: it is not an attribute of ``slicer`` until imported."""
    try:
        return importlib.import_module("slicer.packaging")
    except ImportError:
        return None


def _pipInstall(unmet) -> bool:
    """Before Slicer 5.12: ask, install with ``slicer.util.pip_install``, say how it failed; True when installed.

    ``pip_install`` logs pip's output to the Python console line by line and
    raises ``CalledProcessError`` when pip fails, or ``RuntimeError`` when it
    finds no PythonSlicer to run pip with.
    """
    requirements = [item.requirement for item in unmet]
    if not slicer.util.confirmOkCancelDisplay(
            _("The prediction needs Python packages that are missing or too old in this Slicer. "
              "Install them now into Slicer's Python?"),
            detailedText="\n".join(item.describe() for item in unmet)):
        return False
    try:
        with slicer.util.WaitCursor():
            slicer.util.pip_install(requirements)
    except (subprocess.CalledProcessError, RuntimeError) as error:
        slicer.util.errorDisplay(
            _("Installing the Python packages failed ({error}); pip's output is in the Python console. Check "
              "the network and try again, or install them from the Python console:").format(error=error),
            detailedText="\n".join(f"slicer.util.pip_install({requirement!r})" for requirement in requirements))
        return False
    if any(item.installed is not None for item in unmet):
        slicer.util.infoDisplay(_("Packages that Slicer had already loaded were upgraded. Restart Slicer "
                                  "before predicting."))
        return False
    return True


def ensurePredictionDependencies() -> bool:
    """True when everything the prediction imports is present; offers to install what is missing."""
    if not radiomicsAvailable():
        slicer.util.errorDisplay(_(
            "pyradiomics is not available in Slicer. Install the {extension} extension with the Extensions "
            "Manager, restart Slicer and try again.").format(extension=RADIOMICS_EXTENSION))
        return False
    unmet = unmetRequirements()
    if not unmet:
        return True
    packaging = _slicerPackaging()
    if packaging is not None:  # 5.12+: consent, progress, the failure with pip's log and the restart prompt
        try:
            packaging.pip_ensure([item.requirement for item in unmet], requester=MODULE_NAME)
        except RuntimeError:  # the user declined
            return False
        except subprocess.CalledProcessError:  # pip_ensure has shown the failure and pip's log already
            return False
    elif not _pipInstall(unmet):
        return False
    remaining = unmetRequirements()
    if remaining:
        slicer.util.errorDisplay(_("These Python packages are still missing or too old:") + "\n"
                                 + "\n".join(item.describe() for item in remaining))
        return False
    return True
