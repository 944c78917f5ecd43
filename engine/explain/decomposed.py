"""Explanations of models whose score decomposes exactly: the terms, a verified counterfactual, reasons.

:func:`explain_decomposed` is :func:`~engine.explain.explain_pair` for a model with the
:data:`~engine.models.registry.DECOMPOSITION` interface (a user with history): the user's past
interactions with their exact contributions (ranked), the residual terms under plain names
("taste profile", "popularity") and their shares, the smallest verified counterfactual
(:func:`~engine.explain.counterfactual_exact.find_counterfactual_exact`) and the plain reason.
:func:`list_reasons` writes one reason per item of a list (the cards of the Recommendations page),
different per item. No graph: the subgraph frames are empty.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, ITEM, TITLE
from engine.explain.additive import attention_of, edited_scores, interaction_weights, require_decomposable, user_terms
from engine.explain.algorithms.base import ExplainerAlgorithm
from engine.explain.algorithms.decomposition import (
    TERM_LABELS,
    TERM_MEANINGS,
    Decomposition,
    DecompositionTarget,
    ExactDecomposition,
)
from engine.explain.counterfactual import ranks
from engine.explain.counterfactual_exact import find_counterfactual_exact
from engine.explain.explanation import Explanation
from engine.explain.history import GROUP_COLUMNS, high_rating, history_frame
from engine.explain.resolve import resolve_user
from engine.explain.text import Decisive, interaction_verb, reason_from_terms
from engine.recommender import Recommender

# The user's latest interactions (this share of the history, at least one) count as "recent",
# for histories of at least RECENT_MIN interactions (in a 1-3 item history "recently" says nothing).
RECENT_SHARE = 0.1
RECENT_MIN = 4
NODE_COLUMNS = ["node", "type", "id", "title", "in_display"]
_CO_CONSUMER_PAST = 15  # co-consumers are ranked by overlap with this many top contributing past items


@dataclass
class DecomposedExplanation(Explanation):
    """An :class:`Explanation` of an exactly decomposable score.

    ``history_influence`` has, besides the shared columns, ``contribution`` (= ``attribution``,
    the exact term), ``weight`` (``w_uj``: rating and recency), ``relation`` (``S[j, i]``),
    ``attention`` (``a(j, i)``: a weight inside the term, not an explanation by itself),
    ``share_of_history`` (of what the history adds), ``recent`` and ``timestamp``.
    ``completeness`` is the round-off gap ``sum(terms) - score`` and ``baseline_score`` the
    score with the whole history removed (taste profile re-propagated).

    Attributes:
        terms: one row per term of the score: ``term`` (``history``, ``taste profile``,
            ``popularity``), ``label`` (plain words), ``meaning`` (one line), ``value``, ``share``
            (of the sum of the terms' absolute values).
    """

    terms: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["term", "label", "meaning", "value", "share"])
    )
    # Other users who chose the item and the most of this user's top contributing past items
    # (``user_id``, ``shared``: how many of those they chose too): the co-choices the item-item
    # relation is fitted from. Evidence, not terms of the score.
    co_consumers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["user_id", "shared"]))

    def to_dict(self, *, top_edges: int = 15) -> dict[str, Any]:
        out = super().to_dict(top_edges=top_edges)
        out["terms"] = self.terms.astype(object).where(self.terms.notna(), None).to_dict("records")
        out.pop("subgraph", None)
        out.pop("self_influence", None)
        out["co_consumers"] = self.co_consumers.to_dict("records")
        return out


def _history_table(rec: Recommender, u: int, item: int, dec: Decomposition) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, history_influence) frames of one pair."""
    hist = dec.history
    contrib = dec.contribution
    attention = attention_of(rec, hist, item)
    weight = interaction_weights(rec, u, hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        relation = np.where(attention * weight > 0, contrib / (attention * weight), np.nan)
    total = float(np.abs(contrib).sum())
    order = np.argsort(-contrib, kind="stable")
    rank = np.empty(len(hist), dtype=np.int64)
    rank[order] = np.arange(1, len(hist) + 1)
    ids = np.asarray(rec.idmap.items, dtype=object)[hist]
    inter = pd.DataFrame(
        {
            "user_id": rec.idmap.users[u],
            "item_id": ids,
            "title": rec.items[TITLE].to_numpy(dtype=object)[hist],
            "kind": "history",
            "attention": attention,
            "influence": np.nan,
            "attribution": contrib,
            "share": contrib / total if total > 0 else np.zeros(len(hist)),
            "rank": rank,
        }
    ).sort_values("rank", kind="stable")
    frame = history_frame(rec, u, inter.reset_index(drop=True))
    extra = pd.DataFrame({ITEM: ids, "weight": weight, "relation": relation})
    frame = frame.merge(extra, on=ITEM, how="left")
    frame["contribution"] = frame["attribution"]
    added = float(contrib[contrib > 0].sum())
    frame["share_of_history"] = frame["contribution"] / added if added > 0 else 0.0
    train = rec.prep.split.train
    ts = train[train["u"] == u].set_index("i")["timestamp"]
    frame["timestamp"] = ts.reindex(frame["i"]).to_numpy()
    frame["recent"] = recent_mask(frame["timestamp"].to_numpy())
    return inter.reset_index(drop=True), frame


def recent_mask(ts: np.ndarray) -> np.ndarray:
    """Which of a history's interactions are its latest (``RECENT_SHARE`` of the dated ones, at least one).

    Only known times count (``-1`` is "unknown"), and only when they differ: a log without
    timestamps, or one whose rows share one time, has no "recent" interaction to speak of.
    """
    ts = np.asarray(ts, dtype=np.float64)
    out = np.zeros(len(ts), dtype=bool)
    known = np.isfinite(ts) & (ts >= 0)
    if known.sum() < RECENT_MIN or np.unique(ts[known]).size < 2:
        return out
    latest = max(1, math.ceil(RECENT_SHARE * int(known.sum())))
    out[np.argsort(-np.where(known, ts, -np.inf), kind="stable")[:latest]] = True
    return out


def co_consumers(rec: Recommender, user: int, item: int, past: Sequence[int], *, limit: int = 5) -> pd.DataFrame:
    """Other users who chose ``item`` in training, ranked by how many of ``past`` they chose too.

    Args:
        rec: the recommender.
        user: internal index of the explained user (left out).
        item: internal item index.
        past: internal indices of the user's past items that count most.
        limit: rows kept (default: 5); only users sharing at least one of ``past``.
    """
    X = rec._train_csr
    col = X[:, [int(item)]].tocoo()
    users = col.row[col.row != user]
    if not len(users) or not len(past):
        return pd.DataFrame(columns=["user_id", "shared"])
    shared = np.asarray((X[users][:, np.asarray(past, dtype=np.int64)] > 0).sum(axis=1)).ravel()
    order = np.lexsort((users, -shared))
    keep = order[shared[order] > 0][:limit]
    ids = [str(rec.idmap.users[int(u)]) for u in users[keep]]
    return pd.DataFrame({"user_id": ids, "shared": shared[keep].astype(int)})


def _terms_frame(dec: Decomposition) -> pd.DataFrame:
    values = dec.terms()
    total = sum(abs(v) for v in values.values())
    n = len(dec.history)
    labels = dict(TERM_LABELS)
    labels["history"] = f"past interactions ({n} title{'s' if n != 1 else ''})"
    return pd.DataFrame(
        {
            "term": list(values),
            "label": [labels[t] for t in values],
            "meaning": [TERM_MEANINGS[t] for t in values],
            "value": list(values.values()),
            "share": [v / total if total > 0 else 0.0 for v in values.values()],
        }
    )


def _reason(
    rec: Recommender,
    user_id: str,
    item: int,
    frame: pd.DataFrame,
    dec: Decomposition,
    *,
    in_history: bool,
    avoid: Sequence[tuple[str, ...]] = (),
    decisive: Decisive | None = None,
) -> tuple[str, tuple[str, ...]]:
    return reason_from_terms(
        user_id=user_id,
        history=frame,
        terms=dec.terms(),
        item_title=str(rec.items[TITLE].iloc[item]),
        item_categories=tuple(rec.items[CATEGORIES].iloc[item]),
        rated=rec.dataset.rating_scale is not None,
        high_rating=high_rating(rec),
        verb=interaction_verb(rec.dataset.name),
        in_history=in_history,
        avoid=avoid,
        decisive=decisive,
    )


def explain_decomposed(
    rec: Recommender,
    algo: ExplainerAlgorithm,
    user_id: str,
    item_id: str,
    *,
    k: int = 10,
    counterfactual: bool = True,
    t_start: float | None = None,
) -> DecomposedExplanation:
    """:func:`~engine.explain.explain_pair` for a decomposable model (a user with history).

    Args:
        rec: the recommender.
        algo: the ``exact`` algorithm (:class:`ExactDecomposition`).
        user_id / item_id: the pair (external ids).
        k: list length of the counterfactual (default: 10).
        counterfactual: search for the verified counterfactual (default: True).
        t_start: when the caller started (default: now).
    """
    t_start = time.perf_counter() if t_start is None else t_start
    require_decomposable(rec)
    if not isinstance(algo, ExactDecomposition):
        raise TypeError(f"explain_decomposed needs the 'exact' algorithm (got {algo!r})")
    timings: dict[str, float] = {}
    u, item = rec.idmap.user_index(user_id), rec.idmap.item_index(item_id)
    t = time.perf_counter()
    dec = algo.decompose(DecompositionTarget(rec.model, u, item))
    timings["decomposition"] = time.perf_counter() - t
    t = time.perf_counter()
    terms = user_terms(rec, u)
    rank = int(ranks(terms.scores, rec.train_items(u))[item]) or None
    baseline = float(edited_scores(rec, terms, terms.history)[item])
    inter, frame = _history_table(rec, u, item, dec)
    timings["tables"] = time.perf_counter() - t
    cf = None
    if counterfactual:
        t = time.perf_counter()
        cf = find_counterfactual_exact(rec, u, item, k=k)
        timings["counterfactual"] = time.perf_counter() - t
    decisive = None
    if cf is not None and cf.found and cf.size is not None and cf.size <= len(cf.removed):
        decisive = Decisive(tuple(str(x) for x in cf.removed[ITEM]), int(cf.old_rank), int(cf.new_rank), cf.k)
    text, _ = _reason(rec, user_id, item, frame, dec, in_history=rank is None, decisive=decisive)
    top = frame[frame["contribution"] > 0].sort_values("contribution", ascending=False).head(_CO_CONSUMER_PAST)
    co = co_consumers(rec, u, item, [rec.idmap.item_index(str(i)) for i in top["item_id"]])
    timings["total"] = time.perf_counter() - t_start
    return DecomposedExplanation(
        user_id=str(user_id),
        item_id=str(item_id),
        item_title=str(rec.items[TITLE].iloc[item]),
        method=algo.name,
        score=dec.score,
        rank=rank,
        reason=text,
        subgraph_nodes=pd.DataFrame(columns=NODE_COLUMNS),
        edges=pd.DataFrame(),
        interactions=inter,
        feature_groups=pd.DataFrame(columns=GROUP_COLUMNS),
        history_influence=frame,
        counterfactual=cf,
        timings={key: round(v, 4) for key, v in timings.items()},
        completeness=dec.gap,
        baseline_score=baseline,
        terms=_terms_frame(dec),
        co_consumers=co,
    )


def list_reasons(rec: Recommender, user_id: str, item_ids: Sequence[str]) -> pd.DataFrame:
    """One plain reason per item of a user's list, each from the model's exact terms.

    Items are taken in list order; when an item's cited titles would repeat those of an item
    above it, the weakest cited title gives way to the next contributor (still a real one), so
    the cards read differently.

    Args:
        rec: a recommender whose model decomposes exactly.
        user_id: external id of a user with training history.
        item_ids: external item ids, in list order.

    Returns:
        Columns ``item_id``, ``title``, ``reason``, ``cited`` (tuple of the named items' ids),
        ``history_share`` (share of the score's absolute terms that the history carries).
    """
    require_decomposable(rec)
    u = resolve_user(rec, user_id, purpose="a reason")
    algo = ExactDecomposition()
    rows, used = [], []
    history = set(rec.train_items(u).tolist())
    for item_id in item_ids:
        item = rec.idmap.item_index(str(item_id))
        dec = algo.decompose(DecompositionTarget(rec.model, u, item))
        _, frame = _history_table(rec, u, item, dec)
        text, cited = _reason(rec, str(user_id), item, frame, dec, in_history=item in history, avoid=used)
        if cited:
            used.append(cited)
        terms = _terms_frame(dec).set_index("term")
        rows.append(
            {
                ITEM: str(item_id),
                TITLE: str(rec.items[TITLE].iloc[item]),
                "reason": text,
                "cited": cited,
                "history_share": float(terms.loc["history", "share"]),
            }
        )
    return pd.DataFrame(rows, columns=[ITEM, TITLE, "reason", "cited", "history_share"])
