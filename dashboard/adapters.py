"""Thin adapters from engine results to what the pages draw (no Streamlit, no torch imports).

The explanation and audit objects come from ``ServedModel.explain`` and ``ServedModel.audit``
(:mod:`engine.service`); these helpers pick out the frames the components take,
and turn "this engine feature is not installed / not built yet" into a message
instead of a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from dashboard.components.why_focus import effect, percent

log = logging.getLogger(__name__)

UNAVAILABLE = (ImportError, NotImplementedError, AttributeError)


class FeatureUnavailableError(RuntimeError):
    """An engine feature the page needs is missing (e.g. explanations for a non-graph model)."""


def explain(rec: Any, user: str, item: str, **kwargs: Any) -> Any:
    """``rec.explain(user, item, **kwargs)``, with missing features reported as :class:`FeatureUnavailableError`.

    Raises:
        FeatureUnavailableError: the explanation module is absent or cannot explain this model.
    """
    try:
        return rec.explain(user, item, **kwargs)
    except UNAVAILABLE as exc:
        raise FeatureUnavailableError(
            f"Explanations are not available for this model yet ({type(exc).__name__}: {exc})."
        ) from exc
    except TypeError as exc:  # e.g. a model without attention / embeddings the explainer needs
        raise FeatureUnavailableError(f"This model cannot be explained ({exc}).") from exc


# ----------------------------------------------------------------------------- re-ranking
RERANKERS = {
    "none": "none",
    "mmr": "diversity (MMR)",
    "pop": "long-tail boost",
    "calibrated": "calibrated to history",
}


# ----------------------------------------------------------------------------- explanation graph
WIDTH_MEASURES = {
    "attribution": "Attribution (Integrated Gradients)",
    "attention": "Attention (softmax weight)",
    "influence": "Attention flow (rollout)",
}


def attention_heads(edges: pd.DataFrame) -> tuple[int, int]:
    """(layers, heads) present in an explanation's edge table (``att_l{l}_h{h}`` columns)."""
    cols = [c for c in edges.columns if c.startswith("att_l")]
    layers = {int(c.split("_")[1][1:]) for c in cols}
    heads = {int(c.split("_")[2][1:]) for c in cols}
    return len(layers), len(heads)


def _edge_measure(edges: pd.DataFrame, measure: str, layer: int | None, head: int | None) -> pd.Series:
    if measure != "attention":
        return edges[measure].astype(float)
    if layer is None and head is None:
        return edges["attention"].astype(float)
    n_layers, n_heads = attention_heads(edges)
    layers = [layer] if layer is not None else list(range(1, n_layers + 1))
    heads = [head] if head is not None else list(range(n_heads))
    cols = [f"att_l{layer_}_h{h}" for layer_ in layers for h in heads]
    return edges[cols].astype(float).mean(axis=1, skipna=True)


# Edges drawn at most: the display's 150 nodes can carry over a thousand interactions, a
# hairball in which the few that matter vanish (and that the browser must lay out first).
MAX_DISPLAY_EDGES = 300


def graph_frames(
    exp: Any,
    *,
    measure: str = "attribution",
    layer: int | None = None,
    head: int | None = None,
    max_edges: int = MAX_DISPLAY_EDGES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pruned display view of an explanation as the node and edge frames of the graph view.

    Each interaction (two directed edges) becomes one undirected edge. Its weight is the
    interaction's attribution, its attention flow (both directions summed), or its attention
    on the direction towards the pair (one layer and/or head, or the mean), NaN counted as 0.

    Args:
        exp: an :class:`engine.explain.Explanation`.
        measure: ``attribution``, ``attention`` or ``influence`` (default: ``attribution``).
        layer: 1-based layer for ``attention`` (default: None, mean over layers).
        head: 0-based head for ``attention`` (default: None, mean over heads).
        max_edges: edges kept: every edge of the user and of the target item, then the
            largest by absolute weight (default: :data:`MAX_DISPLAY_EDGES`).

    Returns:
        ``(nodes, edges)`` as :func:`dashboard.components.graph_view.network_html` takes them.
    """
    if measure not in WIDTH_MEASURES:
        raise ValueError(f"unknown edge measure {measure!r}; expected one of {list(WIDTH_MEASURES)}")
    sub = exp.subgraph_nodes
    shown = sub[sub["in_display"].astype(bool)]
    user_node = shown.loc[(shown["type"] == "user") & (shown["id"] == exp.user_id), "node"]
    item_node = shown.loc[(shown["type"] == "item") & (shown["id"] == exp.item_id), "node"]
    user_node = int(user_node.iloc[0]) if len(user_node) else -1
    item_node = int(item_node.iloc[0]) if len(item_node) else -1
    history_nodes = set()
    edges = exp.edges
    if len(edges):
        own = edges[(edges["src"] == user_node) | (edges["dst"] == user_node)]
        history_nodes = set(own["src"]).union(own["dst"]) - {user_node}

    def kind(row: Any) -> str:
        if row.node == user_node:
            return "user"
        if row.node == item_node:
            return "target"
        if row.type == "user":
            return "other_user"
        return "history" if row.node in history_nodes else "item"

    nodes = pd.DataFrame(
        {
            "id": shown["node"].astype(int).to_numpy(),
            "kind": [kind(r) for r in shown.itertuples(index=False)],
            "label": [
                str(t) if isinstance(t, str) and t else str(i) for t, i in zip(shown["title"], shown["id"], strict=True)
            ],
            "detail": [
                _node_words(t, i, h, v)
                for t, i, h, v in zip(shown["type"], shown["id"], shown["hop"], shown["influence"], strict=True)
            ],
            "importance": shown["influence"].astype(float).to_numpy(),
        }
    )
    if not len(edges):
        return nodes, pd.DataFrame(columns=["src", "dst", "weight", "detail"])
    view = edges[edges["in_display"].astype(bool)].copy()
    view["value"] = _edge_measure(view, measure, layer, head).fillna(0.0)
    if measure == "attention":
        hop = dict(zip(sub["node"], sub["hop"], strict=True))
        towards = view["dst"].map(hop) <= view["src"].map(hop)
        view = view[towards]
        agg = view.groupby("interaction", sort=False).agg(
            src=("src", "first"),
            dst=("dst", "first"),
            weight=("value", "mean"),
            rank=("rank", "first"),
            attribution=("interaction_attribution", "first"),
        )
    else:
        how = "first" if measure == "attribution" else "sum"
        column = "interaction_attribution" if measure == "attribution" else "value"
        agg = view.groupby("interaction", sort=False).agg(
            src=("src", "first"),
            dst=("dst", "first"),
            weight=(column, how),
            rank=("rank", "first"),
            attribution=("interaction_attribution", "first"),
        )
    names = dict(zip(sub["node"], [_name(t, i) for t, i in zip(sub["title"], sub["id"], strict=True)], strict=True))
    per_interaction = edges.groupby("interaction", sort=False)["interaction_attribution"].first()
    total, n_inter = float(per_interaction.abs().sum()), len(per_interaction)
    agg["detail"] = [
        f"{names.get(a, '?')} – {names.get(b, '?')}: "
        + effect(float(v) / total if total > 0 else 0.0)
        + f" (#{int(r)} of {n_inter:,} interactions)"
        for a, b, r, v in zip(agg["src"], agg["dst"], agg["rank"], agg["attribution"], strict=True)
    ]
    out = agg.reset_index(drop=True)[["src", "dst", "weight", "detail"]]
    out["src"] = out["src"].astype(int)
    out["dst"] = out["dst"].astype(int)
    if len(out) > max_edges:
        out = _cap_edges(out, (user_node, item_node), max_edges)
    return nodes, out.reset_index(drop=True)


def _name(title: Any, ext_id: Any) -> str:
    return str(title) if isinstance(title, str) and title else str(ext_id)


_STEPS = {0: "in the pair", 1: "one step from the pair", 2: "two steps from the pair"}


def _node_words(kind: str, ext_id: Any, hop: Any, influence: Any) -> str:
    """A node's tooltip line in words (its external id, never the subgraph's node index)."""
    where = _STEPS.get(int(hop), f"{int(hop)} steps from the pair")
    who = f"user {ext_id}" if kind == "user" else f"item {ext_id}"
    return f"{who}, {where}; {percent(float(influence))} of the attention flow into the pair"


def _cap_edges(edges: pd.DataFrame, pair: tuple[int, int], max_edges: int) -> pd.DataFrame:
    """The pair's edges, then the strongest others up to ``max_edges``; no shown node left without an edge."""
    touches = edges["src"].isin(pair) | edges["dst"].isin(pair)
    order = (~touches).astype(int).to_frame("rest").assign(size=-edges["weight"].abs())
    keep = set(order.sort_values(["rest", "size"], kind="stable").index[:max_edges])
    ends = pd.concat([edges["src"], edges["dst"]])  # node of each (edge, end), indexed by edge
    covered = set(ends[ends.index.isin(keep)])
    loose = ends[~ends.isin(covered)]
    if len(loose):
        # A node whose every edge was cut would drift off the canvas: keep its strongest one.
        strength = edges["weight"].abs().reindex(loose.index)
        keep |= set(strength.groupby(loose.to_numpy()).idxmax())
    return edges.loc[sorted(keep)]
