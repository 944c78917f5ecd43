"""MostPop: the popularity baseline every recommender must beat."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from engine.data.split import SplitData


class MostPop:
    """Scores every item by its number of training interactions, the same for all users.

    Non-personalised, but a strong reference on popularity-skewed data
    (RecBole's "Pop"); ties keep the order the evaluator's sort gives them.
    """

    def __init__(self) -> None:
        self.popularity: Tensor | None = None

    def fit(self, split: SplitData) -> MostPop:
        """Count each item's training interactions (binary, one per user)."""
        counts = np.asarray(split.matrix("train").sum(axis=0)).ravel()
        self.popularity = torch.as_tensor(counts, dtype=torch.float32)
        return self

    @property
    def n_items(self) -> int:
        return 0 if self.popularity is None else int(self.popularity.numel())

    def score(self, users: Tensor) -> Tensor:
        """Popularity scores ``[len(users), n_items]`` (float32, CPU)."""
        if self.popularity is None:
            raise RuntimeError("call fit(split) before score()")
        # A real copy, not an expanded view: evaluators mask training items in place.
        return self.popularity.unsqueeze(0).repeat(len(users), 1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
