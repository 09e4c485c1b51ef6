"""What a training run depends on besides its data, recorded in the model card."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models.aggregation import DEFAULT_AGGREGATION
from .mlp import MLPSettings


@dataclass(frozen=True)
class TrainingSettings:
    """What a training run depends on besides its data; recorded in the model card."""

    seed: int = 0
    aggregation: str = DEFAULT_AGGREGATION
    mlp: MLPSettings = field(default_factory=MLPSettings)
    source: str = "site"
    site: str = "site"
    description: str = ""
    date_from: str | None = None
    date_to: str | None = None
    feature_subset: tuple[str, ...] | None = None  # e.g. reproducible features (ICC >= 0.75)
    command: str = ""
