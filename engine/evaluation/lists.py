"""Shared helpers of list-level metrics: validation, per-slot gathers, per-list means, hits, exposure counts.

All take ``topk: int [n_users, K]`` internal item indices, best first, with
``-1`` padding short lists; padding never counts as an item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.evaluation.popularity import long_tail


def check_topk(topk: np.ndarray, n_items: int) -> np.ndarray:
    """``topk`` as int64 after checking shape, index range and that no list repeats an item."""
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D [n_users, K] (got shape {topk.shape!r})")
    if not np.issubdtype(topk.dtype, np.integer):
        raise ValueError(f"topk must hold integer item indices (got dtype {topk.dtype})")
    topk = topk.astype(np.int64, copy=False)
    if topk.size and (topk.min() < -1 or topk.max() >= n_items):
        raise ValueError(
            f"topk values must be item indices in [0, {n_items}) or -1 padding (got range [{topk.min()}, {topk.max()}])"
        )
    s = np.sort(topk, axis=1)
    if np.any((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)):
        raise ValueError("topk has an item repeated within one user's list")
    return topk


def binary_rows(matrix: sp.spmatrix | np.ndarray, n_rows: int, n_items: int, name: str) -> sp.csr_matrix:
    """``matrix`` as a binary CSR of shape ``(n_rows, n_items)``, rows aligned with topk (``name`` for errors)."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    if m.shape != (n_rows, n_items):
        raise ValueError(f"{name} must have shape ({n_rows}, {n_items}), rows aligned with topk (got {m.shape!r})")
    m.sum_duplicates()
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


def gather(values: np.ndarray, topk: np.ndarray) -> np.ndarray:
    """``values[topk]`` with padding slots set to 0."""
    return np.where(topk >= 0, values[np.maximum(topk, 0)], 0)


def list_mean(per_slot: np.ndarray, topk: np.ndarray) -> np.ndarray:
    """Mean of a per-slot quantity over each list's real (unpadded) items; NaN for empty lists."""
    n = (topk >= 0).sum(axis=1)
    total = np.where(topk >= 0, per_slot, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.full(len(n), np.nan), where=n > 0)


def nanmean(x: np.ndarray) -> float:
    """Mean over finite entries; NaN (without a warning) when there is none."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def pair_mean(dist: np.ndarray, topk: np.ndarray) -> np.ndarray:
    """Mean of ``dist [U, K, K]`` over unordered pairs of real items; NaN below 2 items."""
    valid = topk >= 0
    k = topk.shape[1]
    upper = np.triu(np.ones((k, k), dtype=bool), 1)
    mask = valid[:, :, None] & valid[:, None, :] & upper
    n_pairs = mask.sum(axis=(1, 2))
    total = np.where(mask, dist, 0.0).sum(axis=(1, 2))
    return np.divide(total, n_pairs, out=np.full(len(n_pairs), np.nan), where=n_pairs > 0)


def n_items_of(item_matrix: sp.spmatrix | np.ndarray) -> int:
    """Rows of an item-feature matrix, i.e. the catalog size."""
    return int(item_matrix.shape[0])


def dense_categories(item_categories: sp.spmatrix | np.ndarray, n_items: int) -> np.ndarray:
    """Dense binary ``[n_items, C]``; a 1-D int vector (one category per item, -1 none) is one-hot encoded."""
    if sp.issparse(item_categories):
        c = item_categories.toarray()
    else:
        c = np.asarray(item_categories)
        if c.ndim == 1:
            if not np.issubdtype(c.dtype, np.integer):
                raise ValueError(f"1-D item_categories must be integer ids (got dtype {c.dtype})")
            onehot = np.zeros((len(c), int(c.max(initial=-1)) + 1), dtype=np.float64)
            has = c >= 0
            onehot[np.flatnonzero(has), c[has]] = 1.0
            c = onehot
    if c.ndim != 2 or c.shape[0] != n_items:
        raise ValueError(f"item_categories must be [n_items={n_items}, C] (got shape {c.shape!r})")
    return (c != 0).astype(np.float64)


def hit_mask(topk: np.ndarray, relevant: sp.spmatrix) -> np.ndarray:
    """Boolean ``[U, K]``: does slot ``topk[u, j]`` hold one of row u's relevant items (padding: False)."""
    rel = sp.csr_matrix(relevant)
    n_items = rel.shape[1]
    coo = rel.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col.astype(np.int64))
    if keys.size == 0:
        return np.zeros(topk.shape, dtype=bool)
    query = np.arange(topk.shape[0], dtype=np.int64)[:, None] * n_items + np.maximum(topk, 0)
    pos = np.searchsorted(keys, query).clip(max=keys.size - 1)
    return (keys[pos] == query) & (topk >= 0)


def exposure_counts(topk: np.ndarray, n_items: int) -> np.ndarray:
    """How many lists each catalog item appears in (``int64 [n_items]``)."""
    topk = check_topk(topk, n_items)
    return np.bincount(topk[topk >= 0], minlength=n_items).astype(np.int64)


def check_popularity(item_popularity: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """``item_popularity`` as float64 after checking it is 1-D, of length ``n_items`` if given, and >= 0."""
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1 or (n_items is not None and len(pop) != n_items):
        raise ValueError(f"item_popularity must be 1-D [n_items] (got shape {pop.shape!r})")
    if (pop < 0).any():
        raise ValueError(f"item_popularity must be non-negative counts (got min {pop.min()!r})")
    return pop


@dataclass(frozen=True)
class ListContext:
    """Everything a list-level metric may read, validated once (build it with :meth:`build`).

    A metric that needs an optional input (categories, embeddings, history,
    relevant items) is skipped when that input is None.
    """

    topk: np.ndarray
    """``int64 [U, K]`` item indices, ``-1`` padding."""
    popularity: np.ndarray
    """``float64 [n_items]`` training interactions per item."""
    n_users: int
    """Users in the training data (novelty's denominator)."""
    tail: np.ndarray
    """``bool [n_items]`` long-tail items (:func:`engine.evaluation.popularity.long_tail`)."""
    categories: np.ndarray | None = None
    """Dense binary ``[n_items, C]``."""
    embeddings: np.ndarray | None = None
    """``float64 [n_items, D]`` content embeddings."""
    history: sp.csr_matrix | None = None
    """Binary ``[U, n_items]`` training items, rows aligned with ``topk``."""
    relevant: sp.csr_matrix | None = None
    """Binary ``[U, n_items]`` held-out relevant items, rows aligned with ``topk``."""
    alpha: float = 0.01
    """Calibration smoothing."""

    @property
    def n_items(self) -> int:
        return len(self.popularity)

    @classmethod
    def build(
        cls,
        topk: np.ndarray,
        item_popularity: np.ndarray,
        *,
        n_users: int,
        item_categories: sp.spmatrix | np.ndarray | None = None,
        item_embeddings: np.ndarray | None = None,
        history: sp.spmatrix | None = None,
        relevant: sp.spmatrix | None = None,
        alpha: float = 0.01,
    ) -> ListContext:
        """Validate and normalise the inputs of list-level metrics.

        Args:
            topk: ``[U, K]`` internal item indices, ``-1`` = padding.
            item_popularity: training interaction count per item (defines ``n_items``).
            n_users: users in the training data.
            item_categories: multi-hot ``[n_items, C]`` or 1-D ids (default: None).
            item_embeddings: ``[n_items, D]`` content embeddings (default: None).
            history: ``[U, n_items]`` training items (default: None).
            relevant: ``[U, n_items]`` held-out relevant items (default: None).
            alpha: calibration smoothing in [0, 1) (default: 0.01, Steck's value).
        """
        pop = check_popularity(item_popularity)
        n_items = len(pop)
        topk = check_topk(topk, n_items)
        cats = None if item_categories is None else dense_categories(item_categories, n_items)
        hist = None if history is None else binary_rows(history, topk.shape[0], n_items, "history")
        if cats is not None and hist is not None and not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1) (got {alpha!r})")
        emb = None
        if item_embeddings is not None:
            emb = np.asarray(item_embeddings, dtype=np.float64)
            if emb.ndim != 2 or emb.shape[0] != n_items:
                raise ValueError(f"item_embeddings must be [n_items={n_items}, D] (got shape {emb.shape!r})")
        rel = None if relevant is None else binary_rows(relevant, topk.shape[0], n_items, "relevant")
        return cls(
            topk=topk,
            popularity=pop,
            n_users=int(n_users),
            tail=long_tail(pop),
            categories=cats,
            embeddings=emb,
            history=hist,
            relevant=rel,
            alpha=float(alpha),
        )
