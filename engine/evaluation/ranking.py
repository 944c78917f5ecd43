"""Full-ranking accuracy metrics, following RecBole's general-recommendation protocol.

Every evaluated user's scores cover the *whole* catalog; the user's training
items (and, for the test part, validation items) are masked to ``-inf`` before
taking the top-K, so a list never repeats something the model was trained on.
Users without a relevant item in the evaluated part are skipped, as in RecBole
and PyG's ``LinkPredMetric``. The metrics are the registry's ``"accuracy"``
entries (:mod:`engine.evaluation.metrics`, definitions in
:mod:`engine.evaluation.accuracy`). Sampled-negative metrics are deliberately
absent (DESIGN.md section 5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from engine.data.split import SplitData
from engine.evaluation.accuracy import HitTable
from engine.evaluation.metrics import all_metrics
from engine.evaluation.topk import held_out, top_k
from engine.models.base import ScoreModel

log = logging.getLogger(__name__)

METRICS = tuple(m.key for m in all_metrics("accuracy"))
"""Accuracy metric names registered at import; result keys are ``f"{name}@{k}"``."""


@dataclass(frozen=True)
class RankingResult:
    """Accuracy of one model on one split part.

    Attributes:
        overall: mean over evaluated users, keys ``"recall@10"``, ``"ndcg@20"``, ...
        per_user: one row per evaluated user: ``u`` (internal index),
            ``n_relevant`` and one column per key of ``overall``.
        topk: ``[n_eval_users, max(ks)]`` internal item indices, rows aligned
            with ``per_user``; ``-1`` pads lists of users with fewer than
            ``max(ks)`` unmasked items.
    """

    overall: dict[str, float]
    per_user: pd.DataFrame
    topk: np.ndarray


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k <= 0 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers (got {ks!r})")
    return ks


def topk_items(
    model: ScoreModel,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
    *,
    batch_size: int = 1024,
) -> np.ndarray:
    """Top-``k`` items per user over the full catalog, excluded items masked (:func:`engine.evaluation.topk.top_k`).

    Args:
        model: anything with ``score(users) -> [B, n_items]``.
        users: internal user indices to rank for.
        exclude: ``[n_users, n_items]`` binary matrix indexed by internal user
            index (not by position in ``users``); its non-zeros are set to
            ``-inf`` before ranking.
        k: list length, ``1 <= k <= n_items``.
        batch_size: users scored at once (default: 1024).

    Returns:
        ``int64 [len(users), k]`` item indices, best first. A slot is ``-1``
        when the user has fewer than ``k`` items left after exclusion.
    """
    return top_k(model, users, exclude, k, batch_size=batch_size).items


def metrics_from_topk(
    topk: np.ndarray,
    relevant: sp.csr_matrix,
    ks: Sequence[int] = (10, 20),
) -> pd.DataFrame:
    """Per-row accuracy metrics of ranked lists against relevant sets.

    Every ``"accuracy"`` metric of the registry (:mod:`engine.evaluation.metrics`;
    by default Recall, Precision, F1, NDCG, MRR, Hit, MAP with the RecBole
    definitions of :mod:`engine.evaluation.accuracy`) at every cut-off.

    Args:
        topk: ``[N, max_k]`` item indices, best first; ``-1`` is padding.
        relevant: ``[N, n_items]`` matrix whose non-zeros are each row's
            relevant items; rows aligned with ``topk``.
        ks: cut-offs, each ``<= topk.shape[1]`` (default: (10, 20)).

    Returns:
        One row per input row: ``n_relevant`` then ``f"{metric}@{k}"`` columns.
        Rows without relevant items get NaN metrics (undefined; callers skip
        them, as PyG's ``LinkPredMetric`` does).
    """
    ks = _check_ks(ks)
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D [n_users, k] (got shape {topk.shape!r})")
    if max(ks) > topk.shape[1]:
        raise ValueError(f"every k must be <= topk.shape[1]={topk.shape[1]} (got ks={ks!r})")
    if relevant.shape[0] != topk.shape[0]:
        raise ValueError(f"relevant has {relevant.shape[0]} rows but topk has {topk.shape[0]}")
    hits = HitTable.from_topk(topk, relevant)
    has_rel = hits.n_relevant > 0
    cols: dict[str, np.ndarray] = {"n_relevant": hits.n_relevant}
    for k in ks:
        for metric in all_metrics("accuracy"):
            cols[f"{metric.key}@{k}"] = np.where(has_rel, metric.fn(hits, k), np.nan)
    return pd.DataFrame(cols)


def evaluate(
    model: ScoreModel,
    split: SplitData,
    part: str = "test",
    *,
    ks: tuple[int, ...] = (10, 20),
    batch_size: int = 1024,
) -> RankingResult:
    """Full-ranking evaluation of ``model`` on one held-out part of ``split``.

    Args:
        model: anything with ``score(users) -> [B, n_items]``.
        split: the split the model was trained on.
        part: ``"test"`` (masks train and valid items) or ``"valid"`` (masks
            train items only) (default: ``"test"``).
        ks: cut-offs (default: (10, 20)).
        batch_size: users scored at once (default: 1024).

    Returns:
        A :class:`RankingResult` over users with at least one item in ``part``.
    """
    ks = _check_ks(ks)
    users, relevant, exclude = held_out(split, part)
    if users.size == 0:
        raise ValueError(f"no user has an item in the {part!r} part; nothing to evaluate")
    topk = topk_items(model, users, exclude, max(ks), batch_size=batch_size)
    per_user = metrics_from_topk(topk, relevant[users], ks)
    per_user.insert(0, "u", users)
    metric_cols = [c for c in per_user.columns if "@" in c]
    overall = {c: float(per_user[c].mean()) for c in metric_cols}
    log.debug("evaluated %d users on %s: %s", len(users), part, overall)
    return RankingResult(overall=overall, per_user=per_user, topk=topk)
