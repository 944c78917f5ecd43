"""Attention as an explanation: the raw softmax weights, and their rollout into influence flow.

Neither attributes the score (they say where the model looked, not what moved the number;
``gatlens explain-eval`` measures how faithful that is), and neither covers feature groups.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.explain.algorithms.base import ExplainerAlgorithm, GraphTarget, spread_over_edges
from engine.explain.attention import interaction_sum, pair_attention
from engine.explain.attribution import EdgeAttribution
from engine.models.registry import ATTENTION_GRAPH


class Attention(ExplainerAlgorithm):
    """Raw softmax attention of each interaction on its direction towards the pair."""

    name: ClassVar[str] = "attention"
    description: ClassVar[str] = "raw attention weights (where the model looked)"
    interfaces: ClassVar[tuple[str, ...]] = (ATTENTION_GRAPH,)

    def attribute_edges(self, target: GraphTarget) -> EdgeAttribution:
        return spread_over_edges(pair_attention(target.attention, target.scorer.sub), target, self.name)


class Rollout(ExplainerAlgorithm):
    """Attention flow through each interaction into the user's and the item's embeddings (exact for fixed attention)."""

    name: ClassVar[str] = "rollout"
    description: ClassVar[str] = "attention rollout: attention flow into the pair's embeddings"
    interfaces: ClassVar[tuple[str, ...]] = (ATTENTION_GRAPH,)

    def attribute_edges(self, target: GraphTarget) -> EdgeAttribution:
        att, sub = target.attention, target.scorer.sub
        flow = interaction_sum((att.flow_user + att.flow_item).astype(np.float64), sub)
        return spread_over_edges(flow, target, self.name)
