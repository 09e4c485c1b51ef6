"""A generated cohort that behaves like the paper's: synthetic CTs, target lesions, clinical facts, outcomes.

Not patient data. ``patients`` draws the table (facts, hidden phenotype, response,
PFS); the phantom is ``scanner`` (the scan), ``anatomy`` (the body), ``lesion_plan``
(one lesion's look and size), ``phantom_plan`` (targets placed, field of view) and
``rendering`` (the CT whose lesions show the phenotype); ``generator`` writes both
to disk; ``table`` reads and writes the cohort table that batch, train and
make-cohort share. The model is documented in docs/synthetic_cohort.md.
"""

from .generator import CohortSummary, ExamplePatient, make_cohort, make_example_patient
from .patients import SyntheticPatient, draw_clinical_cohort

__all__ = ["SyntheticPatient", "draw_clinical_cohort", "CohortSummary", "ExamplePatient", "make_cohort",
           "make_example_patient"]
