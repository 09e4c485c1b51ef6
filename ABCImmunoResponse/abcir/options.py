"""What a user chooses among, and the defaults, wherever abcir is driven from (command line, Slicer panel).

This module imports nothing heavy (only ``abcir.paper``'s constants): the command line declares every
option from these names before any command runs, so that ``abcir --help`` and ``abcir COMMAND
--help`` take a few tens of milliseconds instead of the seconds that numpy,
SimpleITK, pandas or pyradiomics take to import (issue #15). The modules that
implement a choice import its names from here, so each is defined once.
"""

from __future__ import annotations

from .paper import MIN_LONGEST_DIAMETER_MM

# The three response models (abcir.models): the combined one is the paper's final model.
MODEL_KINDS = ("combined", "radiomics", "clinical")

# How several target lesions become one patient vector (abcir.models.aggregation explains each).
AGGREGATIONS = ("volume_weighted_mean", "largest", "mean")
DEFAULT_AGGREGATION = "volume_weighted_mean"

# How the chair turns a lesion into the consensus (abcir.consensus.building); the pair methods need both readers.
CONSENSUS_METHODS = ("a", "b", "union", "intersection", "staple", "edited", "exclude")
CONSENSUS_PAIR_METHODS = ("union", "intersection", "staple")

# Two readers' lesions that do not overlap are one lesion when their centroids are at most this far apart (mm):
# RECIST 1.1's smallest measurable lesion (abcir.consensus.matching explains why).
DEFAULT_MAX_CENTROID_DISTANCE_MM = MIN_LONGEST_DIAMETER_MM

# ICC(2,1) at or above which a feature counts as reproducible: "good" or better in Koo & Li (J Chiropr Med 2016),
# "Cutoff values" (abcir.stats.agreement).
DEFAULT_MIN_ICC = 0.75
# The per-feature table in an agreement folder (``abcir agreement --out DIR``), read by ``abcir train --agreement``.
FEATURE_ICC_FILE = "feature_icc.csv"
# The per-feature ICC(2,1) between segmented and changed outlines that ``abcir batch --sensitivity`` writes into its
# folder, in the format of FEATURE_ICC_FILE; read by ``abcir train --perturbation-icc``.
PERTURBATION_ICC_FILE = "perturbation_icc.csv"

# Outline sensitivity (issue #17, abcir.sensitivity): the named sets of outline changes per lesion
# (abcir.sensitivity.perturbations defines each) and the default, which ``--perturbations N`` varies.
PERTURBATION_SETS = ("outline-1mm", "morphology-1mm", "extended")
DEFAULT_PERTURBATION_SET = "outline-1mm"
# The risk group is called unstable when it flips in more than this share of the outline changes: one change in
# ten may be an implausible outline, more says the group depends on where the border is drawn.
DEFAULT_FLIP_LIMIT = 0.10

# The table ``abcir agreement --cohort`` reads (abcir.consensus.readers_file.read_readers_csv).
READERS_CSV_HELP = """\
readers.csv: one row per patient, a header row, these columns:
  patient_id   the patient's id (unique)
  ct           DICOM series folder or CT image file
  reader_a     reader A's segmentation (.seg.nrrd, or a label map)
  reader_b     reader B's segmentation of the same CT
  lines, sites, visceral, tnbc   optional: the clinical facts (1|2+, 1-2|3+, no|yes, no|yes),
               needed for predictions with the combined and clinical models
Relative paths are relative to the CSV's folder."""
