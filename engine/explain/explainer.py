"""The orchestrator: why does the model recommend item ``i`` to user ``u``?

:func:`explain_pair` is PyG's ``Explainer``: it checks that the requested method
(:mod:`~engine.explain.algorithms`) supports the model, runs it and assembles an
:class:`~engine.explain.explanation.Explanation` of tidy frames. For the attention model the
pieces are modules of their own: the computation subgraph (:mod:`~engine.explain.subgraph`),
attention and its rollout (:mod:`~engine.explain.attention`), the method's attributions over
edges and feature groups, a verified counterfactual (:mod:`~engine.explain.counterfactual`)
and the plain-language reason (:mod:`~engine.explain.text`). Models that re-score an edited
history are explained by :mod:`~engine.explain.history`, models whose score decomposes exactly
by :mod:`~engine.explain.decomposed` (their default method is ``exact``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.schema import CATEGORIES, TITLE
from engine.errors import NO_HISTORY, UnknownItemError
from engine.explain.algorithms import ExplainerAlgorithm, GraphTarget, methods_for, require_support
from engine.explain.attention import AttentionResult, interaction_sum, pair_attention, rollout
from engine.explain.attribution import EdgeAttribution, GroupAttribution, available_groups
from engine.explain.counterfactual import find_counterfactual, layer_states, ranks
from engine.explain.decomposed import explain_decomposed
from engine.explain.explanation import Explanation
from engine.explain.history import explain_history, high_rating, history_frame
from engine.explain.resolve import require_attention_model as require_attention_model  # re-exported
from engine.explain.scorer import SubgraphScorer
from engine.explain.subgraph import (
    FEATURE_GROUPS,
    ComputationSubgraph,
    extract_subgraph,
    graph_index,
    input_parts,
    single_thread,
)
from engine.explain.text import reason_fallback, reason_for
from engine.models.registry import ATTENTION_GRAPH, DECOMPOSITION
from engine.recommender import Recommender

GROUP_LABELS = {
    "categories": "item categories",
    "text": "language-model text",
    "id": "id embeddings (collaborative)",
    "edge_weight": "edge weights (rating, recency)",
}


# -- the orchestrator ---------------------------------------------------------------------------
@single_thread()  # a context-manager decorator: one torch thread for the whole explanation
def explain_pair(
    rec: Recommender,
    user_id: str,
    item_id: str,
    *,
    method: str | None = None,
    steps: int = 16,
    top_n_display: int = 150,
    k: int = 10,
    counterfactual: bool = True,
) -> Explanation:
    """Explain why ``item_id`` scores as it does for ``user_id``.

    Args:
        rec: a :class:`~engine.recommender.Recommender` whose model the method supports.
        user_id: external user id.
        item_id: external item id.
        method: a registered explanation method that supports the model: ``"ig"``
            (Integrated Gradients), ``"saliency"``, ``"ablation"``, ``"attention"``,
            ``"rollout"`` or ``"leave-one-out"`` for the attention model, ``"exact"`` for a
            model whose score decomposes exactly
            (:func:`~engine.explain.algorithms.methods_for`) (default: None:
            :func:`default_method`, ``"exact"`` where the model offers it, else ``"ig"``).
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
        UnsupportedModelError: for a method that does not support the model (a ValueError).
        ValueError: for an unknown method or a bad option.
    """
    t_start = time.perf_counter()
    user_id, item_id = str(user_id), str(item_id)
    if not rec.idmap.has_item(item_id):
        raise UnknownItemError(item_id)
    status = rec._require_user(user_id)
    method = default_method(rec.model_name) if method is None else method
    spec, algo = require_support(method, rec.model_name)
    if top_n_display < 2:
        raise ValueError(f"top_n_display must be >= 2 (got {top_n_display!r})")
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k!r})")
    item = rec.idmap.item_index(item_id)
    title = str(rec.items[TITLE].iloc[item])
    if status == NO_HISTORY:
        return _fallback(rec, user_id, item_id, item, title, method)
    if DECOMPOSITION in spec.capabilities.explain and DECOMPOSITION in algo.interfaces:
        return explain_decomposed(rec, algo, user_id, item_id, k=k, counterfactual=counterfactual, t_start=t_start)
    if not (ATTENTION_GRAPH in spec.capabilities.explain and ATTENTION_GRAPH in algo.interfaces):
        return explain_history(rec, algo, user_id, item_id, k=k, t_start=t_start)
    options = {"steps": steps, "top_n_display": top_n_display, "k": k, "counterfactual": counterfactual}
    return _explain_graph(rec, algo, user_id, item_id, t_start=t_start, **options)


# Tried in this order when no method is asked for: a model's own exact arithmetic needs no
# approximation; Integrated Gradients is the attention graph's faithful method.
DEFAULT_METHODS = ("exact", "ig")


def default_method(model: str) -> str:
    """The explanation method used when none is asked for: the first of :data:`DEFAULT_METHODS` the
    model supports (``"exact"`` for a model whose score decomposes exactly, ``"ig"`` for the attention
    graph), else the first method that supports it, else ``"ig"`` (which then refuses clearly)."""
    supported = methods_for(model)
    return next((m for m in DEFAULT_METHODS if m in supported), supported[0] if supported else "ig")


def _explain_graph(
    rec: Recommender,
    algo: ExplainerAlgorithm,
    user_id: str,
    item_id: str,
    *,
    t_start: float,
    steps: int,
    top_n_display: int,
    k: int,
    counterfactual: bool,
) -> Explanation:
    """:func:`explain_pair` for an attention-graph model (a user with history)."""
    method = algo.name
    item = rec.idmap.item_index(item_id)
    title = str(rec.items[TITLE].iloc[item])
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
    target = GraphTarget(scorer, att, steps)
    edge_attr = algo.attribute_edges(target)
    timings["edge_attribution"] = time.perf_counter() - t

    t = time.perf_counter()
    groups = algo.attribute_groups(target)
    timings["feature_attribution"] = time.perf_counter() - t

    t = time.perf_counter()
    history = rec.train_items(u)
    states = layer_states(rec)
    all_scores = (states.final[rec.idmap.n_users :] @ states.final[u]).numpy()
    rank = int(ranks(all_scores, history)[item]) or None
    nodes = _node_frame(rec, sub, att, top_n_display)
    edges, inter = _edge_frames(rec, sub, att, edge_attr, nodes)
    hist = history_frame(rec, u, inter)
    feat = _group_frame(scorer, groups)
    timings["tables"] = time.perf_counter() - t

    cf = None
    if counterfactual:
        t = time.perf_counter()
        candidates = hist[hist["attribution"] > 0]
        cf = find_counterfactual(rec, u, item, candidates, k=k)
        timings["counterfactual"] = time.perf_counter() - t

    categories = tuple(rec.items[CATEGORIES].iloc[item])
    text = reason_for(
        user_id=user_id,
        title=title,
        item_categories=categories,
        history=hist,
        interactions=inter,
        feature_groups=feat,
        rated=rec.dataset.rating_scale is not None,
        high_rating=high_rating(rec),
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
        reason=reason_fallback(title, pop_rank, int(pop[item]), user_id=user_id),
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


def _group_frame(scorer: SubgraphScorer, groups: GroupAttribution | None) -> pd.DataFrame:
    """One row per feature group; NaN attributions for a method that does not attribute groups."""
    if groups is None:
        values = np.full(len(FEATURE_GROUPS), np.nan)
        return pd.DataFrame(
            {
                "group": list(FEATURE_GROUPS),
                "label": [GROUP_LABELS[g] for g in FEATURE_GROUPS],
                "available": available_groups(scorer.model),
                "attribution": values,
                "share": values,
            }
        )
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
