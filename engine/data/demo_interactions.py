"""The demo world's interactions: which items each user consumes, their ratings and timestamps.

Steps 6, 8 and 9 of the generative story in :mod:`engine.data.synthetic`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from engine.data.demo_catalog import CLUSTER_NAMES
from engine.data.schema import ITEM, RATING, TIMESTAMP, USER

logger = logging.getLogger("engine.data.synthetic")  # the generator's logger, as before the split

_T0 = 1_672_531_200  # 2023-01-01T00:00:00Z
_SPAN = 2 * 365 * 86_400


# --------------------------------------------------------------------------- interactions
def sample_organic(
    rng: np.random.Generator,
    pop: np.ndarray,
    item_cluster: np.ndarray,
    c1: np.ndarray,
    c2: np.ndarray,
    w1: np.ndarray,
    explore: np.ndarray,
    temper: np.ndarray,
    count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw each user's ``count`` distinct items; returns (user, item, draw-order key) rows.

    A user with popularity temper ``t`` picks items with weight ``pop ** t``
    (``t = 1``: by popularity; smaller ``t``: deeper into the long tail).
    """
    n_items = len(pop)
    by_cluster = np.argsort(item_cluster, kind="stable")
    levels, table_of = np.unique(temper, return_inverse=True)
    tables = [_cdf_tables(pop**t, item_cluster, by_cluster) for t in levels]

    u_all = np.empty(0, dtype=np.int64)
    i_all = np.empty(0, dtype=np.int64)
    have = np.zeros(len(count), dtype=np.int64)
    todo = np.arange(len(count))
    factor = 1.3
    for _ in range(40):
        m = np.ceil((count[todo] - have[todo]) * factor).astype(np.int64) + 2
        uu = np.repeat(todo, m)
        k = len(uu)
        c = np.where(rng.random(k) < w1[uu], c1[uu], c2[uu])
        u_within, u_anywhere = c + rng.random(k), rng.random(k)
        within = np.empty(k, dtype=np.int64)
        anywhere = np.empty(k, dtype=np.int64)
        tab = table_of[uu]
        for t, (cum_cluster, cum_global) in enumerate(tables):
            rows = tab == t
            pos = np.searchsorted(cum_cluster, u_within[rows], side="right")
            within[rows] = by_cluster[np.minimum(pos, n_items - 1)]
            pos = np.searchsorted(cum_global, u_anywhere[rows], side="right")
            anywhere[rows] = np.minimum(pos, n_items - 1)
        ii = np.where(rng.random(k) < explore[uu], anywhere, within)
        # Keep first occurrences (earlier rounds come first), then cap each user at their count.
        u_cat = np.concatenate([u_all, uu])
        i_cat = np.concatenate([i_all, ii])
        _, first = np.unique(u_cat * n_items + i_cat, return_index=True)
        first.sort()
        u_cat, i_cat = u_cat[first], i_cat[first]
        order = np.argsort(u_cat, kind="stable")
        u_cat, i_cat = u_cat[order], i_cat[order]
        rank = np.arange(len(u_cat)) - np.searchsorted(u_cat, u_cat, side="left")
        keep = rank < count[u_cat]
        u_all, i_all = u_cat[keep], i_cat[keep]
        have = np.bincount(u_all, minlength=len(count))
        todo = np.flatnonzero(have < count)
        if len(todo) == 0:
            break
        factor *= 2.0
    if len(todo):
        logger.warning("demo world: %d users got fewer interactions than drawn", len(todo))
    key = (np.arange(len(u_all)) - np.searchsorted(u_all, u_all, side="left")).astype(np.float64)
    return u_all, i_all, key


def _cdf_tables(weight: np.ndarray, item_cluster: np.ndarray, by_cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-CDF tables of item weights: within each cluster (in ``by_cluster`` order) and catalog-wide.

    Cluster c's cumulative weight occupies (c, c + 1], so a single searchsorted
    on ``c + u`` samples within any cluster.
    """
    n_clusters = len(CLUSTER_NAMES)
    w = weight[by_cluster]
    cl = item_cluster[by_cluster]
    seg_total = np.bincount(cl, weights=w, minlength=n_clusters)
    cum = np.cumsum(w)
    seg_start = np.concatenate([[0.0], np.cumsum(seg_total)[:-1]])
    cum_cluster = cl + (cum - seg_start[cl]) / np.where(seg_total[cl] > 0, seg_total[cl], 1.0)
    last = np.r_[cl[1:] != cl[:-1], True]
    cum_cluster[last] = cl[last] + 1.0  # exact segment ends, immune to rounding
    cum_global = np.cumsum(weight) / weight.sum()
    cum_global[-1] = 1.0
    return cum_cluster, cum_global


def draw_ratings(
    rng: np.random.Generator,
    u: np.ndarray,
    i: np.ndarray,
    liked: np.ndarray,
    triggered: np.ndarray,
    quality: np.ndarray,
    n_users: int,
) -> np.ndarray:
    """Integer ratings 1..5: liked (in-taste) items score about one star higher."""
    user_bias = rng.normal(0.0, 0.35, size=n_users)
    mean = 2.8 + 1.0 * liked + 0.3 * triggered + user_bias[u] + quality[i]
    return np.clip(np.rint(mean + rng.normal(0.0, 0.8, size=len(u))), 1.0, 5.0)


def draw_timestamps(rng: np.random.Generator, u: np.ndarray, n_users: int) -> np.ndarray:
    """Strictly increasing Unix seconds per user (rows sorted by user, then session order)."""
    start = _T0 + rng.uniform(0.0, 0.8, size=n_users) * _SPAN
    end = start + (_T0 + _SPAN - start) * rng.uniform(0.2, 1.0, size=n_users)
    # Bursty sessions: most gaps are short, some long.
    gaps = np.where(rng.random(len(u)) < 0.7, rng.exponential(0.05, len(u)), rng.exponential(1.0, len(u)))
    cum = np.cumsum(gaps)
    first = np.searchsorted(u, np.arange(n_users), side="left")
    last = np.searchsorted(u, np.arange(n_users), side="right") - 1
    before = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
    has = last >= first
    total = np.where(has, cum[np.maximum(last, 0)] - before, 1.0)
    frac = (cum - before[u]) / total[u]
    ts = np.floor(start[u] + frac * (end[u] - start[u])).astype(np.int64)
    # Make strictly increasing within a user: running max of (ts - position), per user.
    position = np.arange(len(u)) - first[u]
    shifted = ts - position + u.astype(np.int64) * (4 * _SPAN)
    ts = np.maximum.accumulate(shifted) - u.astype(np.int64) * (4 * _SPAN) + position
    return ts


# --------------------------------------------------------------------------- frame
def interaction_frame(users: np.ndarray, items: np.ndarray, rating: np.ndarray, timestamp: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER: pd.array(users, dtype="str"),
            ITEM: pd.array(items, dtype="str"),
            RATING: rating.astype(np.float64),
            TIMESTAMP: timestamp.astype(np.int64),
        }
    )
