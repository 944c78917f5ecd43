"""Top-K over the full catalog with each user's seen items excluded: the one implementation.

The plain evaluation (:func:`engine.evaluation.ranking.evaluate`), the audit's
candidate lists (the re-rankers' input) and the update path all rank through
:func:`top_k`, so "the model's top 10" means the same lists everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from engine.data.split import SplitData
from engine.models.base import ScoreModel

PARTS = ("valid", "test")


class TopK(NamedTuple):
    """Ranked items and their scores, rows aligned with the users ranked for."""

    items: np.ndarray
    """``int64 [n_users, k]`` item indices, best first; ``-1`` where exclusion left the slot empty."""
    scores: np.ndarray
    """``float64 [n_users, k]`` model scores; ``-inf`` for empty slots."""


@torch.no_grad()
def top_k(
    model: ScoreModel,
    users: np.ndarray,
    exclude: sp.spmatrix,
    k: int,
    *,
    batch_size: int = 1024,
) -> TopK:
    """Top-``k`` items per user over the full catalog, excluded items masked to ``-inf``.

    Args:
        model: anything with ``score(users) -> [B, n_items]``.
        users: internal user indices to rank for.
        exclude: ``[n_users, n_items]`` binary matrix indexed by internal user
            index (not by position in ``users``); its non-zeros are never ranked.
        k: list length, ``1 <= k <= n_items``.
        batch_size: users scored at once (default: 1024).

    Returns:
        A :class:`TopK`; a slot is item ``-1`` / score ``-inf`` when the user has
        fewer than ``k`` items left after exclusion.
    """
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    n_items = exclude.shape[1]
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be in [1, n_items={n_items}] (got {k!r})")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive (got {batch_size!r})")
    exclude = sp.csr_matrix(exclude)
    items = np.empty((len(users), k), dtype=np.int64)
    values = np.empty((len(users), k), dtype=np.float64)
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
        top_values, top_index = torch.topk(scores, k, dim=1)
        top_index[torch.isneginf(top_values)] = -1
        items[start : start + len(batch)] = top_index.cpu().numpy()
        values[start : start + len(batch)] = top_values.double().cpu().numpy()
    return TopK(items, values)


def held_out(split: SplitData, part: str) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    """Who is evaluated on ``part``, what counts as relevant, and what is excluded from their lists.

    Args:
        split: the split the model was trained on.
        part: ``"test"`` (excludes train and valid items) or ``"valid"``
            (excludes train items only).

    Returns:
        ``(users, relevant, exclude)``: internal indices of users with at least
        one item in ``part``; the ``[n_users, n_items]`` matrix of ``part``;
        the ``[n_users, n_items]`` exclusion matrix (both indexed by internal
        user index, not by position in ``users``).
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {list(PARTS)} (got {part!r})")
    relevant = split.matrix(part)
    exclude = split.matrix("train")
    if part == "test":
        exclude = (exclude + split.matrix("valid")).tocsr()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    return users, relevant, exclude
