"""Per-user accuracy of ranked lists at a cut-off K, as RecBole defines them.

Each metric is a function ``(hits: HitTable, k: int) -> float [N]`` of one
precomputed :class:`HitTable`, so every cut-off of every metric reuses the
same hit matrix. Definitions follow ``recbole.evaluator.metrics`` (binary
relevance, ``hits@K`` = relevant items among the first K, ``R`` = relevant set);
F1 is PyG's ``LinkPredF1``. Rows without relevant items are NaN-ed by the
caller (:func:`engine.evaluation.ranking.metrics_from_topk`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.evaluation.lists import hit_mask


@dataclass(frozen=True)
class HitTable:
    """Where each list hits its relevant set, with the running sums every metric needs."""

    hits: np.ndarray
    """``float [N, max_k]``: 1 where slot j holds a relevant item."""
    n_relevant: np.ndarray
    """``int64 [N]``: size of each row's relevant set."""

    @classmethod
    def from_topk(cls, topk: np.ndarray, relevant: sp.csr_matrix) -> HitTable:
        """Hits of ``topk [N, max_k]`` (``-1`` padding) against the non-zeros of ``relevant [N, n_items]``."""
        relevant = sp.csr_matrix(relevant, copy=True)
        relevant.sum_duplicates()
        relevant.eliminate_zeros()
        n_rel = np.diff(relevant.indptr).astype(np.int64)
        hits = hit_mask(np.asarray(topk).astype(np.int64), relevant).astype(np.float64)
        return cls(hits=hits, n_relevant=n_rel)

    @property
    def ranks(self) -> np.ndarray:
        """``1..max_k`` as floats."""
        return np.arange(1, self.hits.shape[1] + 1, dtype=np.float64)

    @property
    def discount(self) -> np.ndarray:
        """DCG position discount ``1 / log2(rank + 1)``."""
        return 1.0 / np.log2(self.ranks + 1.0)

    def relevant_or_one(self) -> np.ndarray:
        """``|R|`` as a denominator (1 for empty sets, whose rows the caller NaN-s)."""
        return np.where(self.n_relevant > 0, self.n_relevant, 1).astype(np.float64)


def recall(h: HitTable, k: int) -> np.ndarray:
    """Recall@K = hits@K / |R|."""
    return np.cumsum(h.hits, axis=1)[:, k - 1] / h.relevant_or_one()


def precision(h: HitTable, k: int) -> np.ndarray:
    """Precision@K = hits@K / K (K, not the list's length: padding counts as a miss)."""
    return np.cumsum(h.hits, axis=1)[:, k - 1] / k


def f1(h: HitTable, k: int) -> np.ndarray:
    """F1@K = 2 P R / (P + R), 0 when both are 0 (PyG ``LinkPredF1``)."""
    p, r = precision(h, k), recall(h, k)
    pr = p + r
    return np.divide(2 * p * r, pr, out=np.zeros_like(pr), where=pr > 0)


def ndcg(h: HitTable, k: int) -> np.ndarray:
    """NDCG@K = DCG / IDCG with DCG = sum over hit ranks r of 1 / log2(r + 1), IDCG over min(|R|, K) ranks."""
    discount = h.discount
    idcg_table = np.concatenate([[0.0], np.cumsum(discount)])
    dcg = h.hits[:, :k] @ discount[:k]
    ideal = idcg_table[np.minimum(h.n_relevant, k)]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def mrr(h: HitTable, k: int) -> np.ndarray:
    """MRR@K = 1 / rank of the first hit, 0 without a hit."""
    return (h.hits[:, :k] / h.ranks[:k]).max(axis=1)


def hit(h: HitTable, k: int) -> np.ndarray:
    """Hit@K = 1 if hits@K > 0 else 0."""
    return (np.cumsum(h.hits, axis=1)[:, k - 1] > 0).astype(np.float64)


def average_precision(h: HitTable, k: int) -> np.ndarray:
    """MAP@K = (sum over hit ranks r of Precision@r) / min(|R|, K)."""
    prec_at_rank = np.cumsum(h.hits, axis=1) / h.ranks
    return (prec_at_rank[:, :k] * h.hits[:, :k]).sum(axis=1) / np.maximum(np.minimum(h.n_relevant, k), 1)
