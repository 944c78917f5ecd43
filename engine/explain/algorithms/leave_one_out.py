"""Exact leave-one-out: the score drop when one of the user's past interactions is removed.

Not an approximation: each removal is re-scored by the model itself. On the attention graph
the removal is the model's own (the interaction leaves the softmax and both ends' degrees;
:func:`~engine.explain.faithfulness.leave_one_out`); on a history-scores model the history
row loses the item and the model re-scores it. Only the user's own interactions are
attributed (others' are NaN), and no feature groups.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from engine.explain.algorithms.base import (
    ExplainerAlgorithm,
    GraphTarget,
    HistoryTarget,
    spread_over_edges,
)
from engine.explain.attribution import EdgeAttribution
from engine.explain.faithfulness import leave_one_out
from engine.models.registry import ATTENTION_GRAPH, HISTORY_SCORES


class LeaveOneOut(ExplainerAlgorithm):
    """Exact score drop of removing each history interaction alone."""

    name: ClassVar[str] = "leave-one-out"
    description: ClassVar[str] = "exact leave-one-out: the score drop when one past interaction is removed"
    interfaces: ClassVar[tuple[str, ...]] = (ATTENTION_GRAPH, HISTORY_SCORES)

    def attribute_edges(self, target: GraphTarget) -> EdgeAttribution:
        sub = target.scorer.sub
        own = np.flatnonzero(sub.interactions[:, 0] == sub.user)
        values = np.full(sub.num_interactions, np.nan)
        values[own] = leave_one_out(target.scorer, own)
        return spread_over_edges(values, target, self.name)

    @torch.no_grad()
    def attribute_history(self, target: HistoryTarget) -> np.ndarray:
        rows = target.row.unsqueeze(0).repeat(len(target.history) + 1, 1)
        hist = torch.as_tensor(target.history, dtype=torch.long)
        rows[torch.arange(1, len(hist) + 1), hist] = 0.0  # row 0 keeps the whole history
        scores = target.model.score_history(rows)[:, target.item].double().numpy()
        return scores[0] - scores[1:]
