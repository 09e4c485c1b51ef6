"""What the panel keeps in its parameter node, readable without Slicer's GUI.

The Slicer module declares these fields with ``@parameterNodeWrapper`` (which
needs Qt); the headless entry reads the same node from a saved scene here, so
the names, the allowed values and their encoding (Slicer's serializers: text
as is, booleans as "True"/"False", nodes as references) are defined once, in
this module. Clinical values are the words ``abcir.clinical.parse_clinical``
reads; "" means the reader has not entered the fact yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from abcir.clinical import ClinicalFacts, parse_clinical
from abcir.errors import InputError

MODULE_NAME = "ABCImmunoResponse"
DEFAULT_MODEL = "combined"

PRIOR_LINES_CHOICES = ("", "1", "2+")
METASTATIC_SITES_CHOICES = ("", "1-2", "3+")
YES_NO_CHOICES = ("", "no", "yes")


@dataclass
class CaseParameters:
    """The panel's state: inputs, clinical facts as entered, model choice and the last result."""

    ctVolume: object = None
    segmentation: object = None
    priorLines: str = ""
    metastaticSites: str = ""
    visceral: str = ""
    tnbc: str = ""
    metastaticSitesPrefilled: bool = False
    visceralPrefilled: bool = False
    model: str = DEFAULT_MODEL
    bundlePath: str = ""  # a site's weight bundle folder; "" = the bundled weights of the model
    resultTable: object = None  # the last result; the prediction's JSON is in its RESULT_ATTRIBUTE


def findParameterNode(scene):
    """The module's parameter node in a scene (as Slicer's ScriptedLoadableModuleLogic finds it), or None."""
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    if node is not None:
        return node
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
        candidate = scene.GetNthNodeByClass(index, "vtkMRMLScriptedModuleNode")
        if candidate.GetAttribute("ModuleName") == MODULE_NAME:
            return candidate
    return None


def getOrCreateParameterNode(scene):
    """The module's parameter node, created as Slicer's ScriptedLoadableModuleLogic creates one if there is none."""
    node = findParameterNode(scene)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", scene.GenerateUniqueName(MODULE_NAME))
        node.SetSingletonTag(MODULE_NAME)
        node.SetAttribute("ModuleName", MODULE_NAME)
    elif node.GetAttribute("ModuleName") != MODULE_NAME:  # removed by a scene close, as Slicer restores it
        node.SetAttribute("ModuleName", MODULE_NAME)
    return node


def readCaseParameters(parameterNode) -> CaseParameters:
    """The values a ``@parameterNodeWrapper`` node holds, decoded as Slicer's serializers write them."""
    parameters = CaseParameters()
    for name, default in vars(CaseParameters()).items():
        if not parameterNode.HasParameter(name):
            continue
        if name in ("ctVolume", "segmentation", "resultTable"):
            value = parameterNode.GetNodeReference(name)
        elif isinstance(default, bool):
            value = parameterNode.GetParameter(name) == "True"
        else:
            value = parameterNode.GetParameter(name)
        setattr(parameters, name, value)
    return parameters


def clinicalFacts(parameters: CaseParameters) -> ClinicalFacts:
    """The four facts for the models; refuses missing facts and pre-filled ones the reader has not confirmed."""
    entered = {"lines": parameters.priorLines, "sites": parameters.metastaticSites,
               "visceral": parameters.visceral, "tnbc": parameters.tnbc}
    labels = {"lines": "prior lines of therapy", "sites": "number of metastatic sites",
              "visceral": "visceral metastasis", "tnbc": "triple-negative subtype"}
    missing = [labels[key] for key, value in entered.items() if not value]
    if missing:
        raise InputError(f"Clinical facts: {', '.join(missing)} not entered; the models need all four. "
                         "Enter them under 'Clinical facts'.")
    unconfirmed = [labels[key] for key, flag in (("sites", parameters.metastaticSitesPrefilled),
                                                 ("visceral", parameters.visceralPrefilled)) if flag]
    if unconfirmed:
        raise InputError(f"Clinical facts: {', '.join(unconfirmed)} pre-filled from the target lesions only; "
                         "non-target metastases may change them. Check them and press 'Confirm'.")
    return parse_clinical([f"{key}={value}" for key, value in entered.items()])


def writeNodeReference(parameterNode, name: str, node) -> None:
    """Set a node parameter as ``@parameterNodeWrapper`` stores it (a marker parameter plus the reference)."""
    parameterNode.SetParameter(name, "")
    parameterNode.SetNodeReferenceID(name, node.GetID() if node is not None else None)
