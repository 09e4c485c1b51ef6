"""Training primitives for the three models (torch for the MLPs), used by the training pipeline and tests.

``fit_clinical`` (logistic regression), ``fit_mlp`` (radiomics or combined
MLP, fixed seeds, early stopping on an inner validation split) and
``save_bundle`` (a fit plus its provenance into a weight bundle). Nothing
here is needed for prediction, which runs on numpy.
"""

from .export import ModelFit, save_bundle
from .logistic import fit_clinical
from .mlp import MLPSettings, TorchMLP, fit_mlp, torch_model
from .selection import SelectionSettings, fit_preprocessing
from .validation import validation_record

__all__ = ["MLPSettings", "ModelFit", "SelectionSettings", "TorchMLP", "fit_clinical", "fit_mlp",
           "fit_preprocessing", "save_bundle", "torch_model", "validation_record"]
