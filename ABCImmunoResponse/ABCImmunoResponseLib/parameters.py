"""The panel's state, declared once: what the parameter node holds, readable without Slicer's GUI.

``CaseParameters`` is the only declaration of the state. The Slicer module
builds its ``@parameterNodeWrapper`` class from these fields
(``wrapperFields``), and the Logic, the headless entry and the tests read the
same node here, decoded as Slicer's serializers write it (text as is,
booleans as "True"/"False", nodes as references). Clinical values are the
words ``abcir.patient.clinical_facts.parse_clinical`` reads; "" means "not entered yet".
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from abcir.patient.clinical_facts import ClinicalFacts, parse_clinical
from abcir.errors import InputError
from abcir.models import MODEL_KINDS

from .i18n import tr as _

MODULE_NAME = "ABCImmunoResponse"
DEFAULT_MODEL = "combined"

PRIOR_LINES_CHOICES = ("", "1", "2+")
METASTATIC_SITES_CHOICES = ("", "1-2", "3+")
YES_NO_CHOICES = ("", "no", "yes")
# Outline sensitivity (issue 17): "automatic" runs it when its estimated cost is small (``sensitivity.py``).
SENSITIVITY_CHOICES = ("automatic", "on", "off")


def _node(className: str):
    return field(default=None, metadata={"node": className})


def _choice(choices: tuple[str, ...], default: str = ""):
    return field(default=default, metadata={"choices": choices})


@dataclass
class CaseParameters:
    """The panel's state, saved with the scene.

    ctVolume, segmentation - the CT and its target lesions (one segment each; site and tick in segment tags).
    priorLines, metastaticSites, visceral, tnbc - clinical facts as entered ("" = not yet).
    metastaticSitesPrefilled, visceralPrefilled - taken from the lesion table, not yet confirmed by the reader.
    model, bundlePath - the model and a site's weight bundle folder ("" = the bundled weights).
    outlineSensitivity - predict again under outline changes: "on", "off", or "automatic" (on when cheap).
    resultTable - the last result (the prediction's JSON is in its attribute).
    readerA, readerB, readerAName, readerBName - two readers' segmentations of ctVolume, for the consensus.
    chairName - who decides the consensus; consensusSegmentation - the last consensus made (a new node each time).
    """

    ctVolume: object = _node("vtkMRMLScalarVolumeNode")
    segmentation: object = _node("vtkMRMLSegmentationNode")
    priorLines: str = _choice(PRIOR_LINES_CHOICES)
    metastaticSites: str = _choice(METASTATIC_SITES_CHOICES)
    visceral: str = _choice(YES_NO_CHOICES)
    tnbc: str = _choice(YES_NO_CHOICES)
    metastaticSitesPrefilled: bool = False
    visceralPrefilled: bool = False
    model: str = _choice(MODEL_KINDS, DEFAULT_MODEL)
    bundlePath: str = ""
    outlineSensitivity: str = _choice(SENSITIVITY_CHOICES, "automatic")
    resultTable: object = _node("vtkMRMLTableNode")
    readerA: object = _node("vtkMRMLSegmentationNode")
    readerB: object = _node("vtkMRMLSegmentationNode")
    readerAName: str = ""
    readerBName: str = ""
    chairName: str = ""
    consensusSegmentation: object = _node("vtkMRMLSegmentationNode")


@dataclass(frozen=True)
class WrapperField:
    """One parameter as ``@parameterNodeWrapper`` needs it: a node class name, or a plain type with choices."""

    name: str
    nodeClass: str | None
    valueType: type
    default: object
    choices: tuple[str, ...]


def wrapperFields() -> tuple[WrapperField, ...]:
    """The fields of ``CaseParameters`` for the module's parameter node wrapper, in declaration order."""
    return tuple(WrapperField(item.name, item.metadata.get("node"), type(item.default), item.default,
                              tuple(item.metadata.get("choices", ())))
                 for item in fields(CaseParameters))


def nodesOfExactClass(scene, className: str) -> list:
    """The scene's nodes whose class is ``className`` itself, in scene order.

    The scene's class queries (``GetNumberOfNodesByClass``, ``GetNthNodeByClass``,
    ``GetFirstNodeByClass``) match subclasses too, and to them a label map or a vector
    volume is a ``vtkMRMLScalarVolumeNode``: not what a CT selector may offer.
    """
    return [node for node in (scene.GetNthNodeByClass(index, className)
                              for index in range(scene.GetNumberOfNodesByClass(className)))
            if node.GetClassName() == className]


def findParameterNode(scene):
    """The module's parameter node in a scene (as Slicer's ScriptedLoadableModuleLogic finds it), or None."""
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    if node is not None:
        if node.GetAttribute("ModuleName") != MODULE_NAME:  # removed by a scene close; Slicer restores it so
            node.SetAttribute("ModuleName", MODULE_NAME)
        return node
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
        candidate = scene.GetNthNodeByClass(index, "vtkMRMLScriptedModuleNode")
        if candidate.GetAttribute("ModuleName") == MODULE_NAME:
            return candidate
    return None


def getOrCreateParameterNode(scene):
    """The module's parameter node; a new one is tagged and named before it is added, as Slicer's Logic does.

    Adding a node fires NodeAddedEvent: observers (node selectors filtering on
    ``ModuleName``, the singleton check) must see it complete.
    """
    node = findParameterNode(scene)
    if node is not None:
        return node
    node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
    node.UnRegister(None)  # owned by the Python variable, as in ScriptedLoadableModuleLogic.createParameterNode
    node.SetSingletonTag(MODULE_NAME)
    node.SetAttribute("ModuleName", MODULE_NAME)
    node.SetName(scene.GenerateUniqueName(MODULE_NAME))
    return scene.AddNode(node)


def readCaseParameters(parameterNode) -> CaseParameters:
    """The values a ``@parameterNodeWrapper`` node holds, decoded as Slicer's serializers write them."""
    parameters = CaseParameters()
    for item in wrapperFields():
        if not parameterNode.HasParameter(item.name):
            continue
        if item.nodeClass:
            value = parameterNode.GetNodeReference(item.name)
        elif item.valueType is bool:
            value = parameterNode.GetParameter(item.name) == "True"
        else:
            value = parameterNode.GetParameter(item.name)
        setattr(parameters, item.name, value)
    return parameters


def writeCaseParameters(parameterNode, parameters: CaseParameters) -> None:
    """Store every value as ``@parameterNodeWrapper`` stores it, so the panel and ``readCaseParameters`` see it."""
    wasModifying = parameterNode.StartModify()
    for item in wrapperFields():
        value = getattr(parameters, item.name)
        if item.nodeClass:
            writeNodeReference(parameterNode, item.name, value)
        else:
            parameterNode.SetParameter(item.name, str(value))
    parameterNode.EndModify(wasModifying)


def clinicalFacts(parameters: CaseParameters) -> ClinicalFacts:
    """The four facts for the models; refuses missing facts and pre-filled ones the reader has not confirmed."""
    entered = {"lines": parameters.priorLines, "sites": parameters.metastaticSites,
               "visceral": parameters.visceral, "tnbc": parameters.tnbc}
    labels = {"lines": _("prior lines of therapy"), "sites": _("number of metastatic sites"),
              "visceral": _("visceral metastasis"), "tnbc": _("triple-negative subtype")}
    missing = [labels[key] for key, value in entered.items() if not value]
    if missing:
        raise InputError(_("Clinical facts: {facts} not entered; the models need all four. Enter them under "
                           "'Clinical facts'.").format(facts=", ".join(missing)))
    unconfirmed = [labels[key] for key, flag in (("sites", parameters.metastaticSitesPrefilled),
                                                 ("visceral", parameters.visceralPrefilled)) if flag]
    if unconfirmed:
        raise InputError(_("Clinical facts: {facts} pre-filled from the target lesions only; non-target metastases "
                           "may change them. Check them and press 'Confirm'.").format(facts=", ".join(unconfirmed)))
    return parse_clinical([f"{key}={value}" for key, value in entered.items()])


def writeNodeReference(parameterNode, name: str, node) -> None:
    """Set a node parameter as ``@parameterNodeWrapper`` stores it (a marker parameter plus the reference)."""
    parameterNode.SetParameter(name, "")
    parameterNode.SetNodeReferenceID(name, node.GetID() if node is not None else None)
