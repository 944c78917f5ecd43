"""The closed-form item-item relation ``S`` of :class:`~engine.models.itemgat.ItemGAT`, fitted on the training matrix.

Three forms, pure functions of the matrix (no model state):

* EASE's ``B = I - P / diag(P)``, ``P = (X^T X + lambda I)^{-1}`` (Steck, 2019), dense over the active
  items: every source counts;
* EASE restricted to each target item's ``k`` most similar sources (cosine of co-occurrence) and
  refitted there: per target ``i``, ridge regression of ``X_i`` on those ``k`` columns only,
  ``(G_NN + lambda I) b = G_Ni`` with ``G = X^T X``, the neighbourhood-restricted SLIM of Ning &
  Karypis (2011, "fsSLIM"). Refitting, unlike truncating the dense ``B``, lets the kept sources
  absorb what the dropped ones explained; and each item's score rests on at most ``k`` of the
  user's past items, so explanations are shorter;
* GF-CF's symmetric-normalised co-occurrence filter ``R~^T R~`` (Shen et al., 2021), computed in
  column blocks and kept as the strongest ``k`` sources per target item (``relation="gfcf"``).

Catalogs too large for an ``A x A`` matrix (``dense_gram=False``) keep the refitted form: each
item's sources come from column blocks of the sparse co-occurrence, and each block of targets'
systems from the interactions of the items involved, so memory grows with ``A x k``, not ``A^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from engine.data.graph import EDGE_UI, RecGraph
from engine.models.ease import ease_weights

# Sources per item of the refitted EASE relation on a catalog too large for A x A matrices when
# no form is asked for (0 would be the dense form, which does not fit there), and the width of
# the one ranked search whose prefixes every form there takes (so a form's sources are the same
# whichever form was searched first, in a fit, an update or a ridge search).
LARGE_SOURCES = 128
# Targets x sources per block of a refit without a dense G: ~256 was the fastest on a
# 20,000-item catalog (a block's systems come from a sparse product over that union of items).
_UNION_ITEMS = 256


def relation_buffers(
    X: sp.csr_matrix,
    active: np.ndarray,
    *,
    n_items: int,
    dense: bool,
    l2: float,
    neighbours: int,
    sources: int = 0,
    neighbourhoods: Neighbourhoods | None = None,
    dense_gram: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(dense [A, A] or empty, top-k index [I, k] or empty, top-k value [I, k] or empty)`` of ``X``.

    Args:
        X: binary user x item training matrix.
        active: the items with at least one training interaction (sorted).
        n_items: number of items (rows of the top-k buffers).
        dense: an EASE relation, dense or refitted (else GF-CF's top-``neighbours`` rows).
        l2: EASE ridge ``lambda``.
        neighbours: sources kept per target item on the GF-CF path.
        sources: on the EASE path, sources kept per target item and refitted
            (:func:`nearest_sources` then :func:`ease_refit`); 0, or at least ``A - 1``, keeps the
            dense ``[A, A]`` relation
            (default: 0).
        neighbourhoods: the refit's sources, already computed on ``X`` for ``sources`` (default:
            None, computed here).
        dense_gram: whether ``A x A`` matrices fit in memory (default: True). When False the EASE
            relation is always refitted, from the sparse co-occurrence (``sources`` must then be
            between 1 and ``A - 2``).
    """
    Xa = X[:, active].tocsc()
    empty = (torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, 0))
    refit = 0 < sources < len(active) - 1
    if dense and not dense_gram and not refit:
        raise ValueError(
            f"{len(active)} active items are too many for a dense relation: pass 1 <= sources < {len(active) - 1} "
            f"(got {sources!r})"
        )
    if dense and not refit:
        return ease_weights(Xa, l2), empty[1], empty[2]
    if dense:
        if neighbourhoods is not None and neighbourhoods.k != sources:
            raise ValueError(f"neighbourhoods hold {neighbourhoods.k} sources per item, not {sources}")
        nb = neighbourhoods or form_sources(Xa, sources, dense_gram=dense_gram)
        idx, val = nb.index, ease_refit(nb, l2)
    else:
        idx, val = gfcf_top_k(Xa, neighbours)
    act = torch.as_tensor(active, dtype=torch.long)
    index = torch.zeros(n_items, idx.shape[1], dtype=torch.long)
    value = torch.zeros(n_items, idx.shape[1])
    index[act], value[act] = act[idx], val
    # rows of cold items (all-zero index) must stay sorted for the binary search: 0-padding at value 0
    return empty[0], index, value


def default_l2(X: sp.spmatrix) -> float:
    """EASE ridge that scales with the data: 5 x the mean training degree of the active items."""
    return 5.0 * mean_item_degree(X)


def mean_item_degree(X: sp.spmatrix) -> float:
    """Mean training degree of the items with at least one training interaction (1.0 when none)."""
    deg = np.asarray(X.sum(axis=0)).ravel()
    deg = deg[deg > 0]
    return float(deg.mean()) if len(deg) else 1.0


def train_matrix(graph: RecGraph) -> sp.csr_matrix:
    """Binary user x item training matrix of the graph's user->item edges."""
    ui = (graph.edge_type == EDGE_UI).cpu()
    u = graph.edge_index[0, ui].cpu().numpy()
    i = graph.edge_index[1, ui].cpu().numpy() - graph.n_users
    X = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(graph.n_users, graph.n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


@dataclass(frozen=True)
class Neighbourhoods:
    """Each active item's ``k`` most similar sources and the co-occurrences a refit reads.

    Free of the ridge, so one computation serves every ridge a fit tries (:func:`ease_refit`).
    The co-occurrences are either the dense ``G = X^T X`` (``gram``) or, for catalogs too large
    for an ``A x A`` matrix, the interactions themselves (``matrix``), from which each block of
    targets' systems is computed when it is solved.
    """

    gram: Tensor | None  # G = X^T X over the active items [A, A], float32 (counts: exact up to 2^24)
    index: Tensor  # [A, k]: target i's sources, sorted
    matrix: sp.csc_matrix | None = None  # [U, A] float32, when gram is None
    ranked: Tensor | None = None  # [A, k'] with k' >= k: the sources by decreasing cosine (for take)

    @property
    def k(self) -> int:
        return int(self.index.shape[1])

    def take(self, k: int) -> Neighbourhoods:
        """The same items' ``k`` most similar sources (``k`` at most the ranked width)."""
        if self.ranked is None or not 1 <= k <= self.ranked.shape[1]:
            raise ValueError(f"can take 1..{0 if self.ranked is None else self.ranked.shape[1]} sources (got {k!r})")
        index = torch.sort(self.ranked[:, :k], dim=1).values
        return Neighbourhoods(gram=self.gram, index=index, matrix=self.matrix, ranked=self.ranked)


def nearest_sources(
    Xa: sp.spmatrix, k: int, *, dense_gram: bool = True, max_block_entries: int = 1 << 22
) -> Neighbourhoods:
    """The ``k`` items ``j != i`` of largest co-occurrence cosine ``G_ji / sqrt(G_jj G_ii)`` per item ``i``.

    Args:
        Xa: binary user x active-item matrix ``[U, A]``.
        k: sources per target item (``1 <= k < A``).
        dense_gram: keep ``G`` as a dense ``[A, A]`` matrix (default: True); False computes the
            cosines in column blocks of the sparse co-occurrence and keeps only the interactions.
        max_block_entries: bound on the entries of a block's ``[A, block]`` cosines (default: 4M).
    """
    n = Xa.shape[1]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} active items (got {k!r})")
    X32 = Xa.tocsc().astype(np.float32)
    G = torch.from_numpy((X32.T @ X32).toarray()) if dense_gram else None
    rows = None if dense_gram else X32.tocsr()
    norm = torch.from_numpy(np.asarray(X32.sum(axis=0)).ravel()).clamp(min=1.0).sqrt()
    ranked = torch.empty(n, k, dtype=torch.long)
    block = max(1, max_block_entries // n)
    for b in range(0, n, block):
        cols = torch.arange(b, min(b + block, n))
        if G is not None:
            cos = (G[:, cols] / norm[:, None] / norm[cols][None, :]).T  # [block, A]
        else:  # block^T X touches only the users of the block's items
            cos = torch.from_numpy((X32[:, b : b + len(cols)].T.tocsr() @ rows).toarray())
            cos = cos / norm[None, :] / norm[cols][:, None]  # the dense path's rounding: source, then target
        cos[cols - b, cols] = -1.0  # never its own source (EASE's zero diagonal)
        ranked[cols] = torch.topk(cos, k, dim=1).indices
    index = torch.sort(ranked, dim=1).values
    return Neighbourhoods(gram=G, index=index, matrix=None if dense_gram else X32, ranked=ranked)


def large_sources(n_active: int) -> int:
    """The sources per item a large catalog keeps when no form is asked: :data:`LARGE_SOURCES`, fewer on a tiny one."""
    return min(LARGE_SOURCES, max(n_active - 2, 1))


def form_sources(Xa: sp.spmatrix, k: int, *, dense_gram: bool = True) -> Neighbourhoods:
    """The sources a form of ``k`` per item refits on: :func:`nearest_sources` over the dense ``G``,
    or, without one, the prefix of a search at least :func:`large_sources` wide, so a form's
    sources do not depend on which form was searched first (its ``ranked`` serves the others).
    """
    if dense_gram:
        return nearest_sources(Xa, k)
    return nearest_sources(Xa, max(k, large_sources(Xa.shape[1])), dense_gram=False).take(k)


def ease_refit(nb: Neighbourhoods, l2: float, *, max_block_entries: int = 1 << 22) -> Tensor:
    """Weights ``[A, k]``: per target ``i``, the ridge regression of column ``i`` on its sources.

    ``(G_NN + l2 I) b = G_Ni`` (Cholesky, float64), ``max_block_entries / k^2`` targets at a time
    from a dense ``nb.gram``; without one, a few targets at a time, their systems computed from the
    interactions of the items they involve (:func:`_block_gram`).

    Args:
        nb: the sources (:func:`nearest_sources`).
        l2: ridge strength (> 0).
        max_block_entries: bound on the entries of a block's systems (default: 4M, 32 MB in float64).
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (got {l2!r})")
    n, k = nb.index.shape[0], nb.k
    eye = l2 * torch.eye(k, dtype=torch.float64)
    val = torch.empty(n, k)
    block = max(1, max_block_entries // (k * k)) if nb.gram is not None else max(1, _UNION_ITEMS // k)
    for b in range(0, n, block):
        cols = torch.arange(b, min(b + block, n))
        top = nb.index[cols]  # [block, k]
        G, top_at, col_at = (nb.gram, top, cols) if nb.gram is not None else _block_gram(nb.matrix, top, cols)
        system = G[top_at[:, :, None], top_at[:, None, :]].double() + eye  # [block, k, k]
        rhs = G[top_at, col_at[:, None]].double()  # [block, k]
        # G_NN + l2 I is symmetric positive definite: Cholesky (batched LU failed on some blocks)
        factor = torch.linalg.cholesky(system)
        val[cols] = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1).float()
    return val


def _block_gram(X: sp.csc_matrix, top: Tensor, cols: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(G over the block's items, top's positions in it, cols' positions in it)`` from the interactions."""
    items, at = np.unique(np.concatenate([top.numpy().ravel(), cols.numpy()]), return_inverse=True)
    Xu = X[:, items]
    G = torch.from_numpy((Xu.T @ Xu).toarray())
    at = torch.from_numpy(at)
    return G, at[: top.numel()].reshape(top.shape), at[top.numel() :]


def gfcf_top_k(Xa: sp.csc_matrix, k: int, block: int = 512) -> tuple[Tensor, Tensor]:
    """Top-``k`` sources per item of GF-CF's linear filter ``R~^T R~`` (R~ = D_u^-1/2 R D_i^-1/2), blockwise."""
    du = np.asarray(Xa.sum(axis=1)).ravel()
    di = np.asarray(Xa.sum(axis=0)).ravel()
    R = sp.diags(1 / np.sqrt(np.maximum(du, 1))) @ Xa @ sp.diags(1 / np.sqrt(np.maximum(di, 1)))
    R = R.tocsc().astype(np.float32)
    Rt = R.T.tocsr()
    n = R.shape[1]
    k = min(k, n)
    idx = torch.empty(n, k, dtype=torch.long)
    val = torch.empty(n, k)
    for b in range(0, n, block):
        G = torch.from_numpy((Rt @ R[:, b : b + block]).toarray())  # [n, block]
        cols = torch.arange(b, min(b + block, n))
        G[cols, cols - b] = 0.0  # no self-loop, as EASE's zero diagonal
        top = torch.topk(G.T, k, dim=1).indices
        top = torch.sort(top, dim=1).values
        idx[b : b + block] = top
        val[b : b + block] = torch.gather(G.T, 1, top)
    return idx, val
