"""A generated cohort that behaves like the paper's: synthetic CTs, target lesions, clinical facts, outcomes.

Not patient data. ``clinical_model`` draws the table (facts, hidden phenotype,
response, PFS), ``phantom`` renders a CT whose lesions show the phenotype, and
``generator`` writes both to disk. The model is documented in docs/synthetic_cohort.md.
"""

from .clinical_model import SyntheticPatient, draw_clinical_cohort
from .generator import CohortSummary, ExamplePatient, make_cohort, make_example_patient

__all__ = ["SyntheticPatient", "draw_clinical_cohort", "CohortSummary", "ExamplePatient", "make_cohort",
           "make_example_patient"]
