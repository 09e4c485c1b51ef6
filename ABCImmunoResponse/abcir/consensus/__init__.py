"""Double-reader consensus: match two readers' lesions, measure their agreement, build and log the consensus.

``matching`` pairs the lesions, ``metrics`` measures a pair (Dice, Hausdorff),
``agreement`` makes the per-patient table, ``predictions`` the prediction under
each reading, ``building`` turns the chair's decisions into segments,
``session`` keeps the log; ``cohort`` and ``cohort_report`` run the agreement
over a cohort (feature ICCs, kappa, Bland-Altman) listed in a ``readers_file``. The Slicer panel and the
``abcir consensus`` / ``abcir agreement`` commands both use these.
"""
