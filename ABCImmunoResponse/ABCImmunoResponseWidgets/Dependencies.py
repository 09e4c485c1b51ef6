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
    requirements = [item.requirement for item in unmet]
    packaging = _slicerPackaging()
    try:
        if packaging is not None:  # consent, progress and the restart prompt in one call
            packaging.pip_ensure(requirements, requester=MODULE_NAME)
        else:
            if not slicer.util.confirmOkCancelDisplay(
                    _("The prediction needs Python packages that are missing or too old in this Slicer. "
                      "Install them now into Slicer's Python?"),
                    detailedText="\n".join(item.describe() for item in unmet)):
                return False
            with slicer.util.WaitCursor():
                slicer.util.pip_install(requirements)
            if any(item.installed is not None for item in unmet):
                slicer.util.infoDisplay(_("Packages that Slicer had already loaded were upgraded. Restart Slicer "
                                          "before predicting."))
                return False
    except RuntimeError:  # pip_ensure: the user declined
        return False
    except subprocess.CalledProcessError as error:
        slicer.util.errorDisplay(_("Installing the Python packages failed (pip exit code {code}); check the "
                                   "network and try again, or install them from the Python console.").format(
            code=error.returncode), detailedText=str(error.output or error))
        return False
    remaining = unmetRequirements()
    if remaining:
        slicer.util.errorDisplay(_("These Python packages are still missing or too old:") + "\n"
                                 + "\n".join(item.describe() for item in remaining))
        return False
    return True
