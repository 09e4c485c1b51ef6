"""The numbers this project takes from the paper, each beside the table or section it comes from.

Zhao et al., "CT-based radiomics for predicting immunotherapy response in advanced
breast cancer", J Immunother Cancer 2023;11:e006514 (full text and supplement in
``../shared/paper``). Where a module needs one of these it imports it from here, so
that a reader can check every number against the paper in one place. Values that
are this project's own choices (assumptions of the generated cohort, engine
tolerances) stay with the code that makes them and say so.
"""

from __future__ import annotations

# --- Imaging (Methods, "CT acquisition"; Table S1) ------------------------------------------------
#: Reconstructed slice thickness the paper's CTs had: "1.25 mm layer thickness (median 1.25 mm;
#: range 1.0-2.0 mm)"; a CT outside this range is read with a warning.
SLICE_THICKNESS_RANGE_MM = (1.0, 2.0)
#: "all CT images were first resampled to the same image spacing of 1 mm x 1 mm x 1 mm using cubic
#: spline interpolation"; the pyradiomics parameter file (Resources/Parameters) carries the same.
RESAMPLED_SPACING_MM = (1.0, 1.0, 1.0)

# --- Features (Methods, "Tumor segmentation and image feature data extraction"; Table S2) ----------
#: 107 original + 279 LoG (sigma 1, 2, 3 mm) + 744 wavelet (8 sub-bands) features per lesion.
N_FEATURES = 1130

# --- Target lesions (Methods, "Tumor segmentation"; RECIST 1.1 as the paper applied it) ------------
#: At most 5 target lesions in all (RECIST 1.1) and "no more than two target lesions per organ or site".
MAX_TARGETS_TOTAL = 5
MAX_TARGETS_PER_SITE = 2
#: RECIST 1.1 measurability: longest diameter >= 10 mm; a lymph node by its short axis >= 15 mm.
MIN_LONGEST_DIAMETER_MM = 10.0
MIN_NODE_SHORT_AXIS_MM = 15.0

# --- Clinical model (Results, "Clinical characteristics"; Figure S2) -------------------------------
#: Multivariable odds ratios of response with 95% CI reported in the training cohort: lines of prior
#: therapy (OR 0.35, 0.16-0.77, p = 0.009) and metastatic burden (OR 0.42, 0.18-0.99, p = 0.047).
#: Visceral metastasis and TNBC entered the model without reported ORs.
ODDS_RATIOS_95CI: dict[str, tuple[float, tuple[float, float]]] = {
    "prior_lines_ge2": (0.35, (0.16, 0.77)),
    "metastatic_sites_ge3": (0.42, (0.18, 0.99)),
}

# --- Risk groups (Methods, "Survival analysis"; Table S5) ------------------------------------------
#: The cut-off is the maximally selected log-rank statistic on training PFS; R's maxstat defaults keep
#: at least 10 % of patients in each group.
MAXSTAT_MIN_PROPORTION = 0.1
MAXSTAT_MAX_PROPORTION = 0.9
CUTOFF_METHOD = (f"maxstat: maximally selected log-rank statistic on training PFS (minprop {MAXSTAT_MIN_PROPORTION}, "
                 f"maxprop {MAXSTAT_MAX_PROPORTION})")

# --- Cohort (Figure 1; Table 1; Results; Table S6) -------------------------------------------------
#: Training = the first centre (107) + a random half of the second centre's 128 = 171; validation = the
#: other 64 + the third centre's 5 = 69 (Figure 1).
CENTER_SIZES = (107, 128, 5)
TRAINING_PATIENTS = 171
#: Table 1, training cohort (N = 171): prior lines >= 2, >= 3 metastatic sites, visceral metastasis, TNBC.
TRAINING_FACT_COUNTS = {"prior_lines_ge2": 79 + 33, "metastatic_sites_ge3": 64 + 20, "visceral": 68 + 26,
                        "tnbc": 84 + 49}
#: Responders (CR + PR) in the training cohort (Table 1).
TRAINING_RESPONDERS = 61
#: Best response of all 240 patients (Results; Figure S1).
BEST_RESPONSE_COUNTS = {"CR": 16, "PR": 69, "SD": 101, "PD": 54}
