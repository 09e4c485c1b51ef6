"""``abcir evaluate``'s statistics: every statistic of the paper for a file of model predictions.

- :mod:`.table`: the predictions CSV (its columns, ``read_predictions``, ``PredictionTable``);
- :mod:`.results`: the result types (``Evaluation`` and the per-model results), read by
  :mod:`abcir.report` to draw the figures and write ``report.html``;
- :mod:`.analysis`: ``evaluate``, which computes them;
- :mod:`.metrics`: the ``metrics.json`` document.

The command itself (options, output folder) is :mod:`abcir.commands.evaluate`.
"""
