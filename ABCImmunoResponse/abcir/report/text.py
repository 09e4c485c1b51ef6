"""Numbers as the report writes them: p values, AUCs with their CI, file-safe names."""

from __future__ import annotations

import re

from ..evaluation.results import ModelEvaluation


def format_p(p: float | None) -> str:
    """p-values as journals print them: '<0.001' below 0.001, three decimals otherwise.

    Parameters
    ----------
    p : float or None
        A p-value; None: not computed.

    Returns
    -------
    str
        ``<0.001``, the value with three decimals, or ``n/a`` for None.
    """
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_phrase(p: float | None) -> str:
    """'p < 0.001' or 'p = 0.042', for figure annotations.

    Parameters
    ----------
    p : float or None
        A p-value; None gives 'p = n/a'.

    Returns
    -------
    str
        The phrase, formatted as ``format_p``.
    """
    text = format_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def auc_text(model: ModelEvaluation) -> str:
    """'0.920 (95% CI 0.824-1.000)', the CI omitted when pROC would give none.

    Parameters
    ----------
    model : ModelEvaluation
        One model's evaluation; its ``auc`` (with DeLong CI) is shown.

    Returns
    -------
    str
        The AUC with three decimals and, when defined, its 95% CI.
    """
    estimate = model.auc
    if estimate.ci_low is None:
        return f"{estimate.auc:.3f}"
    return f"{estimate.auc:.3f} (95% CI {estimate.ci_low:.3f}\u2013{estimate.ci_high:.3f})"


def safe_name(name: str) -> str:
    """A model name usable in a file name.

    Parameters
    ----------
    name : str
        A model name.

    Returns
    -------
    str
        ``name`` with every run of characters other than letters, digits, ``_``, ``.`` and ``-`` replaced by
        ``_``.
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
