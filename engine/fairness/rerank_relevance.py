"""Re-rankers that trade relevance against one other objective per item or per list.

:func:`mmr` (diversity: similarity to the items already picked), :func:`popularity_penalty`
(long tail: log-popularity) and :func:`provider_rerank` (exposure: over-exposed providers).
Conventions (inputs, normalisation, strength 0 = plain top-k) are :mod:`engine.fairness.rerank_base`'s.
"""

from __future__ import annotations

import numpy as np

from engine.fairness.rerank_base import (
    _check_items,
    _check_strength,
    _check_unit,
    _chunks,
    _dense,
    _pad,
    _pick,
    _prepare,
)


def mmr(
    candidates: np.ndarray,
    scores: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    lam: float,
) -> np.ndarray:
    r"""Maximal Marginal Relevance re-ranking (Carbonell & Goldstein, SIGIR 1998).

    Items are picked one at a time. Each step takes the candidate that
    maximises

    .. math:: (1 - \lambda)\,\mathrm{rel}(i) - \lambda \max_{j \in S} \cos(v_i, v_j),

    where ``rel`` is the per-user min-max normalised score and ``S`` the items
    picked so far. In the paper, λ weights relevance. Here λ weights
    **diversity**, so ``"mmr:0.3"`` means diversity strength 0.3, and ``lam=0``
    returns the plain top-k.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        item_vectors: ``[n_items, D]`` item representations compared by cosine
            similarity: embeddings, or multi-hot categories (then cosine is the
            Ochiai overlap of the category sets). All-zero rows have similarity
            0 with everything.
        k: list length.
        lam: diversity strength in ``[0, 1]``.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    _check_unit(lam, "lam")
    cands, rel, valid = _prepare(candidates, scores, k)
    if lam == 0:
        return _pad(np.where(valid, cands, -1)[:, :k], k)
    vectors = _dense(item_vectors, "item_vectors")
    _check_items(cands, valid, len(vectors), "item_vectors")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    steps = min(k, cands.shape[1])
    out = np.full((len(cands), k), -1, dtype=np.int64)
    for rows in _chunks(len(cands), cands.shape[1] * unit.shape[1]):
        c, r, avail = cands[rows], rel[rows], valid[rows].copy()
        vec = unit[np.where(avail, c, 0)]  # [u, C, D]; padding rows are masked by avail
        users = np.arange(len(c))
        max_sim = np.zeros(c.shape, dtype=np.float32)
        for step in range(steps):
            objective = (1.0 - lam) * r - lam * max_sim if step else r
            pick, ok = _pick(objective, avail)
            out[rows, step] = np.where(ok, c[users, pick], -1)
            avail[users, pick] = False
            sim = np.einsum("ucd,ud->uc", vec, vec[users, pick])
            max_sim = np.maximum(max_sim, sim) if step else sim
    return out


def popularity_penalty(
    candidates: np.ndarray,
    scores: np.ndarray,
    item_popularity: np.ndarray,
    k: int,
    strength: float,
) -> np.ndarray:
    r"""Penalise popular items: rank by ``rel(i) - strength * p(i)``.

    ``p(i) = log(1 + pop_i) / log(1 + max pop)`` is the catalog's
    log-popularity scaled to ``[0, 1]``. The log stops a few blockbusters from
    taking up the whole scale. ``rel`` is the per-user min-max normalised
    score. Ranking by ``rel + strength * (1 - p)``, a long-tail boost, gives
    the same order, so this one function covers both views. The items do not
    interact, so this is a sort, not a greedy loop. Raising ``strength`` never
    lowers the number of tail items in a list: each item that drops out is
    replaced by a less popular one.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        item_popularity: ``[n_items]`` non-negative popularity, e.g. training interaction counts.
        k: list length.
        strength: penalty weight, ``>= 0``. At 1 a full popularity range costs
            as much as the full relevance range.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    _check_strength(strength, "strength")
    cands, rel, valid = _prepare(candidates, scores, k)
    if strength == 0:
        return _pad(np.where(valid, cands, -1)[:, :k], k)
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1 or (pop < 0).any() or not np.isfinite(pop).all():
        raise ValueError(f"item_popularity must be a finite non-negative 1-D array (got shape {pop.shape})")
    _check_items(cands, valid, len(pop), "item_popularity")
    top = np.log1p(pop.max())
    p = np.log1p(pop) / top if top > 0 else np.zeros_like(pop)
    adjusted = np.where(valid, rel - strength * p[np.where(valid, cands, 0)], -np.inf)
    order = np.argsort(-adjusted, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(cands, order, axis=1)
    ok = np.take_along_axis(valid, order, axis=1)
    return _pad(np.where(ok, picked, -1), k)


def provider_rerank(
    candidates: np.ndarray, scores: np.ndarray, over_exposed: np.ndarray, k: int, strength: float
) -> np.ndarray:
    """Provider-aware re-ranking: rank by ``rel(i) - strength * over_exposed(i)``.

    ``rel`` is the per-user min-max normalised score (this module's
    convention) and ``over_exposed(i)`` is 1 for items of providers that the
    plain lists expose beyond their catalog share. At strength 0 this is the
    plain top-k; at strength ``s`` an item of an over-exposed provider keeps
    its place only if it beats the best alternative by more than ``s`` of the
    user's relevance range, so exposure moves towards under-exposed
    providers, a deterministic post-processing in the spirit of exposure-fair
    ranking (Singh & Joachims, KDD 2018) without its per-user optimisation.

    Implemented with :func:`popularity_penalty`, whose penalty
    ``log(1 + x) / log(1 + max x)`` is exactly ``x`` for a 0/1 vector.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        over_exposed: ``[n_items]`` 0/1 indicator.
        k: list length.
        strength: penalty weight, ``>= 0``.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    flags = np.asarray(over_exposed, dtype=np.float64)
    if flags.ndim != 1 or not np.isin(flags, (0.0, 1.0)).all():
        raise ValueError(f"over_exposed must be a 1-D 0/1 indicator (got shape {flags.shape})")
    return popularity_penalty(candidates, scores, flags, k, strength)
