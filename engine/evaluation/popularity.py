"""The one definition of head, mid and long tail that every metric, table and page uses.

Items are sorted by training popularity (interactions per item) and cut by
*share of interactions*, the three-group split of Abdollahpouri et al. ("The
Connection Between Popularity Bias, Calibration, and Fairness in
Recommendation", RecSys 2020; "Multi-sided Exposure Bias in Recommendation",
KDD-IRS 2020):

* **head**: the most popular items that together hold at most 20% of all
  training interactions (a few blockbusters);
* **long tail**: the least popular items that together hold at most 20% of
  all training interactions, plus every item nobody interacted with;
* **mid**: everything in between.

The long tail is what Elliot's APLT, PopRSP and PopREO call the tail: the
items outside the short head that holds 80% of interactions (here the short
head is head + mid). Items with the same popularity always fall in the same
tier, so the realised shares can be a little below 20%; a tie group is never
split by item index.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HEAD, MID, TAIL = "head", "mid", "tail"
TIERS = (HEAD, MID, TAIL)
HEAD_SHARE = 0.2
"""Largest share of training interactions the head holds."""
TAIL_SHARE = 0.2
"""Largest share of training interactions the long tail holds."""
ITEM_INDEX = "item_idx"
TIERS_DEFINITION = (
    "Head: the most popular items that together hold at most 20% of training interactions. "
    "Long tail: the least popular items that together hold at most 20% of training interactions, "
    "plus items nobody interacted with. Mid: everything in between."
)
"""The definition in plain words, for glossaries, reports and chart captions."""


def popularity_tiers(item_popularity: np.ndarray, head: float = HEAD_SHARE, tail: float = TAIL_SHARE) -> pd.Series:
    """Head / mid / tail tier of every item, by share of training interactions.

    Args:
        item_popularity: ``[n_items]`` non-negative interaction counts per internal item index.
        head: largest share of interactions held by the head (default: 0.2).
        tail: largest share of interactions held by the long tail (default: 0.2).

    Returns:
        Ordered categorical Series (categories ``head < mid < tail``) indexed by
        internal item index, named ``"popularity"``.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1 or len(pop) == 0:
        raise ValueError(f"item_popularity must be a non-empty 1-D array (got shape {pop.shape})")
    if (pop < 0).any() or not np.isfinite(pop).all():
        raise ValueError("item_popularity must be finite and non-negative")
    for name, value in (("head", head), ("tail", tail)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a share in [0, 1] (got {value!r})")
    if head + tail > 1.0:
        raise ValueError(f"head + tail must not exceed 1 (got {head!r} + {tail!r})")
    total = pop.sum()
    if total <= 0:
        raise ValueError("item_popularity sums to 0: no interactions to split by")
    values, inverse, counts = np.unique(pop, return_inverse=True, return_counts=True)
    mass = values * counts / total  # interaction share held by each distinct popularity value
    # Cumulative share of all items at least as popular (head) / at most as popular (tail)
    # as each distinct value; a value joins a tier only with all items tied at it.
    from_top = np.cumsum(mass[::-1])[::-1]
    from_bottom = np.cumsum(mass)
    eps = 1e-12  # float slack so an exact 20% boundary counts as inside
    is_head = from_top <= head + eps
    is_tail = (from_bottom <= tail + eps) | (values == 0)
    is_tail &= ~is_head
    labels = np.where(is_head, HEAD, np.where(is_tail, TAIL, MID))[inverse]
    return pd.Series(
        pd.Categorical(labels, categories=list(TIERS), ordered=True),
        index=pd.RangeIndex(len(pop), name=ITEM_INDEX),
        name="popularity",
    )


def long_tail(item_popularity: np.ndarray) -> np.ndarray:
    """``bool [n_items]``: True for long-tail items (:func:`popularity_tiers` with the default shares).

    A catalog without any interaction has no head to speak of: every item is
    then in the long tail.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim == 1 and len(pop) and pop.sum() <= 0 and (pop >= 0).all():
        return np.ones(len(pop), dtype=bool)
    return (popularity_tiers(pop) == TAIL).to_numpy()
