"""What a training run produced besides the weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainResult:
    """What training produced besides the weights.

    Attributes:
        curve: one dict per epoch: ``epoch``, ``loss``, ``seconds`` and, where
            evaluated, ``valid_ndcg@10``.
        best_epoch: epoch whose weights were restored.
        best_valid: its validation NDCG@10.
        epochs: epochs run.
        seconds: wall-clock training time (evaluation included).
        stopped_early: True when patience ran out before ``epochs``.
        device: device trained on.
    """

    curve: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: float = float("-inf")
    epochs: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    device: str = "cpu"
