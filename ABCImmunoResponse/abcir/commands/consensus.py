"""``abcir consensus``: compare two readers' lesions of one patient and, with a chair, write the consensus."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..files import check_writable_folder
from ..options import CONSENSUS_METHODS, CONSENSUS_PAIR_METHODS, DEFAULT_MAX_CENTROID_DISTANCE_MM, MODEL_KINDS
from ..patient.sites import SITES, normalise_site
from ..progress import stderr_progress
from . import Subcommands, as_typed, text_argument

if TYPE_CHECKING:
    import SimpleITK as sitk

    from ..consensus.building import PairKey, SegmentLook
    from ..consensus.comparison import ReaderComparison
    from ..consensus.session import ConsensusSession

EPILOG = """\
Lesion ids are the segment names. In --choose/--site/--reason/--edited, ID is a lesion id of
reader A or B (prefix a: or b: when the same id names different lesions in the two files).
Methods: a, b, union, intersection, staple (SimpleITK STAPLE around the lesion, probability > 0.5,
ties left out), edited (--edited), exclude.

Examples:
  abcir consensus --ct CT --reader-a A.seg.nrrd --reader-b B.seg.nrrd --out cmp/
  abcir consensus --ct CT --reader-a A.seg.nrrd --reader-b B.seg.nrrd --out cons/ --chair "Dr C" \\
      --method staple --unmatched exclude --choose liver_2=a --reason "liver_2=B missed the rim" \\
      --site node_1=lymph_node
  abcir consensus --session cons/consensus.session.json --out cons2/ --chair "Dr C" --choose liver_1=union
"""


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir consensus`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "consensus", help="compare two readers' lesions; with --chair, write the consensus segmentation",
        description="Match two readers' lesions of one patient, measure how each pair differs (Dice, Hausdorff, "
                    "volume, diameter, RECIST status, site) and what it does to the prediction; with --chair, "
                    "build the consensus segmentation from the chair's decisions and log the session. The readers' "
                    "files are never changed; nothing in --out is overwritten.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct", help="DICOM series folder or CT file (not needed with --session)")
    parser.add_argument("--reader-a", help="reader A's .seg.nrrd (not needed with --session)")
    parser.add_argument("--reader-b", help="reader B's .seg.nrrd (not needed with --session)")
    parser.add_argument("--out", required=True, help="folder for agreement.json, agreement.txt and the consensus "
                                                     "(must not hold an earlier result)")
    parser.add_argument("--reader-a-name", type=text_argument,
                        help="reader A's name (default: the file name without its extension)")
    parser.add_argument("--reader-b-name", type=text_argument,
                        help="reader B's name (default: the file name without its extension)")
    parser.add_argument("--max-centroid-distance-mm", type=float, default=DEFAULT_MAX_CENTROID_DISTANCE_MM,
                        help="lesions that do not overlap are matched when their centroids are at most this far "
                             f"apart (default {DEFAULT_MAX_CENTROID_DISTANCE_MM:g} mm)")
    prediction = parser.add_argument_group("prediction under each reading")
    prediction.add_argument("--clinical", nargs="+", metavar="KEY=VALUE",
                            help="the four clinical facts (lines=1|2+ sites=1-2|3+ visceral=no|yes tnbc=no|yes); "
                                 "without them no prediction is made")
    prediction.add_argument("--model", choices=MODEL_KINDS,
                            help="model (default: the kind of --weights, else combined)")
    prediction.add_argument("--weights", help="weight bundle folder (default: the bundled weights of --model)")
    prediction.add_argument("--sensitivity", action="store_true",
                            help="also predict under reader A's outline changes (+/-1 mm, contour randomisations) "
                                 "and say whether reader B's probability falls inside that range")
    chair = parser.add_argument_group("consensus (the chair's decisions)")
    chair.add_argument("--chair", type=text_argument, help="who decides; builds the consensus segmentation")
    chair.add_argument("--session", help="reopen a saved consensus.session.json: same inputs and decisions, "
                                         "changes on top, written into the new --out")
    chair.add_argument("--method", choices=("a", "b", *CONSENSUS_PAIR_METHODS),
                       help="method for every matched pair not named in --choose (nor decided in --session)")
    chair.add_argument("--unmatched", choices=("keep", "exclude"),
                       help="lesions only one reader drew, unless named in --choose (nor decided in --session)")
    chair.add_argument("--choose", action="append", default=[], type=text_argument, metavar="ID=METHOD",
                       help=f"method for one lesion ({', '.join(CONSENSUS_METHODS)})")
    chair.add_argument("--site", action="append", default=[], type=text_argument, metavar="ID=SITE",
                       help=f"the chair's site for one lesion ({', '.join(SITES)})")
    chair.add_argument("--reason", action="append", default=[], type=text_argument, metavar="ID=TEXT",
                       help="why, for one lesion")
    chair.add_argument("--edited", action="append", default=[], metavar="ID=FILE",
                       help="the chair's edited outline of one lesion: a .seg.nrrd with one segment or a mask file")
    parser.set_defaults(handler=run)


def _pairs(option: str, values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} '{value}': write it as ID=VALUE, ID being a lesion id of reader A or B.")
        pairs.append((key.strip(), text.strip()))
    return pairs


def _resolve(option: str, lesion_id: str, comparison: ReaderComparison) -> PairKey:
    """The pair a lesion id names; 'a:ID' / 'b:ID' restrict to one reader."""
    from ..consensus.building import describe

    side, sep, rest = lesion_id.partition(":")
    sides = (side.lower(),) if sep and side.lower() in ("a", "b") else ("a", "b")
    name = rest if sep and side.lower() in ("a", "b") else lesion_id
    found = {match.key for match in comparison.matches for s in sides
             if getattr(match, s) is not None and getattr(match, s).lesion_id == name}
    if not found:
        known = sorted({lid for match in comparison.matches for lid in match.key if lid is not None})
        raise InputError(f"{option} '{lesion_id}': no lesion of that id; the lesions are {', '.join(known)}.")
    if len(found) > 1:
        raise InputError(f"{option} '{lesion_id}': names {' and '.join(describe(k) for k in sorted(found, key=str))}; "
                         f"write a:{name} or b:{name}.")
    return found.pop()


def _read_edited(path: str, lesion_id: str, ct: sitk.Image) -> tuple[sitk.Image, str]:
    from ..imaging.ct import file_sha256, read_image_file
    from ..imaging.segfile import read_seg_nrrd
    from ..patient.lesions import align_to_ct

    file = Path(path)
    if not file.is_file():
        raise InputError(f"--edited {lesion_id}={path}: no such file.")
    if file.name.lower().endswith(".seg.nrrd"):
        segments = read_seg_nrrd(file)
        if len(segments) != 1:
            raise InputError(f"--edited {lesion_id}={path}: {len(segments)} segments; give a file holding only the "
                             "edited lesion.")
        mask, label = segments[0].mask, f"{file.resolve()} (segment {segments[0].name})"
    else:
        mask, _ = read_image_file(file, f"--edited {lesion_id}")
        label = str(file.resolve())
    return align_to_ct(f"edited {lesion_id}", mask, ct), f"{label}, sha256 {file_sha256(file)}"


def _looks(path: str) -> dict[str, SegmentLook]:
    """A reader's segment colours and tags by lesion id; label maps and mask files carry none."""
    from ..consensus.building import segment_looks
    from ..imaging.segfile import read_seg_nrrd

    return segment_looks(read_seg_nrrd(path)) if Path(path).name.lower().endswith(".seg.nrrd") else {}


def _decide(args: argparse.Namespace, comparison: ReaderComparison, session: ConsensusSession,
            ct: sitk.Image, edited: dict[PairKey, sitk.Image]) -> ConsensusSession:
    """Apply the command line's decisions on top of the session's earlier ones."""
    from ..consensus.session import ChairChoice, apply_choices

    chosen = {_resolve("--choose", lid, comparison): method.lower() for lid, method in _pairs("--choose", args.choose)}
    sites = {}
    for lid, site in _pairs("--site", args.site):
        key = normalise_site(site)
        if key is None:
            raise InputError(f"--site {lid}={site}: unknown site; use one of {', '.join(SITES)}.")
        sites[_resolve("--site", lid, comparison)] = key
    reasons = {_resolve("--reason", lid, comparison): text for lid, text in _pairs("--reason", args.reason)}
    sources = {}
    for lid, path in _pairs("--edited", args.edited):
        key = _resolve("--edited", lid, comparison)
        edited[key], sources[key] = _read_edited(path, lid, ct)
        chosen.setdefault(key, "edited")
    for match in comparison.matches:  # --method / --unmatched decide what nobody decided yet
        if match.key in chosen or session.decision_for(match.key) is not None:
            continue
        paired = match.a is not None and match.b is not None
        if paired and args.method:
            chosen[match.key] = args.method
        elif not paired and args.unmatched:
            chosen[match.key] = "exclude" if args.unmatched == "exclude" else ("a" if match.a is not None else "b")
    choices = {key: ChairChoice(chosen.get(key), reasons.get(key), sites.get(key), sources.get(key))
               for key in {*chosen, *sites, *reasons, *sources}}
    return apply_choices(session, comparison, choices)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir consensus`` with parsed ``args``: compare the readers and, with a chair, write the consensus.

    Parameters
    ----------
    args : argparse.Namespace
        ``ct``, ``reader_a`` and ``reader_b``, or ``session`` (a saved session log to reopen); ``out``,
        ``reader_a_name``, ``reader_b_name`` (``None``: the file names), ``max_centroid_distance_mm`` (mm),
        ``clinical``, ``model``, ``weights``, and the chair's ``chair``, ``method``, ``unmatched``, ``choose``,
        ``site``, ``reason`` and ``edited``.

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        When ``session`` is given with the CT or a reader's file, or neither is complete; when decisions are
        given without ``chair``; when ``out`` already holds a result, is a file or cannot be written; when the
        CT's voxels differ from the session's; when an ``ID=VALUE`` option is malformed or names no lesion (or
        two); or as the reading of the inputs. The command line turns it into a one-line message.
    """
    from ..consensus.building import build_consensus
    from ..consensus.comparison import (
        AGREEMENT_FILE,
        SUMMARY_FILE,
        ComparedInputs,
        InputFile,
        compare_readers,
        write_agreement,
    )
    from ..consensus.predictions import predict_readers
    from ..consensus.session import new_session, reopen, session_paths, write_consensus
    from ..imaging.ct import file_sha256, file_stem, read_ct, voxel_hash
    from ..patient.lesions import load_lesions
    from ..sensitivity.perturbations import DEFAULT_SET

    out = Path(args.out)
    session: ConsensusSession | None = None
    edited: dict[PairKey, sitk.Image] = {}
    if args.session:
        if args.ct or args.reader_a or args.reader_b:
            raise InputError("--session takes the CT and both readers' files from the log; leave out --ct, "
                             "--reader-a and --reader-b.")
        session, edited = reopen(args.session, args.chair)
        ct_path, path_a, path_b = session.inputs.ct.path, session.inputs.reader_a.path, session.inputs.reader_b.path
        name_a, name_b, max_distance = session.reader_a, session.reader_b, session.max_centroid_distance_mm
    else:
        missing = [option for option, value in (("--ct", args.ct), ("--reader-a", args.reader_a),
                                                ("--reader-b", args.reader_b)) if not value]
        if missing:
            raise InputError(f"{', '.join(missing)} missing; give the CT and both readers' files (or --session).")
        ct_path, path_a, path_b = args.ct, args.reader_a, args.reader_b
        name_a = args.reader_a_name or as_typed(file_stem(path_a))
        name_b = args.reader_b_name or as_typed(file_stem(path_b))
        max_distance = args.max_centroid_distance_mm
    building = bool(args.chair or session)
    decided = [option for option, value in (("--method", args.method), ("--unmatched", args.unmatched),
                                            ("--choose", args.choose), ("--site", args.site),
                                            ("--reason", args.reason), ("--edited", args.edited)) if value]
    if decided and not building:
        raise InputError(f"{', '.join(decided)} without --chair: say who decides (--chair NAME), so the consensus "
                         "can record it.")
    check_writable_folder(out, "--out")
    targets = [out / AGREEMENT_FILE, out / SUMMARY_FILE, *(session_paths(out) if building else ())]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise InputError(f"--out '{out}' already holds {', '.join(existing)}; choose a new folder (results are "
                         "never overwritten).")
    ct = read_ct(ct_path)
    ct_sha = voxel_hash(ct)
    if session is not None and ct_sha != session.inputs.ct.sha256:
        raise InputError(f"CT '{ct_path}': its voxels differ from those of the session ({args.session}); the "
                         "session belongs to another image.")
    lesions_a = load_lesions([path_a], ct)
    lesions_b = load_lesions([path_b], ct)
    comparison = compare_readers(lesions_a, lesions_b, name_a, name_b, max_distance)
    inputs = ComparedInputs(InputFile(str(Path(ct_path).resolve()), ct_sha),
                            InputFile(str(Path(path_a).resolve()), file_sha256(path_a)),
                            InputFile(str(Path(path_b).resolve()), file_sha256(path_b)))
    segments = None
    if building:
        session = session or new_session(comparison, inputs, args.chair)
        session = _decide(args, comparison, session, ct, edited)
        segments = build_consensus(comparison.matches, session.decisions, name_a, name_b, edited,
                                   session_file=session_paths(out)[1].name, looks_a=_looks(path_a),
                                   looks_b=_looks(path_b))
    comparison.predictions = predict_readers(ct, lesions_a, lesions_b,
                                             [item.lesion for item in segments] if segments else None,
                                             args.clinical, args.model, args.weights, progress=stderr_progress,
                                             sensitivity=DEFAULT_SET if args.sensitivity else None)
    if building:
        write_consensus(out, session, segments)
    path = write_agreement(out, comparison, inputs)
    print(comparison.summary_text(), end="")
    print(f"Agreement written to {path} and {out / SUMMARY_FILE}")
    if building:
        seg_path, log_path = session_paths(out)
        print(f"Consensus ({len(segments)} lesions) written to {seg_path}; session log {log_path}")
    return 0
