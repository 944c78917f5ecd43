"""Exact decomposition: the model's own arithmetic, one term per past interaction plus named residuals.

For a model with the :data:`~engine.models.registry.DECOMPOSITION` interface the score *is* a sum

    s(u, i) = sum_j c(u, j, i) + taste profile(u, i) + popularity(i),

so nothing is approximated: the attribution of past interaction ``j`` is its term ``c(u, j, i)``
(for an additive history term that is also the exact leave-one-out drop of the history part), and
the residuals are reported under plain names. The method is ``exact``, and it is the default of
:func:`~engine.explain.explain_pair` for every model that offers the interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from engine.explain.algorithms.base import ExplainerAlgorithm
from engine.models.registry import DECOMPOSITION

# The residual terms, in the order they are reported, and their plain names.
RESIDUALS = {"taste profile": "taste profile", "popularity": "popularity"}
TERM_LABELS = {"history": "past interactions", "taste profile": "taste profile", "popularity": "popularity"}
# One line per term for a tooltip or a glossary.
TERM_MEANINGS = {
    "history": "the sum of one exact contribution per past interaction (listed below)",
    "taste profile": "what the user's whole history says about their taste in general (learned embeddings)",
    "popularity": "how much the item is chosen overall, the same for every user",
}


@dataclass
class DecompositionTarget:
    """One pair as the decomposition sees it.

    Attributes:
        model: the fitted model (offers ``contributions(user, item)``).
        user: internal user index.
        item: internal item index.
    """

    model: Any
    user: int
    item: int


@dataclass
class Decomposition:
    """The exact terms of one score.

    Attributes:
        history: ``[n]`` the user's history items (internal indices).
        contribution: ``[n]`` each one's term ``c(u, j, i)``.
        residuals: the named residual terms (``"taste profile"``, ``"popularity"``).
        score: the model's score.
    """

    history: np.ndarray
    contribution: np.ndarray
    residuals: dict[str, float]
    score: float

    @property
    def history_term(self) -> float:
        return float(self.contribution.sum())

    @property
    def gap(self) -> float:
        """``sum of the terms - score``: float32 round-off only."""
        return self.history_term + sum(self.residuals.values()) - self.score

    def terms(self) -> dict[str, float]:
        """``{"history": ..., "taste profile": ..., "popularity": ...}``."""
        return {"history": self.history_term, **self.residuals}


class ExactDecomposition(ExplainerAlgorithm):
    """The score's own terms: each past interaction's contribution, then taste profile and popularity."""

    name: ClassVar[str] = "exact"
    description: ClassVar[str] = (
        "exact decomposition: the model's score is a sum of one term per past interaction plus taste and popularity"
    )
    interfaces: ClassVar[tuple[str, ...]] = (DECOMPOSITION,)

    def decompose(self, target: DecompositionTarget) -> Decomposition:
        """The terms of ``score(target.user, target.item)`` from the model's ``contributions``."""
        c = target.model.contributions(int(target.user), int(target.item))
        residuals = {key: float(c[key]) for key in RESIDUALS}
        return Decomposition(
            history=np.asarray(c["history"], dtype=np.int64),
            contribution=np.asarray(c["contribution"], dtype=np.float64),
            residuals=residuals,
            score=float(c["score"]),
        )
