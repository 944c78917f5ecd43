"""What the Why page says, in words and in a focused graph, from any kind of explanation (pure functions).

An :class:`engine.explain.Explanation` is either an attention-graph one (``uigat``: a computation
subgraph, per-interaction Integrated Gradients attributions, feature groups, a counterfactual)
or a history one (a decomposable model: one exact contribution per past interaction, perhaps
named residual terms, no subgraph). Everything here reads only the frames both kinds share
(``interactions``, ``history_influence``, ``counterfactual``) plus the graph's extras where they
exist, and returns plain text, tidy frames, or node and edge frames for
:func:`dashboard.components.graph_view.network_html`. No Streamlit, no engine imports.

Tooltips and labels never show internal node indices: a node is named by its title or its
external user id, and every figure is a share of the recommendation in percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAX_PAST_ITEMS = 15  # past items in the focused graph: more stops being readable at 1440 px
MAX_CO_CONSUMERS = 5  # other users who chose the item, strongest first
MAX_CF_ROWS = 10  # counterfactual rows shown before "+N more"
RESIDUAL_COLUMNS = ("label", "contribution", "meaning")

# Fixed layout (vis-network units; the view is fitted to the frame): user left, past items in a
# column, the item right, co-consumers in an arc beyond it. Nothing moves after the first draw.
# The extents match the frame's shape (about 1:1), so fitting the view keeps the text large.
_X_USER, _X_PAST, _X_ITEM, _RADIUS = -300.0, 0.0, 300.0, 190.0
_ROW = 50.0


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def percent(share: float) -> str:
    """A share as a percent a person reads: ``23 %``, ``0.4 %``, ``< 0.1 %``."""
    share = abs(share)
    if share >= 0.095:
        return f"{share:.0%}".replace("%", " %")
    if share >= 0.001:
        return f"{share * 100:.1f} %"
    return "< 0.1 %"


def effect(share: float) -> str:
    """``counts for 23 % of this recommendation`` or ``weighs against it (3 %)``."""
    if share < 0:
        return f"weighs against this recommendation ({percent(share)})"
    return f"counts for {percent(share)} of this recommendation"


def stars(rating: Any) -> str:
    """``5★`` for a rating, ``""`` for implicit feedback."""
    value = _num(rating)
    return f"{value:g}★" if value == value else ""


def rating_phrase(user: str, rating: float, *, title: str | None = None) -> str:
    """``u0042 rated it 5★`` (or ``… chose it`` for implicit feedback)."""
    what = title if title else "it"
    if rating == rating:  # not NaN
        return f"{user} rated {what} {rating:g}★"
    return f"{user} chose {what}"


# ----------------------------------------------------------------------------- contributions
def residuals(exp: Any) -> pd.DataFrame:
    """Named residual terms of a decomposable explanation (``label``, ``contribution``, ``meaning``); empty for ``gat``.

    A decomposition explains the score as one term per past interaction plus named residuals
    ("taste profile", "popularity"): the explanation's ``terms`` frame (``term``, ``label``,
    ``meaning``, ``value``), whose ``history`` row is the sum of the per-interaction terms and
    so is left out here.
    """
    terms = getattr(exp, "terms", None)
    if not isinstance(terms, pd.DataFrame) or not len(terms) or "value" not in terms:
        return pd.DataFrame(columns=list(RESIDUAL_COLUMNS))
    rest = terms[terms["term"].astype(str) != "history"] if "term" in terms else terms
    label = rest["label"] if "label" in rest else rest["term"]
    meaning = rest["meaning"] if "meaning" in rest else pd.Series("", index=rest.index)
    return pd.DataFrame(
        {"label": label.astype(str), "contribution": rest["value"].astype(float), "meaning": meaning.astype(str)}
    ).reset_index(drop=True)


def contributions(exp: Any) -> pd.DataFrame:
    """Every term of the explanation with its share of the recommendation.

    Returns:
        Columns ``label`` (plain words), ``kind`` (``past item``, ``other user``, ``further
        connection``, ``residual``), ``item_id``, ``user_id``, ``value`` (attribution or exact
        contribution) and ``share`` (of the total absolute value, so shares sum to 1 in size).
    """
    inter = exp.interactions
    words = {"history": "past item", "audience": "other user", "context": "further connection"}
    rows = []
    if len(inter):
        for r in inter.itertuples(index=False):
            kind = words.get(str(r.kind), "further connection")
            if kind == "past item":
                label = str(r.title)
            elif kind == "other user":
                label = f"{r.user_id} chose it"
            else:
                label = f"{r.user_id} · {r.title}"
            rows.append((label, kind, str(r.item_id), str(r.user_id), _num(r.attribution)))
    for r in residuals(exp).itertuples(index=False):
        rows.append((str(r.label), "residual", "", "", _num(r.contribution)))
    frame = pd.DataFrame(rows, columns=["label", "kind", "item_id", "user_id", "value"])
    frame["value"] = frame["value"].astype(float).fillna(0.0)
    total = float(frame["value"].abs().sum())
    frame["share"] = frame["value"] / total if total > 0 else 0.0
    return frame.sort_values("value", ascending=False, key=lambda s: s.abs(), kind="stable").reset_index(drop=True)


def past_items(exp: Any) -> pd.DataFrame:
    """The user's past items with their share of the recommendation, largest contribution first.

    Columns: ``item_id``, ``title``, ``rating``, ``value``, ``share`` (signed, of all terms),
    ``size`` (``abs(share)``, on 0..1) and ``direction`` (``raises it`` / ``lowers it``).
    """
    terms = contributions(exp)
    own = terms[terms["kind"] == "past item"][["item_id", "value", "share"]]
    hist = exp.history_influence
    base = hist[["item_id", "title", "rating"]] if len(hist) else pd.DataFrame(columns=["item_id", "title", "rating"])
    frame = base.astype({"item_id": str}).merge(own, on="item_id", how="left")
    frame["value"] = frame["value"].astype(float).fillna(0.0)
    frame["share"] = frame["share"].astype(float).fillna(0.0)
    frame["size"] = frame["share"].abs()
    frame["direction"] = np.where(frame["value"] < 0, "lowers it", "raises it")
    return frame.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- score in words
@dataclass(frozen=True)
class RankWords:
    """The item's place in the user's list, in words."""

    value: str  # "#3"
    of: str  # "of 1,642 items u0042 has not seen"
    versus: str  # "well above the #10 item"
    sentence: str  # the two together, for a caption


def rank_words(
    user: str, rank: int | None, n_unseen: int, score: float, top_scores: np.ndarray | list[float], k: int
) -> RankWords:
    """Where the item stands among the user's unseen items, and against the K-th one.

    Args:
        user: the user's id (for the sentence).
        rank: the item's rank among the items the user has not seen (None: already seen).
        n_unseen: how many items the user has not seen.
        score: the item's score.
        top_scores: the scores of the user's top-K unseen items, best first.
        k: the list length.
    """
    if rank is None:
        text = f"{user} already has it in their history"
        return RankWords("seen", "already in the history", "not ranked", text)
    scores = np.asarray(top_scores, dtype=np.float64)
    of = f"of {n_unseen:,} items {user} has not seen"
    if len(scores) < 2 or k < 2:
        versus = "the top of the list" if rank == 1 else f"outside the top {k}"
    else:
        kth = scores[min(k, len(scores)) - 1]
        spread = float(scores[0] - kth) or 1e-12
        gap = (score - kth) / spread
        if rank == k:
            versus = f"the last item in the top {k}"
        elif rank < k:
            versus = (
                f"well above the #{k} item"
                if gap >= 0.5
                else (f"above the #{k} item" if gap >= 0.15 else f"just above the #{k} item")
            )
        else:
            versus = (
                f"just below the #{k} item, outside the top {k}"
                if gap > -0.15
                else f"well below the #{k} item, outside the top {k}"
            )
    sentence = f"Ranked #{rank:,} {of}, {versus}."
    return RankWords(f"#{rank:,}", of, versus, sentence)


# ----------------------------------------------------------------------------- counterfactual
@dataclass(frozen=True)
class CounterfactualView:
    """What the page shows of the counterfactual: a verdict, at most ``MAX_CF_ROWS`` rows, and how many more."""

    headline: str  # short, for a tile
    hint: str  # the tile's second line
    verdict: str  # one plain sentence
    tone: str  # good / warn / neutral
    rows: pd.DataFrame  # title, rating, share (at most MAX_CF_ROWS)
    more: int  # rows not shown


def counterfactual_view(exp: Any, *, max_rows: int = MAX_CF_ROWS, small: int = 5) -> CounterfactualView:
    """The counterfactual in plain words: which few past items, if removed, push the item out of the top K.

    Args:
        exp: an explanation.
        max_rows: rows shown; the rest is counted in ``more`` (default: :data:`MAX_CF_ROWS`).
        small: sets up to this size are a "few items" story (default: 5).
    """
    empty = pd.DataFrame(columns=["title", "rating", "share"])
    cf = getattr(exp, "counterfactual", None)
    user = str(exp.user_id)
    if cf is None:
        return CounterfactualView(
            "not checked",
            "no counterfactual computed",
            "This explanation did not test which past items the recommendation depends on.",
            "neutral",
            empty,
            0,
        )
    if cf.old_rank is None or cf.old_rank > cf.k:
        return CounterfactualView(
            "not in the list",
            f"outside the top {cf.k}",
            f"The item is not in {user}'s top {cf.k}, so there is nothing to remove it from.",
            "neutral",
            empty,
            0,
        )
    n_positive = int((past_items(exp)["value"] > 0).sum())
    if not cf.found or not len(cf.removed):
        return CounterfactualView(
            "many signals",
            "no set of past items drops it from the list",
            f"No small set of past items explains it: even without all {n_positive} of {user}'s past items "
            f"that count in its favour it stays in the top {cf.k}. The recommendation rests on many weak "
            "signals together.",
            "warn",
            empty,
            0,
        )
    removed = cf.removed.copy()
    shares = past_items(exp).set_index("item_id")["share"]
    removed["share"] = removed["item_id"].astype(str).map(shares).astype(float)
    n = len(removed)
    rows = removed[["title", "rating", "share"]].head(max_rows).reset_index(drop=True)
    rows["rating"] = [stars(r) for r in rows["rating"]]
    rows["share"] = [percent(v) if v == v else "" for v in rows["share"].astype(float)]
    more = max(n - max_rows, 0)
    moved = f"#{cf.old_rank} → #{cf.new_rank}"
    if n <= small:
        items = "this past item" if n == 1 else f"these {n} past items"
        return CounterfactualView(
            f"{n} past item{'s' if n != 1 else ''}",
            f"without {'it' if n == 1 else 'them'} it leaves the top {cf.k}",
            f"Without {items}, the item drops out of {user}'s top {cf.k} ({moved}).",
            "good",
            rows,
            more,
        )
    return CounterfactualView(
        "many signals",
        f"it takes removing {n} past items to drop it",
        f"No small set of past items explains it: it takes removing {n} of {user}'s past items to push it out "
        f"of the top {cf.k} ({moved}). The recommendation rests on many signals together.",
        "warn",
        rows,
        more,
    )


def _arc(j: int, n: int) -> tuple[float, float]:
    """Position of the ``j``-th of ``n`` other users: an arc beyond the item, 30 degrees apart."""
    angle = (j - (n - 1) / 2) * (math.pi / 6)
    return _X_ITEM + _RADIUS * math.cos(angle), _RADIUS * 1.6 * math.sin(angle)


# ----------------------------------------------------------------------------- focused graph
def focused_frames(
    exp: Any,
    *,
    rank: RankWords | None = None,
    max_items: int = MAX_PAST_ITEMS,
    max_users: int = MAX_CO_CONSUMERS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The focused graph: the user → their top contributing past items → the item, plus the strongest co-consumers.

    Edge width is the contribution (the interaction's attribution, or its exact contribution):
    the same flow runs user → past item → item. Co-consumers (other users who chose the item)
    join the item with their own contribution where the model has one (the attention graph);
    for a decomposable model they are the users who chose the item and the most of the shown
    past items, drawn thin as evidence, not as a term. Nodes carry fixed ``x``/``y`` positions.

    Args:
        exp: an explanation (either kind).
        rank: the item's rank in words, for its tooltip (default: none).
        max_items: past items drawn, the largest positive contributions (default: 15).
        max_users: co-consumers drawn, the largest positive contributions (default: 5).

    Returns:
        ``(nodes, edges)`` for :func:`~dashboard.components.graph_view.network_html`; node
        ``id`` values are strings such as ``"user"``, ``"item"``, ``"past:<item id>"``.
    """
    user, title = str(exp.user_id), str(exp.item_title)
    past = past_items(exp)
    shown = past[past["value"] > 0].head(max_items)
    terms = contributions(exp)
    others = terms[(terms["kind"] == "other user") & (terms["value"] > 0)].head(max_users)
    n_past = len(past)

    def overlap(other: str) -> int:
        inter = exp.interactions
        if not len(inter):
            return 0
        hist_ids = set(past["item_id"])
        mask = (inter["user_id"].astype(str) == other) & inter["item_id"].astype(str).isin(hist_ids)
        return int(mask.sum())

    user_tip = f"{user} has {n_past} past item{'s' if n_past != 1 else ''}"
    if len(shown) < n_past:
        user_tip += f"; the {len(shown)} that count most for this recommendation are shown"
    item_tip = "Recommended to " + user + (f": {rank.sentence}" if rank is not None else "")
    nodes = [
        ("user", "user", user, user_tip, 1.0, _X_USER, 0.0),
        ("item", "target", title, item_tip, 1.0, _X_ITEM, 0.0),
    ]
    edges = []
    ys = (np.arange(len(shown)) - (len(shown) - 1) / 2) * _ROW
    for r, y in zip(shown.itertuples(index=False), ys, strict=True):
        node = f"past:{r.item_id}"
        rating = _num(r.rating)
        nodes.append(
            (
                node,
                "history",
                str(r.title),
                f"{rating_phrase(user, rating)}; it {effect(float(r.share))}",
                float(r.size),
                _X_PAST,
                float(y),
            )
        )
        edges.append(("user", node, float(r.value), rating_phrase(user, rating, title=str(r.title)) + "."))
        edges.append((node, "item", float(r.value), f"{r.title} {effect(float(r.share))}."))
    n_o = len(others)
    for j, r in enumerate(others.itertuples(index=False)):
        x, y = _arc(j, n_o)
        node = f"other:{r.user_id}"
        shared = overlap(str(r.user_id))
        also = f"; {shared} of {user}'s past items are in their history too" if shared else ""
        nodes.append(
            (
                node,
                "other_user",
                str(r.user_id),
                f"Another user who chose {title}{also}. Their choice {effect(float(r.share))}.",
                abs(float(r.share)),
                x,
                y,
            )
        )
        edges.append((node, "item", float(r.value), f"{r.user_id} chose {title}: {effect(float(r.share))}."))
    co = getattr(exp, "co_consumers", None)
    if n_o == 0 and co is not None and len(co):
        # The default model's score has no per-user term from others: these are the evidence its
        # item-item relation is fitted from, drawn thin and said so.
        co = co.head(max_users)
        thin = 0.25 * float(shown["value"].min()) if len(shown) else 1.0
        n_c = len(co)
        for j, r in enumerate(co.itertuples(index=False)):
            x, y = _arc(j, n_c)
            node = f"other:{r.user_id}"
            also = f"{int(r.shared)} of the past items shown for {user}"
            nodes.append(
                (
                    node,
                    "other_user",
                    str(r.user_id),
                    f"{r.user_id} also chose {title} and {also}. Co-choices like these are what the model's "
                    "item-to-item links are learned from; they are not a separate part of this score.",
                    0.3,
                    x,
                    y,
                )
            )
            edges.append((node, "item", thin, f"{r.user_id} chose {title}, and {also}."))
    node_frame = pd.DataFrame(nodes, columns=["id", "kind", "label", "detail", "importance", "x", "y"])
    edge_frame = pd.DataFrame(edges, columns=["src", "dst", "weight", "detail"])
    return node_frame, edge_frame


METHOD_NAMES = {
    "ig": "Integrated Gradients",
    "saliency": "gradient saliency",
    "ablation": "edge ablation",
    "attention": "attention weights",
    "rollout": "attention rollout",
    "leave-one-out": "exact leave-one-out",
    "exact": "exact decomposition",
}


def technical_figures(exp: Any) -> list[tuple[str, str]]:
    """``(name, value)`` rows for the "For data scientists" expander."""
    method = str(exp.method)
    name = METHOD_NAMES.get(method)
    rows = [
        ("Explanation method", f"{name} ({method})" if name else method),
        ("Model score (raw)", f"{float(exp.score):.4f}"),
    ]
    base = _num(getattr(exp, "baseline_score", float("nan")))
    graph = len(exp.subgraph_nodes) > 0
    if base == base:
        rows.append((f"Baseline score ({'no subgraph edges' if graph else 'an empty history'})", f"{base:.4f}"))
    gap = _num(getattr(exp, "completeness", float("nan")))
    if gap == gap:
        rows.append(("Completeness gap: Σ attributions − (score − baseline)", f"{gap:.2e}"))
    sub = exp.subgraph_nodes
    if len(sub):
        shown = int(sub["in_display"].astype(bool).sum()) if "in_display" in sub else len(sub)
        rows.append(("Computation subgraph", f"{len(sub):,} nodes, {len(exp.edges):,} directed edges ({shown} drawn)"))
    rows.append(("Interactions attributed", f"{len(exp.interactions):,}"))
    total = _num(exp.timings.get("total", float("nan"))) if exp.timings else float("nan")
    if total == total:
        rows.append(("Computed in", f"{total:.2f} s"))
    return rows
