"""ItemKNN: item-item cosine neighbourhoods on the binary training matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from engine.data.split import SplitData

# Similarity rows are materialised densely this many cells at a time (~30 bytes
# of temporaries per cell, ~130 MB), so memory stays flat however large the catalog is.
_BLOCK_CELLS = 1 << 22


class ItemKNN:
    """Item-based collaborative filtering with cosine similarity (Sarwar et al., 2001).

    ``sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink)`` on the binary
    training matrix; each target item ``j`` keeps only its ``k`` most similar
    items, and ``score(u, j) = sum_{i in I_u} sim(i, j)`` over ``j``'s neighbours.
    Ties at the k-th neighbour are broken arbitrarily (but reproducibly).

    Args:
        k: neighbours kept per item (default: 100).
        shrink: added to the cosine denominator; damps similarities backed by
            few co-occurrences (default: 0.0).
    """

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        if k < 1:
            raise ValueError(f"k must be a positive number of neighbours (got {k!r})")
        if shrink < 0:
            raise ValueError(f"shrink must be non-negative (got {shrink!r})")
        self.k = int(k)
        self.shrink = float(shrink)
        self.similarity: sp.csr_matrix | None = None  # [I, I]: row = neighbour i, column = target j
        self._train: sp.csr_matrix | None = None

    def fit(self, split: SplitData) -> ItemKNN:
        """Compute the sparse top-k cosine similarity from ``split.matrix("train")``."""
        X = split.matrix("train").astype(np.float32)
        self._train = X
        self.similarity = topk_cosine(X, self.k, self.shrink)
        return self

    @property
    def n_items(self) -> int:
        return 0 if self._train is None else int(self._train.shape[1])

    def score(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]`` (float32, CPU): the user's row times the similarity."""
        if self._train is None or self.similarity is None:
            raise RuntimeError("call fit(split) before score()")
        rows = self._train[users.cpu().numpy()]
        return torch.from_numpy(np.asarray((rows @ self.similarity).todense(), dtype=np.float32))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k}, shrink={self.shrink})"


def topk_cosine(X: sp.csr_matrix, k: int, shrink: float = 0.0) -> sp.csr_matrix:
    """Column-wise top-``k`` item-item cosine similarity of a user x item matrix.

    Args:
        X: user x item matrix (binary in our use).
        k: neighbours kept per target item (column).
        shrink: added to each denominator (default: 0.0).

    Returns:
        CSR ``[I, I]`` with ``W[i, j] = sim(i, j)`` for the ``k`` best ``i != j`` of
        each column ``j``; non-positive similarities are dropped.
    """
    n_items = X.shape[1]
    Xt = X.T.tocsr()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0), dtype=np.float64).ravel()).astype(np.float32)
    k = min(k, max(n_items - 1, 1))
    block = max(1, _BLOCK_CELLS // max(n_items, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        # Symmetric similarity: row j of this block holds sim(j, .) = column j of W.
        sim = np.asarray((Xt[start:stop] @ X).todense(), dtype=np.float32)
        denom = norms[start:stop, None] * norms[None, :] + shrink
        np.divide(sim, denom, out=sim, where=denom > 0)
        sim[denom <= 0] = 0.0
        local = np.arange(stop - start)
        sim[local, start + local] = 0.0  # an item is not its own neighbour
        if k < n_items:
            idx = np.argpartition(sim, n_items - k, axis=1)[:, n_items - k :]
        else:
            idx = np.broadcast_to(np.arange(n_items), sim.shape)
        top = np.take_along_axis(sim, idx, axis=1)
        keep = top > 0
        rows.append(idx[keep])
        cols.append(np.broadcast_to((start + local)[:, None], idx.shape)[keep])
        vals.append(top[keep])
    W = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items))
    return W
