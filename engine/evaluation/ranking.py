"""Full-ranking accuracy metrics, following RecBole's general-recommendation protocol.

Every evaluated user's scores cover the *whole* catalog; the user's training
items (and, for the test part, validation items) are masked to ``-inf`` before
taking the top-K, so a list never repeats something the model was trained on.
Users without a relevant item in the evaluated part are skipped, as in RecBole
and PyG's ``LinkPredMetric``. Definitions follow ``recbole.evaluator.metrics``
(Recall, Precision, NDCG, MRR, Hit, MAP); F1 is the harmonic mean of
Precision@K and Recall@K (PyG's ``LinkPredF1``). Sampled-negative metrics are
deliberately absent (DESIGN.md section 5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from engine.data.split import SplitData
from engine.evaluation.beyond import hit_mask
from engine.models.base import ScoreModel

log = logging.getLogger(__name__)

METRICS = ("recall", "precision", "f1", "ndcg", "mrr", "hit", "map")
"""Metric names; result keys are ``f"{name}@{k}"``."""


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


@torch.no_grad()
def topk_items(
    model: ScoreModel,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
    *,
    batch_size: int = 1024,
) -> np.ndarray:
    """Top-``k`` items per user over the full catalog, excluded items masked.

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
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    n_items = exclude.shape[1]
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be in [1, n_items={n_items}] (got {k!r})")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive (got {batch_size!r})")
    exclude = sp.csr_matrix(exclude)
    out = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = model.score(torch.from_numpy(batch)).float()
        if scores.shape != (len(batch), n_items):
            raise ValueError(f"model.score returned shape {tuple(scores.shape)}; expected ({len(batch)}, {n_items})")
        # clone: a model may hand back a view of its cached score matrix.
        scores = scores.clone()
        block = exclude[batch].tocoo()
        rows = torch.from_numpy(block.row.astype(np.int64)).to(scores.device)
        cols = torch.from_numpy(block.col.astype(np.int64)).to(scores.device)
        scores[rows, cols] = float("-inf")
        values, index = torch.topk(scores, k, dim=1)
        index[torch.isneginf(values)] = -1
        out[start : start + len(batch)] = index.cpu().numpy()
    return out


def metrics_from_topk(
    topk: np.ndarray,
    relevant: sp.csr_matrix,
    ks: Sequence[int] = (10, 20),
) -> pd.DataFrame:
    """Per-row accuracy metrics of ranked lists against relevant sets.

    Definitions (RecBole ``recbole.evaluator.metrics``; binary relevance,
    ``hits@K`` = relevant items among the first K, ``R`` = relevant set):

    * Recall@K = hits@K / |R|
    * Precision@K = hits@K / K (K, not the list's length: padding counts as a miss)
    * F1@K = 2 P R / (P + R), 0 when both are 0 (PyG ``LinkPredF1``)
    * NDCG@K = DCG / IDCG, DCG = sum over hit ranks r of 1 / log2(r + 1),
      IDCG = sum_{r=1}^{min(|R|, K)} 1 / log2(r + 1)
    * MRR@K = 1 / rank of the first hit, 0 without a hit
    * Hit@K = 1 if hits@K > 0 else 0
    * MAP@K = (sum over hit ranks r of Precision@r) / min(|R|, K)

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
    relevant = sp.csr_matrix(relevant, copy=True)
    if relevant.shape[0] != topk.shape[0]:
        raise ValueError(f"relevant has {relevant.shape[0]} rows but topk has {topk.shape[0]}")
    relevant.sum_duplicates()
    relevant.eliminate_zeros()
    n_rel = np.diff(relevant.indptr).astype(np.int64)
    hits = hit_mask(topk.astype(np.int64), relevant).astype(np.float64)

    ranks = np.arange(1, topk.shape[1] + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    idcg_table = np.concatenate([[0.0], np.cumsum(discount)])
    cum_hits = np.cumsum(hits, axis=1)
    prec_at_rank = cum_hits / ranks
    has_rel = n_rel > 0
    denom_rel = np.where(has_rel, n_rel, 1).astype(np.float64)

    cols: dict[str, np.ndarray] = {"n_relevant": n_rel}
    for k in ks:
        h = hits[:, :k]
        n_hit = cum_hits[:, k - 1]
        recall = n_hit / denom_rel
        precision = n_hit / k
        pr = precision + recall
        f1 = np.divide(2 * precision * recall, pr, out=np.zeros_like(pr), where=pr > 0)
        dcg = h @ discount[:k]
        ideal = idcg_table[np.minimum(n_rel, k)]
        ndcg = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
        mrr = (h / ranks[:k]).max(axis=1)
        hit = (n_hit > 0).astype(np.float64)
        ap = (prec_at_rank[:, :k] * h).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
        for name, values in zip(METRICS, (recall, precision, f1, ndcg, mrr, hit, ap), strict=True):
            cols[f"{name}@{k}"] = np.where(has_rel, values, np.nan)
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
    if part not in {"valid", "test"}:
        raise ValueError(f"part must be 'valid' or 'test' (got {part!r})")
    ks = _check_ks(ks)
    relevant = split.matrix(part)
    exclude = split.matrix("train")
    if part == "test":
        exclude = (exclude + split.matrix("valid")).tocsr()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if users.size == 0:
        raise ValueError(f"no user has an item in the {part!r} part; nothing to evaluate")
    topk = topk_items(model, users, exclude, max(ks), batch_size=batch_size)
    per_user = metrics_from_topk(topk, relevant[users], ks)
    per_user.insert(0, "u", users)
    metric_cols = [c for c in per_user.columns if "@" in c]
    overall = {c: float(per_user[c].mean()) for c in metric_cols}
    log.debug("evaluated %d users on %s: %s", len(users), part, overall)
    return RankingResult(overall=overall, per_user=per_user, topk=topk)
