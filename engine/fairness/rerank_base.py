"""What every re-ranker shares: input checks, per-user score normalisation, plain top-k, padding.

Every re-ranker takes a candidate list per user (``candidates [n_users, C]``
internal item indices, ``scores [n_users, C]``, higher is better) and returns
``[n_users, k]`` item indices, best first, padded with ``-1`` when a user has
fewer than ``k`` valid candidates. A candidate is invalid when its index is
negative or its score is not finite.

Shared conventions, so that one strength knob means the same thing everywhere:

* scores are min-max normalised per user over the valid candidates, to
  ``[0, 1]``, before they are mixed with anything, so the strength is unit-free;
* the strength is the weight of the **non-relevance** objective, so strength 0
  always returns the plain top-k by score, exactly;
* greedy re-rankers run one step for all users at once, so the Python loop is
  ``k`` steps long whatever the number of users.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

# Gathered candidate features are processed in user chunks of at most this many
# floats, so the memory stays bounded (e.g. 384-d text vectors x 100 candidates).
_CHUNK_FLOATS = 2_000_000


def top_k(candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Plain top-``k`` by score; ties keep candidate order.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` scores (non-finite = invalid).
        k: list length.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    cands, _, valid = _prepare(candidates, scores, k)
    return _pad(np.where(valid, cands, -1)[:, :k], k)


def _prepare(candidates: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; sort each row by score (ties keep candidate order); min-max normalise valid scores.

    Returns ``(candidates, rel, valid)``, all ``[n_users, C]`` and sorted best first
    with invalid entries last. ``rel`` is 0 where invalid.
    """
    cands = np.asarray(candidates)
    sc = np.asarray(scores, dtype=np.float64)
    if cands.ndim != 2 or cands.shape != sc.shape:
        raise ValueError(
            f"candidates and scores must be 2-D arrays of the same shape (got {cands.shape} and {sc.shape})"
        )
    if cands.size and not np.issubdtype(cands.dtype, np.integer):
        raise ValueError(f"candidates must hold integer item indices (got dtype {cands.dtype})")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (got {k!r})")
    cands = cands.astype(np.int64, copy=False)
    valid = (cands >= 0) & np.isfinite(sc)
    _check_duplicates(cands, valid)
    key = np.where(valid, sc, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    cands = np.take_along_axis(cands, order, axis=1)
    key = np.take_along_axis(key, order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    lo = np.min(np.where(valid, key, np.inf), axis=1, keepdims=True)
    hi = np.max(np.where(valid, key, -np.inf), axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore"):
        rel = np.where(valid & (span > 0), (key - lo) / np.where(span > 0, span, 1.0), 0.0)
    return cands, rel, valid


def _check_duplicates(cands: np.ndarray, valid: np.ndarray) -> None:
    """A candidate listed twice could be recommended twice; reject it and name the user row."""
    marked = np.where(valid, cands, -1 - np.arange(cands.shape[1])[None, :])  # padding never collides
    srt = np.sort(marked, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise ValueError(f"candidates row {row} lists the same item more than once")


def _check_items(cands: np.ndarray, valid: np.ndarray, n_items: int, what: str) -> None:
    if valid.any() and cands[valid].max() >= n_items:
        top = int(cands[valid].max())
        raise ValueError(f"candidates hold item index {top} but {what} has {n_items} rows")


def _check_unit(value: float, name: str) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (got {value!r})")


def _check_strength(value: float, name: str) -> None:
    if not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be finite and >= 0 (got {value!r})")


def _pick(objective: np.ndarray, avail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best available column per row, and whether the row had any available column."""
    masked = np.where(avail, objective, -np.inf)
    pick = np.argmax(masked, axis=1)
    return pick, avail.any(axis=1)


def _pad(topk: np.ndarray, k: int) -> np.ndarray:
    if topk.shape[1] >= k:
        return topk[:, :k]
    return np.hstack([topk, np.full((len(topk), k - topk.shape[1]), -1, dtype=topk.dtype)])


def _chunks(n_users: int, floats_per_user: int):
    step = max(1, _CHUNK_FLOATS // max(1, floats_per_user))
    for start in range(0, n_users, step):
        yield slice(start, min(start + step, n_users))


def _dense(matrix, name: str) -> np.ndarray:
    arr = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [n_items, D] array (got shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return arr
