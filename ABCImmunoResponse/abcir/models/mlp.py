"""The radiomics and combined multilayer perceptrons, forward pass in numpy.

Paper, Methods "Model construction" and Figure 2: the radiomics model is an
MLP with three hidden layers on the patient's radiomics vector; in the combined
model the radiomics input passes the same three hidden layers, the clinical
vector is concatenated to the third hidden layer's output, and both enter a
fourth hidden layer before the output. The output is one logit, the log-odds
of response (the scale of the paper's Table S4 scores).

Tensors are named as ``torch.nn.Linear`` names its state: ``hidden1.weight``
(out x in), ``hidden1.bias``, ..., ``output.weight``, ``output.bias``, so the
safetensors file written from a torch model is read here as it is. Dropout is
a training setting only and is not applied here (torch's ``eval()`` mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .preprocessing import RadiomicsPreprocessing

ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "tanh": np.tanh,
}


@dataclass(frozen=True)
class MLPArchitecture:
    """Layer sizes and activation of the radiomics (``n_clinical`` 0) or combined MLP.

    ``hidden_sizes`` are the radiomics hidden layers (three in the paper); in the
    combined model the clinical vector joins their last output and a further
    hidden layer of ``fusion_size`` units follows, so it enters at layer
    ``len(hidden_sizes) + 1`` (layer 4).
    """

    n_inputs: int
    hidden_sizes: tuple[int, ...]
    activation: str
    dropout: float
    n_clinical: int = 0
    fusion_size: int = 0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(f"Activation '{self.activation}' is unknown; use one of {', '.join(ACTIVATIONS)}.")
        sizes = (self.n_inputs, *self.hidden_sizes) + ((self.fusion_size,) if self.n_clinical else ())
        if not self.hidden_sizes or min(sizes) < 1 or self.n_clinical < 0:
            raise InputError(f"MLP sizes {sizes}: every layer needs at least one unit.")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"Dropout {self.dropout}: must be in [0, 1).")

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the linear layers in the order data flows through them."""
        hidden = len(self.hidden_sizes) + (1 if self.n_clinical else 0)
        return (*(f"hidden{i}" for i in range(1, hidden + 1)), "output")

    @property
    def fusion_layer(self) -> str | None:
        """The layer the clinical vector enters (None for the radiomics-only MLP)."""
        return f"hidden{len(self.hidden_sizes) + 1}" if self.n_clinical else None

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the weights file must hold, with its shape (out x in, as torch)."""
        sizes_in = [self.n_inputs, *self.hidden_sizes[:-1]]
        sizes_out = list(self.hidden_sizes)
        if self.n_clinical:
            sizes_in.append(self.hidden_sizes[-1] + self.n_clinical)
            sizes_out.append(self.fusion_size)
        sizes_in.append(sizes_out[-1])
        sizes_out.append(1)
        shapes: dict[str, tuple[int, ...]] = {}
        for layer, n_in, n_out in zip(self.layers, sizes_in, sizes_out):
            shapes[f"{layer}.weight"] = (n_out, n_in)
            shapes[f"{layer}.bias"] = (n_out,)
        return shapes


class MLPModel:
    """Radiomics or combined MLP with its preprocessing: raw radiomics vector in, log-odds out."""

    def __init__(self, architecture: MLPArchitecture, preprocessing: RadiomicsPreprocessing,
                 tensors: dict[str, np.ndarray], feature_names: tuple[str, ...]):
        self.architecture = architecture
        self.preprocessing = preprocessing
        self.tensors = {name: np.asarray(value, dtype=np.float64) for name, value in tensors.items()}
        self._columns = preprocessing.columns(feature_names)
        self.kind = "combined" if architecture.n_clinical else "radiomics"

    def standardise(self, radiomics: np.ndarray) -> np.ndarray:
        """Model inputs (n x selected) from raw patient vectors (n x all features): z-scores on training data."""
        return self.preprocessing.transform(radiomics, self._columns)

    def activations(self, inputs: np.ndarray, clinical: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Output of every layer (after its activation; ``output`` is the logit) for standardised inputs."""
        activation = ACTIVATIONS[self.architecture.activation]
        x = np.atleast_2d(inputs)
        outputs: dict[str, np.ndarray] = {}
        for layer in self.architecture.layers:
            if layer == self.architecture.fusion_layer:
                x = np.concatenate([x, _clinical_matrix(clinical, x.shape[0], self.architecture.n_clinical)], axis=1)
            x = x @ self.tensors[f"{layer}.weight"].T + self.tensors[f"{layer}.bias"]
            if layer != "output":
                x = activation(x)
            outputs[layer] = x
        return outputs

    def score(self, radiomics: np.ndarray | None, clinical: np.ndarray | None = None) -> np.ndarray:
        """Log-odds of response for each row of raw radiomics vectors (and clinical vectors if combined)."""
        if radiomics is None:
            raise InputError(f"The {self.kind} model needs the patient's radiomics vector (CT and lesions).")
        return self.activations(self.standardise(radiomics), clinical)["output"][:, 0]


def _clinical_matrix(clinical: np.ndarray | None, rows: int, width: int) -> np.ndarray:
    if clinical is None:
        raise InputError("The combined model needs the four clinical facts (lines, sites, visceral, tnbc).")
    matrix = np.atleast_2d(np.asarray(clinical, dtype=np.float64))
    if matrix.shape != (rows, width):
        raise InputError(f"Clinical input of shape {matrix.shape}; the combined model needs {rows} x {width}.")
    return matrix
