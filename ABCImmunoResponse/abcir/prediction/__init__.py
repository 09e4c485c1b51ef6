"""One patient's prediction from lesions, facts and a weight bundle (``predict``), and the bundled demo (``demo``)."""
