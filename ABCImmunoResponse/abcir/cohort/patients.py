"""The generated cohort's clinical side: facts, hidden phenotype, response and PFS.

Everything here is drawn from a documented model (docs/synthetic_cohort.md), never
from patients. The numbers it reproduces come from Zhao et al., J Immunother
Cancer 2023;11:e006514 and are cited next to each constant.

The model, in the order it is drawn:

1. centre (Figure 1 sizes) and the paper's train/validation split;
2. the four clinical facts with the training cohort's frequencies (Table 1),
   visceral metastasis depending on the number of sites (an assumption: Table 1
   gives no joint distribution);
3. response ~ Bernoulli(expit(b0 + sum(log OR_k * fact_k))) with the paper's
   multivariable odds ratios (Results) and b0 set so that the response rate is
   the training cohort's (Table 1);
4. a hidden tumour phenotype z | response ~ N(+-PHENOTYPE_SEPARATION / 2, 1).
   By Bayes, logit P(response | facts, z) = b0' + sum(log OR_k * fact_k) +
   PHENOTYPE_SEPARATION * z: the phenotype and the clinical facts both matter,
   and a clinical-only logistic regression recovers exactly the odds ratios
   put in (the paper's clinical model saw no images either);
5. best response (Figure S1 proportions) and progression-free survival by best
   response, with censoring, tuned so that responders and non-responders have
   about the medians and event fractions of Table S6;
6. the metastatic sites, consistent with facts 2 (visceral, >= 3 sites).

The images (abcir.cohort.phantom_plan and rendering) only see z and the sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from ..paper import (
    BEST_RESPONSE_COUNTS,
    ODDS_RATIOS_95CI,
    TRAINING_FACT_COUNTS,
    TRAINING_PATIENTS,
    TRAINING_RESPONDERS,
)
from ..paper import (
    CENTER_SIZES as PAPER_CENTER_SIZES,
)
from ..patient.clinical_facts import CLINICAL_ENCODING, ClinicalFacts
from ..patient.sites import SITES

# --- Centres (Figure 1 and Methods "Study design") -----------------------------------
# Training = SYSMH + a random half of SYSUCC's 128 = 171, validation = the other 64
# of SYSUCC + FAHSYSU = 69; hence 107 / 128 / 5 patients. The generated centres carry
# neutral names so that nobody takes them for the hospitals.
CENTER_SIZES: dict[str, int] = dict(zip(("center_A", "center_B", "center_C"), PAPER_CENTER_SIZES))
TRAINING_CENTER = "center_A"
SPLIT_CENTER = "center_B"  # randomised 1:1 between training and validation

# --- Clinical facts: training cohort frequencies (Table 1, N = 171) -------------------
P_PRIOR_LINES_GE2 = TRAINING_FACT_COUNTS["prior_lines_ge2"] / TRAINING_PATIENTS  # 112/171
P_METASTATIC_SITES_GE3 = TRAINING_FACT_COUNTS["metastatic_sites_ge3"] / TRAINING_PATIENTS  # 84/171
P_VISCERAL = TRAINING_FACT_COUNTS["visceral"] / TRAINING_PATIENTS  # 94/171
P_TNBC = TRAINING_FACT_COUNTS["tnbc"] / TRAINING_PATIENTS  # 133/171
# Assumption (Table 1 has no joint table): patients with >= 3 sites more often have a
# visceral one. P(visceral | >= 3 sites) is set, P(visceral | 1-2 sites) follows from
# the marginal P_VISCERAL.
P_VISCERAL_GIVEN_SITES_GE3 = 0.70
P_VISCERAL_GIVEN_SITES_LT3 = (P_VISCERAL - P_METASTATIC_SITES_GE3 * P_VISCERAL_GIVEN_SITES_GE3) / (
    1 - P_METASTATIC_SITES_GE3)

# --- Response (Results, "Clinical characteristics"; Table 1) ----------------------------
RESPONSE_RATE = TRAINING_RESPONDERS / TRAINING_PATIENTS  # responders (CR + PR) in the training cohort
# Multivariable odds ratios of response, in CLINICAL_ENCODING order. The paper reports
# the first two (OR 0.35, 95% CI 0.16-0.77; OR 0.42, 0.18-0.99); visceral metastasis and
# TNBC entered its clinical model without reported ORs, so they get modest values near
# Table 1's crude ratios (assumptions).
ODDS_RATIOS: dict[str, float] = {
    **{name: ratio for name, (ratio, _) in ODDS_RATIOS_95CI.items()},
    "visceral": 0.70,
    "tnbc": 1.25,
}
PAPER_OR_95CI: dict[str, tuple[float, float]] = {name: ci for name, (_, ci) in ODDS_RATIOS_95CI.items()}
# Separation (in SD) of the hidden phenotype between responders and non-responders (assumed).
# z alone separates them with AUC = Phi(PHENOTYPE_SEPARATION / sqrt 2) = 0.92, the paper's
# validation AUC of its radiomics model (Table 2); the images carry z with noise, so a
# radiomics model trained on a cohort of the paper's size sees less (about 0.75-0.9).
PHENOTYPE_SEPARATION = 2.0

# --- Best response (Results: CR 16, PR 69, SD 101, PD 54 of 240; Figure S1) ----------------
P_CR_GIVEN_RESPONSE = BEST_RESPONSE_COUNTS["CR"] / (BEST_RESPONSE_COUNTS["CR"] + BEST_RESPONSE_COUNTS["PR"])
P_PD_GIVEN_NO_RESPONSE = BEST_RESPONSE_COUNTS["PD"] / (BEST_RESPONSE_COUNTS["PD"] + BEST_RESPONSE_COUNTS["SD"])

# --- PFS in months (Table S6) -----------------------------------------------------------
# Table S6 gives median PFS 10.12 vs 3.75 months and 30/52 vs 89/119 events for the
# radiomics model's low- and high-risk groups (training), used here as a proxy for
# responders and non-responders. The shape below (progression at the first scan for
# PD, a Weibull after the first assessment otherwise, exponential loss to follow-up)
# is an assumption tuned to give those medians and about those event fractions.
FIRST_ASSESSMENT_MONTHS = 1.5  # response first assessed ~6 weeks after start (Appendix S1)
PD_PROGRESSION_MONTHS = (1.2, 2.8)  # PD found at the first assessment (uniform)
RESPONDER_WEIBULL = (8.6, 1.2)  # (median after the first assessment, shape)
STABLE_WEIBULL = (4.7, 1.3)
CENSORING_MEDIAN_MONTHS = 11.0  # after the first assessment

# --- Metastatic sites ----------------------------------------------------------------------
# Number of sites given the fact "sites >= 3" (assumption), and the organs they are in:
# the visceral and non-visceral sites in which the paper segmented targets
# (Methods, Appendix S1: liver, lung, chest wall, lymph nodes, breast, soft tissue of bone
# metastases), weighted roughly as metastatic ABC spreads (assumption).
N_SITES_LT3 = {1: 0.45, 2: 0.55}
N_SITES_GE3 = {3: 0.50, 4: 0.30, 5: 0.15, 6: 0.05}
VISCERAL_SITE_WEIGHTS = {"lung": 0.40, "liver": 0.35, "pleura": 0.17, "adrenal": 0.08}
NON_VISCERAL_SITE_WEIGHTS = {"lymph_node": 0.40, "bone": 0.25, "chest_wall": 0.20, "breast": 0.15}
N_VISCERAL_SITES = {1: 0.60, 2: 0.30, 3: 0.10}  # among the sites of a visceral patient


@dataclass(frozen=True)
class SyntheticPatient:
    """One generated patient's table row and the hidden truth behind it (not patient data)."""

    patient_id: str
    center: str
    split: str  # "train" or "validation", as in the paper's Figure 1
    clinical: ClinicalFacts
    metastatic_sites: tuple[str, ...]  # site keys (abcir.patient.sites), visceral ones first
    phenotype: float  # hidden z; responders ~ N(+1, 1), non-responders ~ N(-1, 1)
    response: bool  # CR or PR (RECIST 1.1)
    best_response: str  # "CR", "PR", "SD" or "PD"
    pfs_months: float
    pfs_event: bool  # True: progression observed; False: censored


def _check_site_weights() -> None:
    for weights in (VISCERAL_SITE_WEIGHTS, NON_VISCERAL_SITE_WEIGHTS):
        for key in weights:
            if key not in SITES:
                raise RuntimeError(f"site '{key}' is not in abcir.patient.sites.SITES")
    if any(not SITES[key].visceral for key in VISCERAL_SITE_WEIGHTS) or any(
            SITES[key].visceral for key in NON_VISCERAL_SITE_WEIGHTS):
        raise RuntimeError("the visceral/non-visceral site pools disagree with abcir.patient.sites")


_check_site_weights()


def log_odds_ratios() -> np.ndarray:
    """The log odds ratios in ``CLINICAL_ENCODING`` order (the order of ``ClinicalFacts.vector``).

    Returns
    -------
    numpy.ndarray
        Shape (4,), natural log of ``ODDS_RATIOS`` (per fact present, unitless).
    """
    return np.log([ODDS_RATIOS[name] for name in CLINICAL_ENCODING])


def _fact_combinations() -> tuple[np.ndarray, np.ndarray]:
    """All 16 fact vectors and their probabilities under the model's fact distribution."""
    combos, probabilities = [], []
    for lines in (0, 1):
        for sites in (0, 1):
            for visceral in (0, 1):
                for tnbc in (0, 1):
                    p_visceral = P_VISCERAL_GIVEN_SITES_GE3 if sites else P_VISCERAL_GIVEN_SITES_LT3
                    probabilities.append((P_PRIOR_LINES_GE2 if lines else 1 - P_PRIOR_LINES_GE2)
                                         * (P_METASTATIC_SITES_GE3 if sites else 1 - P_METASTATIC_SITES_GE3)
                                         * (p_visceral if visceral else 1 - p_visceral)
                                         * (P_TNBC if tnbc else 1 - P_TNBC))
                    combos.append((lines, sites, visceral, tnbc))
    return np.array(combos, dtype=float), np.array(probabilities)


@lru_cache(maxsize=None)
def response_intercept() -> float:
    """Intercept b0 of the clinical logit that makes the expected response rate ``RESPONSE_RATE``.

    Solved once over the 16 fact combinations weighted by the model's fact distribution, so
    the cohort's response rate matches Table 1 whatever odds ratios are set.

    Returns
    -------
    float
        b0 on the logit scale.
    """
    combos, probabilities = _fact_combinations()
    linear = combos @ log_odds_ratios()
    return float(brentq(lambda b0: probabilities @ expit(b0 + linear) - RESPONSE_RATE, -10.0, 10.0))


def response_probability(facts: np.ndarray) -> np.ndarray:
    """P(response | clinical facts), before the hidden phenotype is drawn.

    Parameters
    ----------
    facts : numpy.ndarray
        Shape (n, 4) (or (4,)), 0/1 in ``CLINICAL_ENCODING`` order.

    Returns
    -------
    numpy.ndarray
        Shape (n,) (or scalar), probabilities in [0, 1].
    """
    return expit(response_intercept() + np.asarray(facts, dtype=float) @ log_odds_ratios())


def _weibull(rng: np.random.Generator, median: float, shape: float, size: int) -> np.ndarray:
    return median / np.log(2) ** (1 / shape) * rng.weibull(shape, size)


def draw_pfs(best_response: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """PFS in months and the event flag (True = progression seen) for each best response.

    PD progresses at the first assessment, CR/PR and SD after it (Weibull), and follow-up
    ends by exponential censoring; tuned to Table S6's medians.

    Parameters
    ----------
    best_response : numpy.ndarray
        Shape (n,), ``"CR"``, ``"PR"``, ``"SD"`` or ``"PD"``.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    pfs_months : numpy.ndarray
        Shape (n,), months, rounded to 0.01.
    event : numpy.ndarray
        Shape (n,), bool: True = progression observed, False = censored.
    """
    n = best_response.size
    responder = np.isin(best_response, ("CR", "PR"))
    progression = np.where(
        responder, FIRST_ASSESSMENT_MONTHS + _weibull(rng, *RESPONDER_WEIBULL, n),
        np.where(best_response == "PD", rng.uniform(*PD_PROGRESSION_MONTHS, n),
                 FIRST_ASSESSMENT_MONTHS + _weibull(rng, *STABLE_WEIBULL, n)))
    censoring = FIRST_ASSESSMENT_MONTHS + rng.exponential(CENSORING_MEDIAN_MONTHS / np.log(2), n)
    return np.round(np.minimum(progression, censoring), 2), progression <= censoring


def _choose(rng: np.random.Generator, weights: dict):
    keys = list(weights)
    p = np.array([weights[key] for key in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _pick_sites(rng: np.random.Generator, pool: dict[str, float], count: int) -> list[str]:
    """``count`` distinct sites from a weighted pool (weighted sampling without replacement)."""
    keys = list(pool)
    p = np.array([pool[key] for key in keys])
    return [keys[i] for i in rng.choice(len(keys), size=min(count, len(keys)), replace=False, p=p / p.sum())]


def draw_metastatic_sites(sites_ge3: bool, visceral: bool, rng: np.random.Generator) -> tuple[str, ...]:
    """The organs a patient has metastases in, consistent with the two clinical facts.

    A visceral patient has 1-3 visceral sites; a non-visceral one has none, so at most
    the four non-visceral sites (a drawn count above four is capped there, still >= 3).

    Parameters
    ----------
    sites_ge3 : bool
        The fact "three or more metastatic sites".
    visceral : bool
        The fact "visceral metastasis".
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    tuple of str
        Distinct site keys of ``abcir.patient.sites.SITES``, visceral ones first.
    """
    count = int(_choose(rng, N_SITES_GE3 if sites_ge3 else N_SITES_LT3))
    if visceral:
        n_visceral = max(min(int(_choose(rng, N_VISCERAL_SITES)), count), count - len(NON_VISCERAL_SITE_WEIGHTS))
    else:
        count, n_visceral = min(count, len(NON_VISCERAL_SITE_WEIGHTS)), 0
    return tuple(_pick_sites(rng, VISCERAL_SITE_WEIGHTS, n_visceral)
                 + _pick_sites(rng, NON_VISCERAL_SITE_WEIGHTS, count - n_visceral))


def draw_outcomes(facts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Response, hidden phenotype, best response, PFS (months) and PFS event for rows of facts.

    Parameters
    ----------
    facts : numpy.ndarray
        Shape (n, 4), one row per patient, 0/1 in ``CLINICAL_ENCODING`` order.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    tuple of numpy.ndarray
        Each of shape (n,): response (bool, CR or PR), hidden phenotype z (SD units),
        best response (``"CR"``/``"PR"``/``"SD"``/``"PD"``), PFS (months) and PFS event (bool).
    """
    n = len(facts)
    response = rng.random(n) < response_probability(facts)
    phenotype = rng.standard_normal(n) + np.where(response, 0.5, -0.5) * PHENOTYPE_SEPARATION
    best = np.where(response, np.where(rng.random(n) < P_CR_GIVEN_RESPONSE, "CR", "PR"),
                    np.where(rng.random(n) < P_PD_GIVEN_NO_RESPONSE, "PD", "SD"))
    pfs, event = draw_pfs(best, rng)
    return response, phenotype, best, pfs, event


def center_assignment(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres in the paper's proportions and the paper's split ("train"/"validation").

    Centre sizes are n * (107, 128, 5) / 240 by largest remainders; all of centre A and
    a random half of centre B train, the rest validate (Figure 1).

    Parameters
    ----------
    n : int
        Number of patients.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    centers : numpy.ndarray
        Shape (n,), object array of ``CENTER_SIZES`` keys, in random order.
    split : numpy.ndarray
        Shape (n,), object array of ``"train"`` or ``"validation"``.
    """
    total = sum(CENTER_SIZES.values())
    exact = np.array([n * size / total for size in CENTER_SIZES.values()])
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    centers = rng.permutation(np.repeat(np.array(list(CENTER_SIZES), dtype=object), counts))
    split = np.where(centers == TRAINING_CENTER, "train", "validation").astype(object)
    in_split_center = np.flatnonzero(centers == SPLIT_CENTER)
    split[rng.permutation(in_split_center)[: (in_split_center.size + 1) // 2]] = "train"
    return centers, split


def patient_ids(n: int) -> list[str]:
    """``SYN0001``..: the prefix says synthetic; the width fits n.

    Parameters
    ----------
    n : int
        Number of patients.

    Returns
    -------
    list of str
        ``SYN`` and a 1-based number zero-padded to at least four digits.
    """
    width = max(4, len(str(n)))
    return [f"SYN{i:0{width}d}" for i in range(1, n + 1)]


def draw_clinical_cohort(n: int, seed: int) -> list[SyntheticPatient]:
    """n generated patients' facts, hidden phenotype, response and PFS; no images (fast).

    The image generator draws the same patients from the same seed, so this table is
    the clinical side of ``abcir make-cohort --n n --seed seed``.

    Parameters
    ----------
    n : int
        Number of patients (at least 1).
    seed : int
        Cohort seed.

    Returns
    -------
    list of SyntheticPatient
        In patient-id order; PFS in months.

    Raises
    ------
    ValueError
        When ``n`` is below 1.
    """
    if n < 1:
        raise ValueError(f"n = {n}: a cohort needs at least one patient")
    rng = np.random.default_rng([seed, 0])
    centers, split = center_assignment(n, rng)
    lines = rng.random(n) < P_PRIOR_LINES_GE2
    sites_ge3 = rng.random(n) < P_METASTATIC_SITES_GE3
    visceral = rng.random(n) < np.where(sites_ge3, P_VISCERAL_GIVEN_SITES_GE3, P_VISCERAL_GIVEN_SITES_LT3)
    tnbc = rng.random(n) < P_TNBC
    response, phenotype, best, pfs, event = draw_outcomes(np.column_stack([lines, sites_ge3, visceral, tnbc]), rng)
    return [SyntheticPatient(
        patient_id=pid, center=str(centers[i]), split=str(split[i]),
        clinical=ClinicalFacts(bool(lines[i]), bool(sites_ge3[i]), bool(visceral[i]), bool(tnbc[i])),
        metastatic_sites=draw_metastatic_sites(bool(sites_ge3[i]), bool(visceral[i]), rng),
        phenotype=float(phenotype[i]), response=bool(response[i]), best_response=str(best[i]),
        pfs_months=float(pfs[i]), pfs_event=bool(event[i]),
    ) for i, pid in enumerate(patient_ids(n))]
