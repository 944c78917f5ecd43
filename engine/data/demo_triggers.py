"""The demo world's planted triggers: A -> B pairs, B consumed right after A.

Step 7 of the generative story in :mod:`engine.data.synthetic`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------- triggers
def draw_triggers(
    rng: np.random.Generator, pop: np.ndarray, cluster: np.ndarray, n_triggers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct trigger items A (moderately popular) and targets B (unpopular), with strengths."""
    n = len(pop)
    by_pop = np.argsort(-pop, kind="stable")
    a_pool = by_pop[int(0.02 * n) : max(int(0.25 * n), int(0.02 * n) + 1)]
    b_pool = rng.permutation(by_pop[int(0.40 * n) :])
    n_triggers = max(1, min(n_triggers, len(a_pool), len(b_pool)))
    trig_a = rng.choice(a_pool, size=n_triggers, replace=False)
    same_cluster = rng.random(n_triggers) < 0.5
    free = np.ones(len(b_pool), dtype=bool)
    b_cluster = cluster[b_pool]
    trig_b = np.empty(n_triggers, dtype=np.int64)
    for k in range(n_triggers):
        candidates = np.flatnonzero(free & (b_cluster == cluster[trig_a[k]])) if same_cluster[k] else []
        if len(candidates) == 0:
            candidates = np.flatnonzero(free)
        j = candidates[0]  # b_pool is shuffled, so the first free candidate is a random one
        free[j] = False
        trig_b[k] = b_pool[j]
    strength = rng.uniform(0.6, 0.8, size=n_triggers)
    return trig_a, trig_b, strength


def apply_triggers(
    rng: np.random.Generator,
    u: np.ndarray,
    i: np.ndarray,
    key: np.ndarray,
    trig_a: np.ndarray,
    trig_b: np.ndarray,
    strength: np.ndarray,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add B right after A with probability ``strength``; move organic B that precedes A after it."""
    trig_of = np.full(n_items, -1, dtype=np.int64)
    trig_of[trig_a] = np.arange(len(trig_a))
    rows_a = np.flatnonzero(trig_of[i] >= 0)
    t = trig_of[i[rows_a]]
    ua, b = u[rows_a], trig_b[t]

    codes = u * n_items + i
    order = np.argsort(codes)
    pos = np.minimum(np.searchsorted(codes[order], ua * n_items + b), len(codes) - 1)
    has_b = codes[order][pos] == ua * n_items + b
    row_b = order[pos[has_b]]
    key = key.copy()
    # Organic B consumed before A: the planted order says B follows A.
    late = key[row_b] < key[rows_a[has_b]]
    key[row_b[late]] = key[rows_a[has_b][late]] + 0.5

    fire = (~has_b) & (rng.random(len(rows_a)) < strength[t])
    new_u, new_i = ua[fire], b[fire]
    new_key = key[rows_a[fire]] + 0.5
    triggered = np.concatenate([np.zeros(len(u), dtype=bool), np.ones(len(new_u), dtype=bool)])
    return (np.concatenate([u, new_u]), np.concatenate([i, new_i]), np.concatenate([key, new_key]), triggered)


def trigger_frame(item_ids: np.ndarray, trig_a: np.ndarray, trig_b: np.ndarray, strength: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trigger_item_id": pd.array(item_ids[trig_a], dtype="str"),
            "target_item_id": pd.array(item_ids[trig_b], dtype="str"),
            "strength": strength.astype(np.float64),
        }
    )
