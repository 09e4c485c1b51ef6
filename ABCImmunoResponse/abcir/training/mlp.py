"""Training the radiomics and combined MLPs in torch, reproducibly.

The network is ``abcir.models.mlp``'s architecture as a ``torch.nn.Module``
whose state names equal the bundle's tensor names, trained in float64 (the
networks are tiny, and numpy inference then agrees with torch to rounding).
Training is deterministic for a given seed: the inner validation split, the
weight initialisation, the mini-batch order and dropout all draw from it, and
the global torch random state is left as it was.

Preprocessing (feature selection, standardisation) is fitted on the inner
training part only, so the inner validation patients are unseen by every
fitted step; early stopping watches their loss and keeps the best epoch's
weights, which makes the inner validation AUC slightly optimistic (it chose
the epoch). A separate cohort gives the honest figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("abcir.training needs torch (pip install 'abcir[train]'); prediction does not.") from error

from ..errors import InputError
from ..features.catalogue import feature_names as extractor_feature_names
from ..models import MLPArchitecture
from ..models.aggregation import DEFAULT_AGGREGATION
from ..patient.clinical_facts import CLINICAL_ENCODING
from ..stats.delong import delong_auc
from .export import ModelFit
from .selection import SelectionSettings, fit_preprocessing
from .validation import check_labels, validation_record


@dataclass(frozen=True)
class MLPSettings:
    """Architecture and optimisation settings; the README explains the defaults."""

    hidden_sizes: tuple[int, ...] = (32, 16, 8)
    fusion_size: int = 8
    activation: str = "relu"
    dropout: float = 0.2
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    max_epochs: int = 1000
    patience: int = 100
    validation_fraction: float = 0.2
    seed: int = 0
    selection: SelectionSettings = field(default_factory=SelectionSettings)


_TORCH_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}


class TorchMLP(nn.Module):
    """The MLP of ``architecture``; ``forward`` takes standardised radiomics (and clinical) inputs."""

    def __init__(self, architecture: MLPArchitecture):
        super().__init__()
        self.architecture = architecture
        for name, shape in architecture.tensor_shapes().items():
            if name.endswith(".weight"):
                self.add_module(name.removesuffix(".weight"), nn.Linear(shape[1], shape[0], dtype=torch.float64))
        self.activation = _TORCH_ACTIVATIONS[architecture.activation]()
        self.dropout = nn.Dropout(architecture.dropout)

    def layer_outputs(self, inputs: torch.Tensor, clinical: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Output of every layer, as ``MLPModel.activations`` (dropout applied in training mode)."""
        x = inputs
        outputs: dict[str, torch.Tensor] = {}
        for layer in self.architecture.layers:
            if layer == self.architecture.fusion_layer:
                x = torch.cat([x, clinical], dim=1)
            x = getattr(self, layer)(x)
            if layer != "output":
                x = self.activation(x)
                outputs[layer] = x
                x = self.dropout(x)
            else:
                outputs[layer] = x
        return outputs

    def forward(self, inputs: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """Log-odds of response, one per row."""
        return self.layer_outputs(inputs, clinical)["output"][:, 0]


def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of 0/1 targets given logits: -log sigmoid(+-logit) = softplus(-+logit).

    Written out because torch's fused float64 kernel is slow on CPU for batches this small.

    Parameters
    ----------
    logits : torch.Tensor
        The predicted log-odds of response, one per patient.
    target : torch.Tensor
        The observed responses, 1 = CR/PR, 0 = SD/PD, same shape as ``logits``.

    Returns
    -------
    torch.Tensor
        The mean loss (nats), a scalar that carries gradients.
    """
    return (target * nn.functional.softplus(-logits) + (1 - target) * nn.functional.softplus(logits)).mean()


def torch_model(architecture: MLPArchitecture, tensors: dict[str, np.ndarray]) -> TorchMLP:
    """A torch module in eval mode holding a bundle's tensors (to check or continue training).

    Parameters
    ----------
    architecture : MLPArchitecture
        The bundle's architecture.
    tensors : dict of str to np.ndarray
        The bundle's tensors by name (converted to float64).

    Returns
    -------
    TorchMLP
        The module, in eval mode.

    Raises
    ------
    RuntimeError
        When the tensors' names or shapes do not match the architecture (torch's ``load_state_dict``).
    """
    model = TorchMLP(architecture)
    model.load_state_dict({name: torch.from_numpy(np.array(value, dtype=np.float64)) for name, value in tensors.items()})
    return model.eval()


@contextmanager
def _reproducible(seed: int) -> Iterator[None]:
    """Seed torch for one fit on one thread, and leave the global random state and thread count as they were.

    One thread: networks this small gain nothing from more, and sums are then always added in the same order.
    """
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _train(model: TorchMLP, rows: Callable, target: torch.Tensor, train: np.ndarray, held_out: np.ndarray,
           settings: MLPSettings) -> tuple[int, int, float]:
    """Mini-batch AdamW until the held-out loss has not improved for ``patience`` epochs; keeps the best weights.

    Returns (best epoch, epochs run, best held-out loss); ``model`` ends in eval mode with the best weights.
    """
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    order = torch.Generator().manual_seed(settings.seed)
    train_t, held_t = torch.from_numpy(train), torch.from_numpy(held_out)
    best_loss, best_epoch, best_state, epoch = float("inf"), 0, None, 0
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        for batch in train_t[torch.randperm(train.size, generator=order)].split(settings.batch_size):
            optimiser.zero_grad()
            binary_cross_entropy(model(*rows(batch)), target[batch]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            held_loss = float(binary_cross_entropy(model(*rows(held_t)), target[held_t]))
        if held_loss < best_loss:
            best_loss, best_epoch = held_loss, epoch
            best_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return best_epoch, epoch, best_loss


def inner_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (training, validation) row indices: ``fraction`` of each class, at least one, to validation.

    Parameters
    ----------
    labels : np.ndarray
        One response per patient, 1 = CR/PR, 0 = SD/PD; both classes present.
    fraction : float
        The share of each class held out for validation, in [0, 1] (rounded to whole patients).
    seed : int
        Seed of the random draw; the same seed gives the same split.

    Returns
    -------
    tuple of np.ndarray
        The training and the validation row indices, each sorted.
    """
    rng = np.random.default_rng(seed)
    validation = []
    for value in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == value))
        validation.extend(rows[:max(1, round(fraction * rows.size))])
    validation = np.sort(np.array(validation))
    return np.setdiff1d(np.arange(labels.size), validation), validation


def fit_mlp(kind: str, radiomics: np.ndarray, labels: np.ndarray, clinical: np.ndarray | None = None,
            feature_names: Sequence[str] | None = None, aggregation: str = DEFAULT_AGGREGATION,
            settings: MLPSettings = MLPSettings()) -> ModelFit:
    """Train the ``radiomics`` or ``combined`` MLP on patient vectors (rows) with 0/1 response labels.

    ``radiomics`` holds each patient's aggregated vector in ``feature_names``
    order (default: the extractor's 1130); ``clinical`` the 0/1 clinical
    vectors (combined model only); ``aggregation`` is recorded, not applied.

    Parameters
    ----------
    kind : str
        ``radiomics`` or ``combined``.
    radiomics : np.ndarray
        Patients x features matrix of aggregated feature values (in the features' own units).
    labels : np.ndarray
        One response per patient: 1 = CR/PR, 0 = SD/PD (RECIST 1.1).
    clinical : np.ndarray or None
        Patients x 4 matrix of 0/1 clinical facts in ``CLINICAL_ENCODING`` order; needed by ``combined``,
        ignored by ``radiomics``.
    feature_names : sequence of str or None
        The names of ``radiomics``' columns; None: the extractor's 1130.
    aggregation : str
        How lesions became the patient vector, recorded in the preprocessing.
    settings : MLPSettings
        Architecture, optimisation, inner split and feature selection settings, with the seed.

    Returns
    -------
    ModelFit
        The network's tensors, its preprocessing (selected features, means and SDs), a training record, and the
        inner validation record (AUC on the held-out patients' log-odds).

    Raises
    ------
    InputError
        When ``kind`` is unknown, ``labels`` are invalid (``check_labels``), the combined model lacks a fitting
        clinical matrix, the inner training part has fewer than two of a class, or as ``fit_preprocessing``.
    """
    if kind not in ("radiomics", "combined"):
        raise InputError(f"MLP kind '{kind}': use 'radiomics' or 'combined' (the clinical model is fit_clinical).")
    names = tuple(extractor_feature_names() if feature_names is None else feature_names)
    values = np.asarray(radiomics, dtype=np.float64)
    labels = check_labels(labels, values.shape[0])
    n_clinical = len(CLINICAL_ENCODING) if kind == "combined" else 0
    if kind == "combined":
        if clinical is None or np.shape(clinical) != (values.shape[0], n_clinical):
            raise InputError(f"The combined model needs a patients x {n_clinical} clinical matrix "
                             f"({', '.join(CLINICAL_ENCODING)}).")
        clinical = np.asarray(clinical, dtype=np.float64)
    train, held_out = inner_split(labels, settings.validation_fraction, settings.seed)
    if labels[train].sum() < 2 or (labels[train] == 0).sum() < 2:
        raise InputError(f"Training: {labels.size} patients are too few for an inner validation split.")
    preprocessing = fit_preprocessing(values[train], labels[train], names, aggregation, settings.selection)
    columns = preprocessing.columns(names)
    inputs = torch.from_numpy(preprocessing.transform(values, columns))
    clinical_t = torch.from_numpy(clinical) if kind == "combined" else None
    target = torch.from_numpy(labels.astype(np.float64))
    architecture = MLPArchitecture(n_inputs=len(preprocessing.selected), hidden_sizes=tuple(settings.hidden_sizes),
                                   activation=settings.activation, dropout=settings.dropout,
                                   n_clinical=n_clinical, fusion_size=settings.fusion_size if n_clinical else 0)

    def rows(index: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return inputs[index], None if clinical_t is None else clinical_t[index]

    with _reproducible(settings.seed):
        model = TorchMLP(architecture)
        best_epoch, epochs_run, best_loss = _train(model, rows, target, train, held_out, settings)
        with torch.no_grad():
            scores = model(*rows(torch.arange(labels.size))).numpy()
    held = validation_record("inner validation split", f"stratified {settings.validation_fraction:.0%} of the "
                             f"training patients (seed {settings.seed}), unseen by feature selection and "
                             "standardisation; used for early stopping", scores[held_out], labels[held_out])
    training = {
        "method": "AdamW on binary cross-entropy, float64, early stopping on inner validation loss",
        "settings": asdict(settings),
        "n_inner_train": int(train.size),
        "n_inner_validation": int(held_out.size),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "best_validation_loss": best_loss,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "apparent_auc": delong_auc(scores[train], labels[train]).auc,
    }
    tensors = {name: value.numpy().copy() for name, value in model.state_dict().items()}
    return ModelFit(kind=kind, architecture=architecture, preprocessing=preprocessing, tensors=tensors,
                    training=training, validation=(held,), software={"torch": torch.__version__})
