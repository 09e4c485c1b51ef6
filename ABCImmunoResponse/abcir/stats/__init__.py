"""Statistics of the paper, each matching the R function the authors used.

``delong`` (pROC AUC, CI and paired test), ``roc`` (ROC curve, Table 2
metrics), ``maxstat`` (maxstat's log-rank cut-off), ``survival`` (survival's
Kaplan-Meier median and concordance, lifelines' log-rank and Cox),
``calibration`` (rms val.prob), ``decision`` (decision and clinical impact
curves) and ``baseline_table`` (Table 1 tests).  Agreement with R is tested
against fixtures made by ``Testing/fixtures/stats/make_reference.R``.
"""
