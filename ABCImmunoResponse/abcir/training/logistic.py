"""The clinical model's logistic regression, by maximum likelihood (as R's ``glm`` or SPSS fit it)."""

from __future__ import annotations

import warnings

import numpy as np
import statsmodels
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from ..errors import InputError
from ..models import LogisticArchitecture
from ..patient.clinical_facts import CLINICAL_ENCODING
from ..stats.delong import delong_auc
from .export import ModelFit
from .validation import check_labels


def fit_clinical(clinical: np.ndarray, labels: np.ndarray) -> ModelFit:
    """Logistic regression of response on the 0/1 clinical vectors (rows = patients, ``CLINICAL_ENCODING`` order).

    Parameters
    ----------
    clinical : np.ndarray
        Patients x 4 matrix of 0/1 clinical facts, columns in ``CLINICAL_ENCODING`` order.
    labels : np.ndarray
        One response per patient: 1 = CR/PR, 0 = SD/PD (RECIST 1.1).

    Returns
    -------
    ModelFit
        The clinical model: coefficients and intercept (log-odds), and a training record with odds ratios, their
        95% CIs, p-values and the apparent AUC.

    Raises
    ------
    InputError
        When ``clinical`` is not a patients x 4 matrix of 0/1, ``labels`` are invalid (``check_labels``), a fact
        is the same for every patient, or the maximum-likelihood fit has no finite estimate (separation).
    """
    names = tuple(CLINICAL_ENCODING)
    matrix = np.asarray(clinical, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(names) or not np.all(np.isin(matrix, (0.0, 1.0))):
        raise InputError(f"Clinical training data: need a patients x {len(names)} matrix of 0/1 ({', '.join(names)}).")
    labels = check_labels(labels, matrix.shape[0])
    constant = [name for name, column in zip(names, matrix.T) if column.min() == column.max()]
    if constant:
        raise InputError(f"Clinical training data: '{constant[0]}' is the same for all {matrix.shape[0]} patients; "
                         "its coefficient cannot be estimated. Train on a cohort where it varies.")
    design = np.column_stack([np.ones(matrix.shape[0]), matrix])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            result = sm.Logit(labels, design).fit(method="newton", maxiter=100, disp=False)
        except (PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError) as error:
            raise InputError(f"Clinical training data: logistic regression has no finite estimate ({error}); "
                             "the facts separate responders (nearly) perfectly. Train on more patients.") from error
    params = np.asarray(result.params)
    low, high = np.asarray(result.conf_int()).T
    auc = delong_auc(design @ params, labels)
    training = {
        "method": "maximum-likelihood logistic regression (statsmodels Logit, Newton-Raphson)",
        "n": int(labels.size),
        "responders": int(labels.sum()),
        "intercept": float(params[0]),
        "odds_ratios": {name: float(np.exp(params[i + 1])) for i, name in enumerate(names)},
        "odds_ratio_ci95": {name: [float(np.exp(low[i + 1])), float(np.exp(high[i + 1]))] for i, name in enumerate(names)},
        "p_values": {name: float(result.pvalues[i + 1]) for i, name in enumerate(names)},
        "apparent_auc": float(auc.auc),
    }
    return ModelFit(kind="clinical", architecture=LogisticArchitecture(names), preprocessing=None,
                    tensors={"coef": params[1:].copy(), "intercept": params[:1].copy()},
                    training=training, validation=(), software={"statsmodels": statsmodels.__version__})
