"""Training objectives shared by every embedding model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(
    user: Tensor,
    pos: Tensor,
    neg: Tensor,
    reg: list[Tensor] | None = None,
    *,
    weight_decay: float = 1e-4,
    pos_user: Tensor | None = None,
) -> Tensor:
    """Bayesian Personalised Ranking (Rendle et al., 2009) with batch-mean L2.

    Args:
        user: user embeddings [B, d].
        pos: embeddings of items the users interacted with [B, d].
        neg: embeddings of sampled negatives [B, d] (sampled from training data only).
        reg: ego (layer-0) parameters of the batch to regularise (default: none).
        weight_decay: L2 coefficient, applied as ``wd * sum ||x||^2 / (2B)`` (default: 1e-4).
        pos_user: user embeddings to score the positives with, where they differ from
            ``user`` (default: None, ``user``).

    Returns:
        Scalar loss.
    """
    diff = (user if pos_user is None else pos_user).mul(pos).sum(-1) - (user * neg).sum(-1)
    loss = F.softplus(-diff).mean()
    if reg and weight_decay > 0:
        l2 = sum(t.pow(2).sum() for t in reg) / (2 * user.shape[0])
        loss = loss + weight_decay * l2
    return loss


def sample_negatives(
    users: Tensor, n_items: int, train_indptr: Tensor, train_indices: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One negative per user, uniform over items the user has *not* interacted with in training.

    Rejection sampling against the training CSR (a few retries suffice at the
    densities we meet; remaining collisions are resampled until none are left).
    """
    neg = torch.randint(0, n_items, users.shape, generator=generator)
    for _ in range(20):
        bad = _is_positive(users, neg, train_indptr, train_indices)
        if not bad.any():
            break
        neg[bad] = torch.randint(0, n_items, (int(bad.sum()),), generator=generator)
    return neg


def _is_positive(users: Tensor, items: Tensor, indptr: Tensor, indices: Tensor) -> Tensor:
    # Binary search of each (user, item) in the user's sorted CSR row.
    start, end = indptr[users], indptr[users + 1]
    lo, hi = start.clone(), end.clone()
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        val = indices[mid.clamp(max=len(indices) - 1)]
        go_right = active & (val < items)
        lo = torch.where(go_right, mid + 1, lo)
        hi = torch.where(active & ~go_right, mid, hi)
    found = lo < end
    return found & (indices[lo.clamp(max=len(indices) - 1)] == items)
