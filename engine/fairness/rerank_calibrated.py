"""Calibrated re-ranking (Steck, RecSys 2018) and the miscalibration it optimises.

Conventions (inputs, normalisation, strength 0 = plain top-k) are :mod:`engine.fairness.rerank_base`'s.
"""

from __future__ import annotations

import numpy as np

from engine.data.graph import category_distributions
from engine.fairness.rerank_base import _check_items, _check_unit, _chunks, _dense, _pad, _pick, _prepare


def calibrated(
    candidates: np.ndarray,
    scores: np.ndarray,
    item_categories: np.ndarray,
    history_category_dist: np.ndarray,
    k: int,
    lam: float,
    *,
    alpha: float = 0.01,
) -> np.ndarray:
    r"""Calibrated re-ranking (Steck, "Calibrated Recommendations", RecSys 2018).

    Greedily builds each list ``I`` to maximise

    .. math:: (1 - \lambda) \sum_{i \in I} \mathrm{rel}(i) - \lambda\,\mathrm{KL}(p \,\|\, \tilde q(I)),

    where ``p`` is the user's category distribution in their history and
    ``q(I)`` the category distribution of the list. Each item spreads a mass of
    1 evenly over its categories. Items have equal weight whatever their rank,
    and ``q`` is renormalised to sum to 1. ``q~ = (1 - alpha) q + alpha p``
    keeps the KL finite (Steck's smoothing). A step adds the item with the
    best marginal gain, which is Steck's greedy algorithm. ``lam=0`` returns
    the plain top-k. Users with an all-zero history row are ranked by
    relevance alone.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        item_categories: ``[n_items, G]`` multi-hot (or weighted) item categories.
        history_category_dist: ``[n_users, G]`` each user's category
            distribution in their history. Rows are renormalised to sum to 1.
        k: list length.
        lam: calibration strength in ``[0, 1]``.
        alpha: smoothing of ``q`` towards ``p`` (default: 0.01, Steck's value).

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    _check_unit(lam, "lam")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (got {alpha!r})")
    cands, rel, valid = _prepare(candidates, scores, k)
    if lam == 0:
        return _pad(np.where(valid, cands, -1)[:, :k], k)
    item_dist = _item_distributions(item_categories)
    _check_items(cands, valid, len(item_dist), "item_categories")
    target = _user_distributions(history_category_dist, len(cands), item_dist.shape[1])
    steps = min(k, cands.shape[1])
    out = np.full((len(cands), k), -1, dtype=np.int64)
    for rows in _chunks(len(cands), cands.shape[1] * item_dist.shape[1]):
        c, r, avail = cands[rows], rel[rows], valid[rows].copy()
        p = target[rows].astype(np.float32)  # [u, G]
        dist = item_dist[np.where(avail, c, 0)].astype(np.float32)  # [u, C, G]
        users = np.arange(len(c))
        chosen = np.zeros_like(p)  # category mass of the items picked so far
        for step in range(steps):
            kl = _kl_if_added(p, chosen, dist, alpha)
            pick, ok = _pick((1.0 - lam) * r - lam * kl, avail)
            out[rows, step] = np.where(ok, c[users, pick], -1)
            avail[users, pick] = False
            chosen += np.where(ok[:, None], dist[users, pick], 0.0)
    return out


def calibration_kl(
    topk: np.ndarray,
    item_categories: np.ndarray,
    history_category_dist: np.ndarray,
    *,
    alpha: float = 0.01,
) -> np.ndarray:
    """Steck's miscalibration ``KL(p || q~)`` of each user's list, as :func:`calibrated` optimises it.

    Args:
        topk: ``[n_users, K]`` item indices (``-1`` = padding).
        item_categories: ``[n_items, G]`` multi-hot item categories.
        history_category_dist: ``[n_users, G]`` history category distributions.
        alpha: smoothing (default: 0.01).

    Returns:
        ``[n_users]`` KL divergences. Users with no history distribution get 0.
    """
    topk = np.asarray(topk, dtype=np.int64)
    item_dist = _item_distributions(item_categories)
    target = _user_distributions(history_category_dist, len(topk), item_dist.shape[1])
    mass = (item_dist[np.maximum(topk, 0)] * (topk >= 0)[..., None]).sum(axis=1)
    return _kl(target, mass, alpha)


def _item_distributions(item_categories) -> np.ndarray:
    """Each item's category distribution: its row scaled to sum 1 (all-zero rows stay 0)."""
    cats = _dense(item_categories, "item_categories")
    if (cats < 0).any():
        raise ValueError("item_categories must be non-negative")
    return category_distributions(cats)


def _user_distributions(history_category_dist, n_users: int, n_categories: int) -> np.ndarray:
    p = _dense(history_category_dist, "history_category_dist")
    if p.shape != (n_users, n_categories):
        raise ValueError(
            f"history_category_dist must have shape {(n_users, n_categories)} "
            f"(one row per user, one column per category; got {p.shape})"
        )
    if (p < 0).any():
        raise ValueError("history_category_dist must be non-negative")
    total = p.sum(axis=1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def _kl_if_added(p: np.ndarray, chosen: np.ndarray, dist: np.ndarray, alpha: float) -> np.ndarray:
    """``[u, C]`` KL of each user's list if each candidate were added; same value as :func:`_kl`.

    The hot loop of :func:`calibrated`. It works in float32 and in place on
    one ``[u, C, G]`` buffer. ``KL = sum p log p - sum p log q~``, and the
    first term is a per-user constant. A 1e-30 floor inside the log makes
    ``p == 0`` terms ``0 * finite = 0`` without masking.
    """
    total = chosen.sum(axis=1)[:, None] + dist.sum(axis=2)  # [u, C] mass of list + candidate
    scale = np.where(total > 0, (1.0 - alpha) / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
    q = dist + chosen[:, None, :]
    q *= scale[:, :, None]
    q += (alpha * p + 1e-30)[:, None, :]
    np.log(q, out=q)
    cross = np.einsum("ug,ucg->uc", p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    return plogp[:, None] - cross


def _kl(p: np.ndarray, mass: np.ndarray, alpha: float) -> np.ndarray:
    """``KL(p || (1-alpha) q + alpha p)`` along the last axis, with ``q = mass / mass.sum()``.

    Terms with ``p == 0`` contribute 0; ``q~ >= alpha * p > 0`` elsewhere, so the
    result is finite. An all-zero ``p`` gives 0.
    """
    total = mass.sum(axis=-1, keepdims=True)
    q = mass / np.where(total > 0, total, 1.0)
    q_smooth = (1.0 - alpha) * q + alpha * p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(p > 0, q_smooth, 1.0)), 0.0)
    return terms.sum(axis=-1)
