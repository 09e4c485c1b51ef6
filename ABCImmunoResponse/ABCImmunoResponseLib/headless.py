"""Predict on a saved scene without a window, for CI systems and batch runs.

Outside Slicer, with the ``slicer-core`` wheel (folder ``ABCImmunoResponse`` on the path)::

    PYTHONPATH=ABCImmunoResponse python -m ABCImmunoResponseLib.headless case.mrb --out result.json

Inside Slicer::

    Slicer --no-main-window --python-script ABCImmunoResponse/ABCImmunoResponseLib/headless.py \
        case.mrb --out result.json

The CT, segmentation, clinical facts, model and weights are those the panel
saved in the scene's parameter node; options override them. The prediction
runs as the panel runs it, through ``CaseLogic``: in a child process, with
progress on stderr. The result JSON is
``Prediction.to_dict()``; ``--table`` writes the result table as CSV (with the
outline sensitivity's columns when it was computed: ``--sensitivity``, by default
the panel's choice) and ``--save-scene`` a new ``.mrb`` holding the result table,
as the panel would.
Existing files are never overwritten. Exit code 0 on success, 2 when an input
is wrong (the message says which and how to fix it), 1 on any other error (with
its traceback on stderr); Slicer exits in every case, so a CI job never hangs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a script (Slicer --python-script): import the package by its name
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import slicer  # noqa: E402

from abcir.patient.clinical_facts import clinical_usage, parse_clinical  # noqa: E402
from abcir.errors import InputError  # noqa: E402
from abcir.files import refuse_existing  # noqa: E402
from abcir.models import MODEL_KINDS  # noqa: E402
from abcir.records import write_new_json  # noqa: E402

from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime, RunFailed  # noqa: E402
from ABCImmunoResponseLib.i18n import tr as _  # noqa: E402
from ABCImmunoResponseLib.parameters import (SENSITIVITY_CHOICES, CaseParameters, findParameterNode,  # noqa: E402
                                             getOrCreateParameterNode, nodesOfExactClass, readCaseParameters,
                                             writeCaseParameters)
from ABCImmunoResponseLib.results import resultLines, tableFiles, writeTableCsv  # noqa: E402

EXIT_BUG = 1
EXIT_INPUT_ERROR = 2


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ABCImmunoResponseLib.headless",
        description="Run the ABCImmunoResponse prediction on a saved Slicer scene (.mrb or .mrml). "
                    "Research software; not clinically validated.")
    parser.add_argument("scene", type=Path, help="scene saved from Slicer (.mrb bundle or .mrml file)")
    parser.add_argument("--out", type=Path, required=True, help="result JSON to write (must not exist)")
    parser.add_argument("--table", type=Path, help="also write the result table as CSV (must not exist)")
    parser.add_argument("--save-scene", type=Path, help="also write the scene with the result table as .mrb")
    parser.add_argument("--ct", help="name of the CT volume node (default: the panel's, else the only one)")
    parser.add_argument("--segmentation",
                        help="name of the segmentation node (default: the panel's, else the only one)")
    parser.add_argument("--model", choices=MODEL_KINDS, help="default: the panel's")
    parser.add_argument("--weights", help="weight bundle folder (default: the panel's, else the bundled weights)")
    parser.add_argument("--sensitivity", choices=SENSITIVITY_CHOICES,
                        help="predict again under outline changes (automatic: when estimated under 10 s; "
                             "default: the panel's choice)")
    parser.add_argument("--clinical", nargs="+", metavar="KEY=VALUE",
                        help=f"the four clinical facts, as abcir predict takes them: {clinical_usage()} "
                             "(default: the panel's, confirmed there)")
    return parser


def _onlyNode(scene, className: str, name: str | None, what: str, option: str):
    """The node of exactly ``className`` named ``name``, else the scene's only node of exactly that class.

    Subclasses do not count (``nodesOfExactClass``): a CT saved with a label map would
    otherwise count twice, and ``--ct`` could pick the label map as the CT.
    """
    nodes = nodesOfExactClass(scene, className)
    if name:
        named = [node for node in nodes if node.GetName() == name]
        if named:
            return named[0]
        other = scene.GetFirstNodeByName(name)
        if other is not None:
            raise InputError(_("{what} '{name}': that node is a {found}, not a {className}; name a {className} "
                               "with {option}.").format(what=what, name=name, found=other.GetClassName(),
                                                        className=className, option=option))
        raise InputError(_("{what} '{name}': no such node in the scene.").format(what=what, name=name))
    if len(nodes) != 1:
        raise InputError(_("{what}: the panel's saved state names none and the scene holds {count}; name the one "
                           "to use with {option}.").format(what=what, count=len(nodes), option=option))
    return nodes[0]


def caseParameters(scene, args: argparse.Namespace) -> CaseParameters:
    """The panel's saved state, with the options applied on top."""
    parameterNode = findParameterNode(scene)
    parameters = readCaseParameters(parameterNode) if parameterNode is not None else CaseParameters()
    for option, field in (("model", "model"), ("weights", "bundlePath"), ("sensitivity", "outlineSensitivity")):
        if getattr(args, option):
            setattr(parameters, field, getattr(args, option))
    if args.clinical:  # all four, read as the command line reads them; confirmed by whoever runs the command
        facts = dict(token.split("=", 1) for token in parse_clinical(args.clinical).to_tokens())
        parameters.priorLines, parameters.metastaticSites = facts["lines"], facts["sites"]
        parameters.visceral, parameters.tnbc = facts["visceral"], facts["tnbc"]
        parameters.metastaticSitesPrefilled = parameters.visceralPrefilled = False
    if args.ct or parameters.ctVolume is None:
        parameters.ctVolume = _onlyNode(scene, "vtkMRMLScalarVolumeNode", args.ct, "CT volume", "--ct")
    if args.segmentation or (parameters.segmentation is None and parameters.model != "clinical"):
        parameters.segmentation = _onlyNode(scene, "vtkMRMLSegmentationNode", args.segmentation, "Segmentation",
                                            "--segmentation")
    return parameters


def _showProgress(update) -> None:
    for progress in update.progress:
        print(f"[{progress.done}/{progress.total}] {progress.what}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, scene, load) -> int:
    """Load, predict (in a child process, as the panel does), write; ``load(path)`` reads the scene file."""
    for path in (args.out, *(tableFiles(args.table) if args.table else ()), args.save_scene):
        if path is not None:
            refuse_existing(path)
    if not args.scene.is_file():
        raise InputError(_("Scene '{path}': no such file.").format(path=args.scene))
    workingDirectory = os.getcwd()
    try:
        load(args.scene)
    except (OSError, RuntimeError) as error:  # the wheel's reader and Slicer's loadScene: a scene they cannot read
        raise InputError(_("Scene '{path}': cannot be read ({error}); give a .mrb or .mrml scene saved by Slicer, "
                           "with the files it references beside it.").format(path=args.scene, error=error)) from error
    finally:
        # vtkArchive's unzip returns early on a broken .mrb without changing back, and the scene then removes
        # the unpacking folder it left this process in (Libs/MRML/Core/vtkArchive.cxx, Slicer 5.10).
        os.chdir(workingDirectory)
    parameterNode = getOrCreateParameterNode(scene)
    writeCaseParameters(parameterNode, caseParameters(scene, args))  # the options on top of the saved state
    runtime = ChildRuntime.forThisProcess()
    applied = CaseLogic(scene, runtime).startPrediction(parameterNode).wait(onUpdate=_showProgress)
    prediction = applied.prediction
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_new_json(args.out, prediction.to_dict())
    if args.table:
        writeTableCsv(applied.tableNode, args.table)
    if args.save_scene and not scene.WriteToMRB(str(args.save_scene)):
        raise InputError(_("Output '{path}': the scene could not be written.").format(path=args.save_scene))
    print(resultLines(prediction, applied.sensitivity).text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The exit code: 0, ``EXIT_INPUT_ERROR`` for a wrong input, ``EXIT_BUG`` for anything else (traceback on stderr).

    Every error becomes a code, none escapes: inside Slicer, ``--python-script`` leaves
    the application running after the script unless the script calls
    ``slicer.util.exit``, so an escaping exception would hang the CI job instead of
    failing it. argparse's own exit (``--help``, a usage error) may escape: Slicer
    exits on ``SystemExit`` with its code. ``Exception`` is enough: Slicer restores
    SIGINT's default action, so Ctrl+C ends it without a ``KeyboardInterrupt``.
    """
    args = buildParser().parse_args(argv)
    try:
        if hasattr(slicer, "app"):  # inside Slicer: its scene and its readers
            return run(args, slicer.mrmlScene, lambda path: slicer.util.loadScene(str(path)))
        from ABCImmunoResponseLib.standalone import newStandaloneScene

        standalone = newStandaloneScene()
        return run(args, standalone.scene, standalone.load)
    except InputError as error:
        print(f"ABCImmunoResponse headless: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except RunFailed as error:
        print(f"ABCImmunoResponse headless: the prediction failed: {error}\n{error.details}", file=sys.stderr)
        return EXIT_BUG
    except Exception:  # noqa: BLE001 (a bug, a failed read or write, RunCancelled: say where, fail the job)
        print("ABCImmunoResponse headless: unexpected error:", file=sys.stderr)
        traceback.print_exc()
        return EXIT_BUG


if __name__ == "__main__":
    code = main()
    if hasattr(slicer, "app"):
        slicer.util.exit(code)
    else:
        sys.exit(code)
