"""The result of one explanation: why item ``i`` for user ``u``, as tidy frames (PyG's ``Explanation``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from engine.explain.counterfactual import Counterfactual


@dataclass
class Explanation:
    """Why an item is recommended to a user; every table is a tidy DataFrame.

    Attributes:
        user_id / item_id / item_title: the pair (external ids, plain-text title).
        method: the explanation method (:func:`~engine.explain.algorithms.method_names`).
        score: the model's score for the pair.
        rank: the item's rank in the user's list (items they have not seen); None if
            the item is in their training history.
        reason: one or two plain-language sentences built from the numbers below.
        subgraph_nodes: the computation subgraph's nodes: ``node``, ``type``
            (``user``/``item``), ``id``, ``title``, ``hop`` (to the nearer end of the
            pair), ``hop_user``, ``hop_item``, ``influence_user``, ``influence_item``
            (attention rollout of the node's input on each embedding, each summing to 1),
            ``influence`` (their mean), ``in_display`` (the pruned top-N view).
        edges: one row per directed edge of the subgraph: ``src``, ``dst`` (node ids),
            ``src_id``/``dst_id``/``src_title``/``dst_title``, ``direction``, ``interaction``,
            ``att_l{l}_h{h}`` (softmax attention per layer and head; NaN where that layer
            does not read the edge for this score), ``coef_l{l}`` (effective propagation
            weight, mean over heads), ``attention`` (mean over the layers that read it and
            over heads),
            ``self_loop`` (always False: the model has no self-loops; a node's own input
            enters through the layer mean), ``influence_user``/``influence_item``/
            ``influence`` (attention flow), ``attribution`` (this edge's attribution),
            ``interaction_attribution``, ``rank`` (of the interaction), ``in_display``.
        interactions: one row per interaction (user-item pair) in the subgraph: ``user_id``,
            ``item_id``, ``title``, ``kind`` (``history``: the user's own; ``audience``:
            another user's interaction with the item; ``context``: deeper), ``attention``
            (raw softmax attention on the direction towards the pair, e.g. the attention the
            user pays to a history item), ``influence`` (attention flow, both directions),
            ``attribution`` (sum over its directed edges), ``share`` (of the total absolute
            edge attribution), ``rank``.
        feature_groups: ``group``, ``label``, ``available``, ``attribution``, ``share``.
        history_influence: each training interaction of the user: ``item_id``, ``title``,
            ``rating``, ``attention``, ``influence`` (rollout flow into the user's
            embedding), ``attribution``, ``share``, ``share_of_history``, ``rank``.
        counterfactual: the verified smallest removal set (None for a fallback).
        timings: seconds per stage.
        completeness: IG check, ``sum(attributions) - (score - baseline score)``.
        fallback: None, or why no personalised explanation exists.
    """

    user_id: str
    item_id: str
    item_title: str
    method: str
    score: float
    rank: int | None
    reason: str
    subgraph_nodes: pd.DataFrame
    edges: pd.DataFrame
    interactions: pd.DataFrame
    feature_groups: pd.DataFrame
    history_influence: pd.DataFrame
    counterfactual: Counterfactual | None
    timings: dict[str, float] = field(default_factory=dict)
    completeness: float = float("nan")
    baseline_score: float = float("nan")
    fallback: str | None = None

    @property
    def self_influence(self) -> dict[str, float] | None:
        """Rollout share of the user's / item's embedding that comes from its own input.

        The model has no self-loop edges; this is where a node's own layer-0 input goes
        (the layer mean and return paths), reported apart from the edges.
        """
        nodes = self.subgraph_nodes
        if nodes.empty or "influence_user" not in nodes:
            return None
        user = nodes.loc[(nodes["type"] == "user") & (nodes["id"] == self.user_id), "influence_user"]
        item = nodes.loc[(nodes["type"] == "item") & (nodes["id"] == self.item_id), "influence_item"]
        return {"user": float(user.iloc[0]), "item": float(item.iloc[0])}

    def to_dict(self, *, top_edges: int = 15) -> dict[str, Any]:
        """A JSON-ready summary: reason, top interactions, feature groups, history, counterfactual."""
        top = self.interactions.head(top_edges) if len(self.interactions) else self.interactions
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "item_title": self.item_title,
            "method": self.method,
            "score": self.score,
            "rank": self.rank,
            "reason": self.reason,
            "fallback": self.fallback,
            "top_edges": _records(top),
            "feature_groups": _records(self.feature_groups),
            "history": _records(self.history_influence.head(top_edges)),
            "counterfactual": None if self.counterfactual is None else self.counterfactual.to_dict(),
            "self_influence": self.self_influence,
            "subgraph": {
                "nodes": len(self.subgraph_nodes),
                "edges": len(self.edges),
                "interactions": len(self.interactions),
                "display_nodes": int(self.subgraph_nodes["in_display"].sum()) if len(self.subgraph_nodes) else 0,
            },
            "baseline_score": self.baseline_score,
            "completeness_gap": self.completeness,
            "timings": self.timings,
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None)
    return out.to_dict("records")
