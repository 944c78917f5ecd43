"""The demo world's users: groups, demographics, taste clusters and activity.

Steps 4-5 and 10 of the generative story in :mod:`engine.data.synthetic`: the minority and
majority groups, age band, region, one or two taste clusters and the number of organic
interactions per user, and the new sign-ups without history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.data.schema import USER

# Taste-cluster preference per group: the minority favours the last two clusters.
_TASTE_MAJORITY = np.array([0.20, 0.17, 0.17, 0.14, 0.14, 0.10, 0.04, 0.04])
_TASTE_MINORITY = np.array([0.04, 0.04, 0.10, 0.07, 0.03, 0.02, 0.35, 0.35])

AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-49", "50+")
_AGE_P = np.array([0.18, 0.30, 0.32, 0.20])
# Multiplicative tilt of cluster preference per age band (rows follow AGE_BANDS):
# the young lean to blockbusters and horror, the 50+ to heartfelt and true stories.
_AGE_TILT = np.array(
    [
        [1.3, 1.0, 0.8, 1.1, 1.2, 1.5, 0.7, 1.0],
        [1.1, 1.1, 0.9, 1.0, 1.1, 1.1, 0.9, 1.0],
        [1.0, 1.0, 1.1, 1.1, 0.9, 0.9, 1.1, 1.0],
        [0.7, 1.0, 1.4, 0.9, 0.7, 0.5, 1.5, 1.0],
    ]
)
REGIONS: tuple[str, ...] = ("Americas", "Europe", "Asia-Pacific", "Africa & Middle East")
_REGION_MAJORITY = np.array([0.35, 0.35, 0.22, 0.08])
_REGION_MINORITY = np.array([0.20, 0.20, 0.30, 0.30])

MINORITY_SHARE = 0.15
_MEDIAN_COUNT = {"majority": 36.0, "minority": 16.0}
_COUNT_SIGMA = 0.8
_MIN_COUNT, _MAX_COUNT = 5, 350


# --------------------------------------------------------------------------- users
def draw_users(rng: np.random.Generator, n: int, n_items: int) -> tuple[np.ndarray, ...]:
    """Group, age band, region, taste clusters (c1, c2 or -1, weight of c1) and interaction count."""
    minority = np.zeros(n, dtype=bool)
    minority[rng.choice(n, size=round(MINORITY_SHARE * n), replace=False)] = True
    age = rng.choice(len(AGE_BANDS), size=n, p=_AGE_P)
    region = np.where(
        minority,
        rng.choice(len(REGIONS), size=n, p=_REGION_MINORITY),
        rng.choice(len(REGIONS), size=n, p=_REGION_MAJORITY),
    )
    base = np.where(minority[:, None], _TASTE_MINORITY, _TASTE_MAJORITY) * _AGE_TILT[age]
    # Gumbel top-2 = two clusters drawn without replacement from each user's preference.
    score = np.log(base) + rng.gumbel(size=base.shape)
    top = np.argsort(-score, axis=1)[:, :2]
    has_two = rng.random(n) < 0.5
    c1 = top[:, 0]
    c2 = np.where(has_two, top[:, 1], -1)
    w1 = np.where(has_two, rng.uniform(0.55, 0.85, size=n), 1.0)
    median = np.where(minority, _MEDIAN_COUNT["minority"], _MEDIAN_COUNT["majority"])
    raw = median * np.exp(_COUNT_SIGMA * rng.standard_normal(n))
    count = np.clip(np.round(raw), _MIN_COUNT, min(_MAX_COUNT, n_items // 4)).astype(np.int64)
    return minority, age, region, c1, c2, w1, count


def new_signups(seed: int, nu: int) -> pd.DataFrame:
    """Users who registered but have no interactions yet (ids continue after the active ones)."""
    n_new = max(1, round(0.01 * nu))
    rng = np.random.default_rng([seed, 10])
    width = max(4, len(str(nu + n_new)), len(str(nu)))
    ids = [f"u{k:0{width}d}" for k in range(nu + 1, nu + n_new + 1)]
    minority = rng.random(n_new) < MINORITY_SHARE
    return pd.DataFrame(
        {
            USER: pd.array(ids, dtype="str"),
            "age_band": pd.array(rng.choice(np.array(AGE_BANDS), n_new), dtype="str"),
            "region": pd.array(rng.choice(np.array(REGIONS), n_new), dtype="str"),
            "group": pd.array(np.where(minority, "minority", "majority"), dtype="str"),
        }
    )


# --------------------------------------------------------------------------- frames
def user_frame(user_ids: np.ndarray, age: np.ndarray, region: np.ndarray, minority: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER: pd.array(user_ids, dtype="str"),
            "age_band": pd.array(np.array(AGE_BANDS)[age], dtype="str"),
            "region": pd.array(np.array(REGIONS)[region], dtype="str"),
            "group": pd.array(np.where(minority, "minority", "majority"), dtype="str"),
        }
    )


def user_cluster_frame(user_ids: np.ndarray, c1: np.ndarray, c2: np.ndarray, w1: np.ndarray) -> pd.DataFrame:
    """A row per (user, cluster) with its weight, heaviest cluster first (``c2 < 0``: one cluster)."""
    two = c2 >= 0
    uc_user = np.concatenate([np.arange(len(c1)), np.flatnonzero(two)])
    uc_cluster = np.concatenate([c1, c2[two]])
    uc_weight = np.concatenate([w1, 1.0 - w1[two]])
    uc_order = np.lexsort((-uc_weight, uc_user))
    return pd.DataFrame(
        {
            USER: pd.array(user_ids[uc_user[uc_order]], dtype="str"),
            "cluster": uc_cluster[uc_order].astype(np.int64),
            "weight": uc_weight[uc_order].astype(np.float64),
        }
    )
