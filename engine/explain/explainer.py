"""The orchestrator: why does the model recommend item ``i`` to user ``u``?

One call assembles the pieces, each a module of its own: the computation subgraph
(:mod:`~engine.explain.subgraph`), attention and its rollout
(:mod:`~engine.explain.attention`), Captum attributions over edges and feature groups
(:mod:`~engine.explain.attribution`), a verified counterfactual
(:mod:`~engine.explain.counterfactual`) and the plain-language reason
(:mod:`~engine.explain.text`). The result is an :class:`Explanation` of tidy frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.schema import CATEGORIES, ITEM, TITLE
from engine.data.split import W_RATING, I, U
from engine.errors import NO_HISTORY, UnknownItemError
from engine.explain.attention import AttentionResult, interaction_sum, pair_attention, rollout
from engine.explain.attribution import EdgeAttribution, edge_attributions, group_attributions
from engine.explain.counterfactual import Counterfactual, find_counterfactual, layer_states, ranks
from engine.explain.resolve import require_attention_model
from engine.explain.subgraph import (
    FEATURE_GROUPS,
    ComputationSubgraph,
    SubgraphScorer,
    extract_subgraph,
    graph_index,
    input_parts,
    single_thread,
)
from engine.explain.text import reason_fallback, reason_for
from engine.recommender import Recommender

GROUP_LABELS = {
    "categories": "item categories",
    "text": "language-model text",
    "id": "id embeddings (collaborative)",
    "edge_weight": "edge weights (rating, recency)",
}


@dataclass
class Explanation:
    """Why an item is recommended to a user; every table is a tidy DataFrame.

    Attributes:
        user_id / item_id / item_title: the pair (external ids, plain-text title).
        method: the attribution method (``ig``, ``saliency`` or ``ablation``).
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


# -- the orchestrator ---------------------------------------------------------------------------
@single_thread()  # a context-manager decorator: one torch thread for the whole explanation
def explain_pair(
    rec: Recommender,
    user_id: str,
    item_id: str,
    *,
    method: str = "ig",
    steps: int = 16,
    top_n_display: int = 150,
    k: int = 10,
    counterfactual: bool = True,
) -> Explanation:
    """Explain why ``item_id`` scores as it does for ``user_id``.

    Args:
        rec: a :class:`~engine.recommender.Recommender` holding the ``gat`` model.
        user_id: external user id.
        item_id: external item id.
        method: ``"ig"`` (Integrated Gradients), ``"saliency"`` or ``"ablation"``
            (default: ``"ig"``).
        steps: IG integration points over the edges (default: 16); the feature groups use
            a quarter as many (at least 4): their path is smooth (Gauss-Legendre with 4
            points closes completeness to <0.5% of the score on ml-100k) and each of their
            steps costs a full layer-1 pass.
        top_n_display: nodes kept in the pruned display view (default: 150).
        k: list length for the counterfactual (default: 10).
        counterfactual: search for the verified counterfactual (default: True).

    Returns:
        An :class:`Explanation`; for a user without training history, one that says the
        list is a popularity fallback.

    Raises:
        UnknownUserError / UnknownItemError: for ids not in the dataset.
        ValueError: for a model other than ``gat``, or a bad option.
    """
    t_start = time.perf_counter()
    user_id, item_id = str(user_id), str(item_id)
    if not rec.idmap.has_item(item_id):
        raise UnknownItemError(item_id)
    status = rec._require_user(user_id)
    require_attention_model(rec)
    if top_n_display < 2:
        raise ValueError(f"top_n_display must be >= 2 (got {top_n_display!r})")
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k!r})")
    item = rec.idmap.item_index(item_id)
    title = str(rec.items[TITLE].iloc[item])
    if status == NO_HISTORY:
        return _fallback(rec, user_id, item_id, item, title, method)

    timings: dict[str, float] = {}
    model = rec.model
    model.eval()
    u = rec.idmap.user_index(user_id)

    t = time.perf_counter()
    sub = extract_subgraph(graph_index(rec), u, item, len(model.convs))
    scorer = SubgraphScorer(model, sub, input_parts(rec))
    timings["subgraph"] = time.perf_counter() - t

    t = time.perf_counter()
    with torch.no_grad():
        score_t, atts = scorer.forward(return_attention=True)
    att = rollout(sub, atts)
    timings["attention"] = time.perf_counter() - t

    t = time.perf_counter()
    edge_attr = edge_attributions(scorer, method=method, steps=steps)
    timings["edge_attribution"] = time.perf_counter() - t

    t = time.perf_counter()
    groups = group_attributions(scorer, method=method, steps=max(4, steps // 4))
    timings["feature_attribution"] = time.perf_counter() - t

    t = time.perf_counter()
    history = rec.train_items(u)
    states = layer_states(rec)
    all_scores = (states.final[rec.idmap.n_users :] @ states.final[u]).numpy()
    rank = int(ranks(all_scores, history)[item]) or None
    nodes = _node_frame(rec, sub, att, top_n_display)
    edges, inter = _edge_frames(rec, sub, att, edge_attr, nodes)
    hist = _history_frame(rec, u, sub, inter)
    feat = _group_frame(groups)
    timings["tables"] = time.perf_counter() - t

    cf = None
    if counterfactual:
        t = time.perf_counter()
        candidates = hist[hist["attribution"] > 0]
        cf = find_counterfactual(rec, u, item, candidates, k=k)
        timings["counterfactual"] = time.perf_counter() - t

    categories = tuple(rec.items[CATEGORIES].iloc[item])
    text = reason_for(
        title=title,
        item_categories=categories,
        history=hist,
        interactions=inter,
        feature_groups=feat,
        rated=rec.dataset.rating_scale is not None,
        high_rating=_high_rating(rec),
        counterfactual=cf,
        in_history=rank is None,
    )
    timings["total"] = time.perf_counter() - t_start
    return Explanation(
        user_id=user_id,
        item_id=item_id,
        item_title=title,
        method=method,
        score=float(score_t[0]),
        rank=rank,
        reason=text,
        subgraph_nodes=nodes,
        edges=edges,
        interactions=inter,
        feature_groups=feat,
        history_influence=hist,
        counterfactual=cf,
        timings={key: round(v, 4) for key, v in timings.items()},
        completeness=edge_attr.delta,
        baseline_score=edge_attr.baseline_score,
    )


def _high_rating(rec: Recommender) -> float:
    """What counts as rating an item "highly": 4 on a 1-5 scale, the top fifth in general."""
    scale = rec.dataset.rating_scale
    if scale is None:
        return float("inf")
    lo, hi = scale
    return lo + 0.75 * (hi - lo)


def _fallback(rec: Recommender, user_id: str, item_id: str, item: int, title: str, method: str) -> Explanation:
    pop = rec.item_popularity
    pop_rank = int((pop > pop[item]).sum()) + 1
    empty = pd.DataFrame()
    fallback = "most popular (this user has no training history)"
    return Explanation(
        user_id=user_id,
        item_id=item_id,
        item_title=title,
        method=method,
        score=float(pop[item]),
        rank=None,
        reason=reason_fallback(title, pop_rank, int(pop[item])),
        subgraph_nodes=pd.DataFrame(columns=["node", "type", "id", "title", "in_display"]),
        edges=empty,
        interactions=pd.DataFrame(columns=["user_id", "item_id", "title", "attribution"]),
        feature_groups=empty,
        history_influence=empty,
        counterfactual=None,
        fallback=fallback,
    )


# -- frames ---------------------------------------------------------------------------------------
def _labels(rec: Recommender, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(type, external id, title) for global node ids; users have no title."""
    nu = rec.idmap.n_users
    is_user = nodes < nu
    users = np.asarray(rec.idmap.users, dtype=object)
    items = np.asarray(rec.idmap.items, dtype=object)
    titles = rec.items[TITLE].to_numpy(dtype=object)
    ids = np.where(is_user, users[np.where(is_user, nodes, 0)], items[np.where(is_user, 0, nodes - nu)])
    title = np.where(is_user, None, titles[np.where(is_user, 0, nodes - nu)])
    kind = np.where(is_user, "user", "item")
    return kind, ids, title


def _node_frame(rec: Recommender, sub: ComputationSubgraph, att: AttentionResult, top_n: int) -> pd.DataFrame:
    kind, ids, title = _labels(rec, sub.nodes)
    frame = pd.DataFrame(
        {
            "node": sub.nodes,
            "type": kind,
            "id": ids,
            "title": title,
            "hop": sub.hop,
            "hop_user": sub.hop_user,
            "hop_item": sub.hop_item,
            "influence_user": att.node_user,
            "influence_item": att.node_item,
        }
    )
    frame["influence"] = 0.5 * (frame["influence_user"] + frame["influence_item"])
    frame["in_display"] = _display_set(sub, frame["influence"].to_numpy(), top_n)
    return frame


def _display_set(sub: ComputationSubgraph, influence: np.ndarray, top_n: int) -> np.ndarray:
    """Top-N nodes by influence, kept connected: a node comes with its best parent on the way in."""
    n = sub.num_nodes
    src, dst = sub.edge_index.numpy()
    hop = sub.hop
    # Parent of v: the neighbour one hop closer to the pair with the largest influence.
    closer = hop[dst] == hop[src] - 1
    parent = np.full(n, -1)
    if closer.any():
        cand = pd.DataFrame({"child": src[closer], "parent": dst[closer], "w": influence[dst[closer]]})
        best = cand.sort_values("w", ascending=False, kind="stable").drop_duplicates("child")
        parent[best["child"].to_numpy()] = best["parent"].to_numpy()
    keep = np.zeros(n, dtype=bool)
    keep[[sub.local_user, sub.local_item]] = True
    count = int(keep.sum())
    for v in np.argsort(-influence, kind="stable"):
        if count >= top_n:
            break
        chain = []
        while v >= 0 and not keep[v]:
            chain.append(v)
            v = parent[v]
        if count + len(chain) > top_n:
            continue
        keep[chain] = True
        count += len(chain)
    return keep


def _edge_frames(
    rec: Recommender, sub: ComputationSubgraph, att: AttentionResult, attr: EdgeAttribution, nodes: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    nu = rec.idmap.n_users
    src_l, dst_l = sub.edge_index.numpy()
    src, dst = sub.nodes[src_l], sub.nodes[dst_l]
    _, ids, titles = _labels(rec, sub.nodes)
    pair = sub.pair.numpy()
    inter_attr = interaction_sum(attr.values.astype(np.float64), sub)
    inter_att = pair_attention(att, sub)
    flow = 0.5 * (att.flow_user + att.flow_item)
    inter_flow = interaction_sum(flow.astype(np.float64), sub)
    order = np.argsort(-np.nan_to_num(inter_attr, nan=-np.inf), kind="stable")
    inter_rank = np.empty(sub.num_interactions, dtype=np.int64)
    inter_rank[order] = np.arange(1, sub.num_interactions + 1)
    display = nodes["in_display"].to_numpy()

    cols: dict[str, Any] = {
        "src": src,
        "dst": dst,
        "src_id": ids[src_l],
        "dst_id": ids[dst_l],
        "src_title": titles[src_l],
        "dst_title": titles[dst_l],
        "direction": np.where(src < nu, "user->item", "item->user"),
        "interaction": pair,
    }
    n_layers, _, heads = att.alpha.shape
    for layer in range(n_layers):
        for h in range(heads):
            cols[f"att_l{layer + 1}_h{h}"] = att.alpha[layer, :, h]
    for layer in range(n_layers):
        cols[f"coef_l{layer + 1}"] = att.coef[layer]
    cols["attention"] = att.mean_alpha
    cols["self_loop"] = np.zeros(sub.num_edges, dtype=bool)
    cols["influence_user"] = att.flow_user
    cols["influence_item"] = att.flow_item
    cols["influence"] = flow
    cols["attribution"] = attr.values
    cols["interaction_attribution"] = inter_attr[pair]
    cols["rank"] = inter_rank[pair]
    cols["in_display"] = display[src_l] & display[dst_l]
    edges = pd.DataFrame(cols)

    users_g, items_g = sub.interactions[:, 0], sub.interactions[:, 1]
    kind = np.where(users_g == sub.user, "history", np.where(items_g == nu + sub.item, "audience", "context"))
    total = float(np.abs(np.nan_to_num(inter_attr)).sum())
    inter = pd.DataFrame(
        {
            "user_id": np.asarray(rec.idmap.users, dtype=object)[users_g],
            "item_id": np.asarray(rec.idmap.items, dtype=object)[items_g - nu],
            "title": rec.items[TITLE].to_numpy(dtype=object)[items_g - nu],
            "kind": kind,
            "attention": inter_att,
            "influence": inter_flow,
            "attribution": inter_attr,
            "share": inter_attr / total if total > 0 else np.zeros(sub.num_interactions),
            "rank": inter_rank,
        }
    )
    inter = inter.sort_values("rank", kind="stable").reset_index(drop=True)
    return edges, inter


def _history_frame(rec: Recommender, u: int, sub: ComputationSubgraph, inter: pd.DataFrame) -> pd.DataFrame:
    train = rec.prep.split.train
    rows = train[train[U] == u]
    scale = rec.dataset.rating_scale
    if scale is None:
        rating = np.full(len(rows), np.nan)
    else:
        lo, hi = scale
        rating = np.round((lo + rows[W_RATING].to_numpy(np.float64) * (hi - lo)) * 2) / 2
    items = rows[I].to_numpy()
    frame = pd.DataFrame(
        {
            "i": items,
            ITEM: np.asarray(rec.idmap.items, dtype=object)[items],
            TITLE: rec.items[TITLE].to_numpy(dtype=object)[items],
            CATEGORIES: rec.items[CATEGORIES].to_numpy(dtype=object)[items],
            "rating": rating,
        }
    )
    own = inter[inter["kind"] == "history"].set_index("item_id")
    frame = frame.join(own[["attention", "influence", "attribution", "share"]], on=ITEM)
    total = float(np.abs(frame["attribution"].fillna(0.0)).sum())
    frame["share_of_history"] = frame["attribution"] / total if total > 0 else 0.0
    frame = frame.sort_values("attribution", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


def _group_frame(groups: Any) -> pd.DataFrame:
    total = float(np.abs(groups.values).sum())
    return pd.DataFrame(
        {
            "group": list(FEATURE_GROUPS),
            "label": [GROUP_LABELS[g] for g in FEATURE_GROUPS],
            "available": groups.available,
            "attribution": groups.values,
            "share": groups.values / total if total > 0 else np.zeros(len(FEATURE_GROUPS)),
        }
    )
