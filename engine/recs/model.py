"""Fixed recommendation lists that behave like a model: :class:`ListModel`.

Imported lists (another system's top-K per user) have no weights, but everything that
takes a model's lists — the audit, the comparison, the dashboard's Recommendations page —
asks a model for scores. A :class:`ListModel` answers with the imported score at each
listed item and ``-inf`` everywhere else, so a top-K over its scores is the imported list.
The audit does not rank through it (ties, and exclusion of seen items, could reorder or
shorten the lists): it takes the lists as given through :meth:`ListModel.lists_for`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

FILE, RANK = "file", "rank"
"""Where a list's scores come from: the imported file, or derived from the ranks."""


def rank_scores(n_users: int, length: int) -> np.ndarray:
    """``float64 [n_users, length]``: ``(length + 1 - rank) / length``, for lists imported without scores.

    Any strictly decreasing function of the rank ranks the same; this one is linear, so after the
    re-rankers' per-user min-max normalisation rank 1 is 1, rank ``length`` is 0 and the steps
    between are equal (the re-rankers see the lists' order and nothing more).
    """
    row = (length + 1 - np.arange(1, length + 1, dtype=np.float64)) / length
    return np.broadcast_to(row, (n_users, length)).copy()


class ListModel:
    """Imported top-K lists of some users, scored like a model.

    Args:
        users: ``int64 [N]`` internal indices of the listed users, ascending, no repeats.
        items: ``int64 [N, L]`` internal item indices, best first (every list has ``L`` items).
        scores: ``float64 [N, L]`` scores, non-increasing along each row.
        n_users: users of the split the indices refer to.
        n_items: items of the split.
        score_source: ``"file"`` (scores came with the lists) or ``"rank"`` (derived from ranks).
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        scores: np.ndarray,
        *,
        n_users: int,
        n_items: int,
        score_source: str = FILE,
    ) -> None:
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        if items.ndim != 2 or items.shape != scores.shape or items.shape[0] != len(users):
            raise ValueError(
                f"ListModel: users [N], items [N, L] and scores [N, L] must agree "
                f"(got {users.shape}, {items.shape} and {scores.shape})"
            )
        if len(users) and (users.min() < 0 or users.max() >= n_users or np.any(np.diff(users) <= 0)):
            raise ValueError(f"ListModel: users must be ascending distinct indices in [0, {n_users})")
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"ListModel: item indices must lie in [0, {n_items})")
        if score_source not in (FILE, RANK):
            raise ValueError(f"ListModel: score_source must be {FILE!r} or {RANK!r} (got {score_source!r})")
        self.users, self.items, self.list_scores = users, items, scores
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.score_source = score_source
        # Row of each internal user in ``items`` (-1: no list), for O(1) lookups when scoring.
        self._row = np.full(self.n_users, -1, dtype=np.int64)
        self._row[users] = np.arange(len(users))

    def __repr__(self) -> str:
        return (
            f"ListModel(users={len(self.users)}, length={self.length}, n_items={self.n_items}, "
            f"score_source={self.score_source!r})"
        )

    @property
    def length(self) -> int:
        """Items per list (``L``)."""
        return int(self.items.shape[1])

    def has_list(self, users: np.ndarray) -> np.ndarray:
        """``bool [len(users)]``: which of these internal users have a list."""
        return self._row[np.asarray(users, dtype=np.int64)] >= 0

    def lists_for(self, users: np.ndarray, n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The lists of those ``users`` that have one, as the audit's candidates.

        Args:
            users: internal user indices (e.g. the users with a held-out item).
            n: keep the first ``n`` items of each list (default: None, all ``L``).

        Returns:
            ``(covered users int64 [M], items int64 [M, n], scores float64 [M, n])``, in the
            order of ``users``.
        """
        users = np.asarray(users, dtype=np.int64)
        covered = users[self.has_list(users)]
        rows = self._row[covered]
        n = self.length if n is None else int(n)
        return covered, self.items[rows, :n].copy(), self.list_scores[rows, :n].copy()

    def fit(self, split: object) -> ListModel:
        """Nothing to fit: the lists are fixed (present so a ListModel is a ``FittedModel``)."""
        return self

    def score(self, users: Tensor) -> Tensor:
        """``float32 [len(users), n_items]``: the list scores at listed items, ``-inf`` elsewhere."""
        u = users.detach().cpu().numpy().astype(np.int64).reshape(-1)
        out = torch.full((len(u), self.n_items), float("-inf"), dtype=torch.float32)
        rows = self._row[u]
        have = np.flatnonzero(rows >= 0)
        if len(have):
            cols = torch.from_numpy(self.items[rows[have]])
            vals = torch.from_numpy(self.list_scores[rows[have]]).float()
            out[torch.from_numpy(have)[:, None], cols] = vals
        return out
