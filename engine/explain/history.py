"""Explanations of history-scores models: each past interaction's exact share of one score.

A model whose scores are a function of the user's history row (EASE-like item-item models,
co-occurrence models, plug-ins that implement ``score_history``) is explained by re-scoring
that row with the history edited; the method (:mod:`~engine.explain.algorithms`) says how. The
result is an :class:`~engine.explain.explanation.Explanation` with the same frames as the
attention model's, minus the graph: no subgraph nodes or edges, no feature groups.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from engine.data.schema import CATEGORIES, COUNT, ITEM, RATING, TITLE, USER
from engine.data.split import W_RATING, I, U, to_implicit
from engine.errors import UnsupportedModelError
from engine.explain.algorithms import ExplainerAlgorithm, HistoryScorer, HistoryTarget
from engine.explain.counterfactual import ranks
from engine.explain.explanation import Explanation
from engine.explain.text import reason_for
from engine.recommender import Recommender

GROUP_COLUMNS = ["group", "label", "available", "attribution", "share"]


def high_rating(rec: Recommender) -> float:
    """What counts as rating an item "highly": 4 on a 1-5 scale, the top fifth in general."""
    scale = rec.dataset.rating_scale
    if scale is None:
        return float("inf")
    lo, hi = scale
    return lo + 0.75 * (hi - lo)


def history_frame(rec: Recommender, u: int, inter: pd.DataFrame) -> pd.DataFrame:
    """Each training interaction of user ``u`` with its figures from the ``interactions`` frame.

    Columns: ``i``, ``item_id``, ``title``, ``categories``, ``rating`` (on the dataset's scale,
    NaN for implicit data and counts), ``count`` (a dataset of counts only: the logged count),
    ``attention``, ``influence``, ``attribution``, ``share``, ``share_of_history`` and ``rank``
    (by attribution, 1 = most).
    """
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
    if rec.dataset.counts:  # the logged count: a repeated pair's total, the split's own rule
        logged = rec.dataset.interactions
        total = to_implicit(logged[logged[USER] == rec.idmap.users[u]], counts=True).set_index(ITEM)[RATING]
        frame[COUNT] = frame[ITEM].map(total).to_numpy(np.float64)
    own = inter[inter["kind"] == "history"].set_index("item_id")
    frame = frame.join(own[["attention", "influence", "attribution", "share"]], on=ITEM)
    total = float(np.abs(frame["attribution"].fillna(0.0)).sum())
    frame["share_of_history"] = frame["attribution"] / total if total > 0 else 0.0
    frame = frame.sort_values("attribution", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


@torch.no_grad()
def explain_history(
    rec: Recommender, algo: ExplainerAlgorithm, user_id: str, item_id: str, *, k: int, t_start: float
) -> Explanation:
    """:func:`~engine.explain.explain_pair` for a history-scores model (a user with history).

    ``baseline_score`` is the score with an empty history and ``completeness`` the gap
    ``sum(attributions) - (score - baseline_score)``: 0 for a model linear in its history
    under leave-one-out. ``k`` is unused (no counterfactual search for these models yet).

    Raises:
        UnsupportedModelError: the model does not implement ``score_history``.
    """
    model = rec.model
    if not isinstance(model, HistoryScorer):
        raise UnsupportedModelError(
            f"model {rec.model_name!r} is registered with the history-scores capability but "
            f"{type(model).__name__} has no score_history(histories) method"
        )
    u, item = rec.idmap.user_index(user_id), rec.idmap.item_index(item_id)
    history = np.asarray(rec.train_items(u), dtype=np.int64)
    row = torch.zeros(rec.idmap.n_items)
    row[torch.from_numpy(history)] = 1.0
    t = time.perf_counter()
    values = np.asarray(algo.attribute_history(HistoryTarget(model, row, history, item)), dtype=np.float64)
    t_attr = time.perf_counter() - t
    both = model.score_history(torch.stack([row, torch.zeros_like(row)])).double().numpy()
    score, base = float(both[0, item]), float(both[1, item])
    rank = int(ranks(both[0], history)[item]) or None

    total = float(np.abs(np.nan_to_num(values)).sum())
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    inter_rank = np.empty(len(history), dtype=np.int64)
    inter_rank[order] = np.arange(1, len(history) + 1)
    inter = pd.DataFrame(
        {
            "user_id": user_id,
            "item_id": np.asarray(rec.idmap.items, dtype=object)[history],
            "title": rec.items[TITLE].to_numpy(dtype=object)[history],
            "kind": "history",
            "attention": np.nan,
            "influence": np.nan,
            "attribution": values,
            "share": values / total if total > 0 else np.zeros(len(history)),
            "rank": inter_rank,
        }
    )
    inter = inter.sort_values("rank", kind="stable").reset_index(drop=True)
    hist = history_frame(rec, u, inter)
    feat = pd.DataFrame(columns=GROUP_COLUMNS)
    title = str(rec.items[TITLE].iloc[item])
    text = reason_for(
        user_id=user_id,
        title=title,
        item_categories=tuple(rec.items[CATEGORIES].iloc[item]),
        history=hist,
        interactions=inter,
        feature_groups=feat,
        rated=rec.dataset.rating_scale is not None,
        high_rating=high_rating(rec),
        in_history=rank is None,
    )
    return Explanation(
        user_id=user_id,
        item_id=item_id,
        item_title=title,
        method=algo.name,
        score=score,
        rank=rank,
        reason=text,
        subgraph_nodes=pd.DataFrame(columns=["node", "type", "id", "title", "in_display"]),
        edges=pd.DataFrame(),
        interactions=inter,
        feature_groups=feat,
        history_influence=hist,
        counterfactual=None,
        timings={"attribution": round(t_attr, 4), "total": round(time.perf_counter() - t_start, 4)},
        completeness=float(np.nansum(values)) - (score - base),
        baseline_score=base,
    )
