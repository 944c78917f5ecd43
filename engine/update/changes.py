"""Which users' top-K lists an update changed most."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from engine.data.schema import USER
from engine.data.split import SplitData, U
from engine.evaluation.ranking import topk_items
from engine.recommender import Recommender
from engine.update.merge import pair_keys

log = logging.getLogger(__name__)


def what_changed(old: Recommender, new: Recommender, *, k: int = 10, limit: int | None = None) -> pd.DataFrame:
    """Users whose top-K list changed most between two versions, most changed first.

    Only users both versions know are compared (a new user has no list before).

    Args:
        old: the recommender before the update.
        new: the recommender after it.
        k: list length (default: 10).
        limit: keep at most this many rows (default: all).

    Returns:
        Columns ``user_id``, ``changed`` (items of the old list no longer in the new one),
        ``overlap`` (share of the list kept), ``new_interactions`` (training pairs the update
        added for the user), ``entered`` / ``left`` (item ids), ``top_before`` / ``top_after``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k!r})")
    users = list(old.idmap.users)
    k = min(k, old.idmap.n_items, new.idmap.n_items)
    before = topk_items(old.model, np.arange(len(users)), old.prep.split.matrix("train"), k)
    after = topk_items(new.model, new.idmap.user_indices(users), new.prep.split.matrix("train"), k)
    old_items, new_items = np.asarray((*old.idmap.items, "")), np.asarray((*new.idmap.items, ""))
    before_ids, after_ids = old_items[before], new_items[after]  # -1 (padding) maps to ""
    added = _added_pairs(old.prep.split, new.prep.split)
    rows = []
    for n, uid in enumerate(users):
        b = [x for x in before_ids[n] if x]
        a = [x for x in after_ids[n] if x]
        kept = len(set(b) & set(a))
        rows.append(
            {
                USER: uid,
                "changed": len(b) - kept,
                "overlap": kept / max(len(b), 1),
                "new_interactions": int(added.get(n, 0)),
                "entered": [x for x in a if x not in set(b)],
                "left": [x for x in b if x not in set(a)],
                "top_before": b,
                "top_after": a,
            }
        )
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(["changed", "new_interactions", USER], ascending=[False, False, True], kind="stable")
    frame = frame.reset_index(drop=True)
    return frame if limit is None else frame.head(limit)


def _added_pairs(old: SplitData, new: SplitData) -> dict[int, int]:
    n_items = new.n_items
    fresh = ~np.isin(pair_keys(new.train, n_items), pair_keys(old.train, n_items))
    users = new.train[U].to_numpy()[fresh]
    counts = np.bincount(users, minlength=old.n_users)[: old.n_users]
    return {int(u): int(c) for u, c in enumerate(counts) if c}
