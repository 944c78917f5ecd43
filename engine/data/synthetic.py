"""The embedded demo world: a synthetic media catalog with planted, known structure.

Nothing is fetched and nothing is read from disk: the world is a pure function
of a seed, built with numpy and pandas in about a second. Because its structure
is planted, the demo can show that a model *found* something true (a taste, a
trigger) rather than merely asserting it.

Generative story (``scale`` multiplies the number of users, items and triggers;
per-user behaviour does not change with it, so interactions grow proportionally):

1. **Genres and taste clusters.** A fixed vocabulary of 16 genres and 8 taste
   clusters (:data:`CLUSTER_NAMES`); each cluster names 2-3 core genres, e.g.
   "Dark Suspense" = Thriller, Crime, Mystery.
2. **Items.** Each item is assigned one cluster (fixed catalog shares). Its
   categories (1-3) start with a core genre of that cluster; extra genres come
   from the same core (75 %) or from any genre (25 %). The title is built from
   curated word lists of the item's genres by one of seven templates
   ("The Midnight Harbor", "Quantum Gardens: A Field Guide", "Siege of Port
   Ellis"), redrawn on collision and, if still taken, given a sequel numeral, so
   titles are unique. The description is one or two sentences drawn from
   genre-specific phrases, so its words carry the item's genres. ``provider`` is
   ``"major"`` with a cluster-dependent probability (blockbusters are mostly
   majors, documentaries mostly independents); ``year`` is a release year
   (1950-2022, skewed recent).
3. **Popularity.** Items get a random Zipf rank: weight ``1 / (rank + 3)``, times
   2.5 for majors (the exposure bias an audit should find). Trigger targets
   (below) keep only 15 % of their weight so they are rarely found on their own.
4. **Users.** 15 % of users are the ``"minority"`` group, the rest
   ``"majority"``; each has an ``age_band`` and a ``region`` (the minority leans to
   two regions). Each user draws 1 or 2 distinct taste clusters (half have two,
   primary weight U(0.55, 0.85)) from a group-specific distribution, tilted by age
   band: the majority prefers blockbusters, suspense and heartfelt stories, the
   minority true stories, quirky comedy and music.
5. **How much.** Organic interactions per user are lognormal (majority median
   36, minority median 16, i.e. the minority is less active), clipped to
   [5, 350]; triggers (step 7) add a few more.
6. **What.** Each interaction picks, with probability 1 - explore (explore =
   0.12 majority, 0.20 minority), one of the user's clusters by weight and then
   an item of that cluster; otherwise an item from the whole catalog. The
   majority picks items by popularity (weight ``pop``). The minority digs into
   the long tail: their picks are weighted by ``pop ** 0.6``, a flatter
   distribution, as niche audiences whose tastes the mainstream catalog serves
   thinly follow word of mouth, specialist curators and back catalogs rather
   than the charts. Their histories hold markedly less popular items (mean
   item popularity about 0.6 of the majority's) and each such item has few
   other consumers, so a popularity-leaning collaborative model serves them
   worse: the planted accuracy gap the audit should find (a trained GAT's
   NDCG@10 for the minority is well under half the majority's). Repeats are
   dropped (each (user, item) at most once) and redrawn until each user has
   their count.
7. **Triggers.** ``round(0.1 * n_items)`` pairs A -> B: A is a moderately
   popular item (popularity rank in the top 2-25 %), B an unpopular one (bottom
   60 %), in A's cluster half of the time and anywhere otherwise (only
   collaborative signal can learn those). Every A and every B is distinct and no
   item is both. Each user who consumed A also consumes B right after A with
   probability ``strength`` ~ U(0.6, 0.8); where a user consumed B on their own
   before A, B is moved to just after A, so B always follows A.
8. **Ratings.** ``2.8 + 1.0 * liked + user bias N(0, 0.35) + item quality
   N(0, 0.3) + noise N(0, 0.8)``, rounded and clipped to 1..5, where ``liked``
   means the item's cluster is one of the user's (triggered items count as liked
   and get +0.3). Most ratings are >= 3; the rest are noise and exploration
   misses, so the >= 3 threshold matters.
9. **Timestamps.** Unix seconds within 2023-01-01 .. 2025-01-01 UTC. A user joins
   at a uniform time in the first 80 % of the window and stays active for a
   random share of the rest; their interactions, in session order, are spread
   over that span with bursty gaps (70 % short, 30 % long), strictly increasing
   per user.
10. **New sign-ups.** One extra user per hundred (at least one) is appended to the
   users table with attributes but no interactions yet: the "history-less"
   users a product must still serve (drawn from their own random stream, so
   they leave everything above unchanged).

The planted truth is exported as DataFrames on :class:`DemoWorld`: ``triggers``
(with their strengths), ``user_clusters`` (with weights) and ``item_clusters``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.data.demo_catalog import CLUSTER_NAMES, GENRES, draw_items, draw_text, item_frame
from engine.data.demo_catalog import word_tables as _words
from engine.data.demo_interactions import draw_ratings, draw_timestamps, interaction_frame, sample_organic
from engine.data.demo_triggers import apply_triggers, draw_triggers, trigger_frame
from engine.data.demo_users import (
    AGE_BANDS,
    MINORITY_SHARE,
    REGIONS,
    draw_users,
    new_signups,
    user_cluster_frame,
    user_frame,
)
from engine.data.schema import ITEM, Dataset

# The generator is split by concern (demo_catalog, demo_users, demo_interactions, demo_triggers);
# the names callers know stay importable from here.
__all__ = [
    "AGE_BANDS",
    "CLUSTER_NAMES",
    "GENRES",
    "MINORITY_SHARE",
    "REGIONS",
    "DemoWorld",
    "_words",
    "generate_demo_world",
]

logger = logging.getLogger(__name__)

_MAJOR_BOOST = 2.5  # popularity multiplier for majors: the exposure bias to audit
_ZIPF_OFFSET = 3.0
_TARGET_DAMP = 0.15  # organic popularity kept by trigger targets
_EXPLORE = {"majority": 0.12, "minority": 0.20}
# Item choice weight = popularity ** temper: the minority digs into the long tail, so a
# popularity-leaning model under-serves them (the planted accuracy disparity).
_TEMPER = {"majority": 1.0, "minority": 0.6}
_TRIGGERS_PER_ITEM = 0.1


@dataclass(frozen=True)
class DemoWorld:
    """The demo dataset and the structure planted in it.

    Attributes:
        dataset: the :class:`~engine.data.schema.Dataset` (``name="demo"``,
            ``rating_scale=(1.0, 5.0)``); items carry ``provider`` and ``year``,
            users ``age_band``, ``region`` and ``group``.
        triggers: planted A -> B relations: ``trigger_item_id``,
            ``target_item_id``, ``strength`` (P(consume B after A)).
        user_clusters: ``user_id``, ``cluster`` (int index into
            :data:`CLUSTER_NAMES`), ``weight`` (weights of a user sum to 1).
        item_clusters: ``item_id``, ``cluster``.
    """

    dataset: Dataset
    triggers: pd.DataFrame
    user_clusters: pd.DataFrame
    item_clusters: pd.DataFrame


def generate_demo_world(seed: int = 0, *, n_users: int = 1500, n_items: int = 2000, scale: float = 1.0) -> DemoWorld:
    """Generate the demo world (see the module docstring for the generative story).

    Args:
        seed: non-negative random seed; the world is a pure function of it and the
            sizes (default: 0).
        n_users: users at ``scale=1`` (default: 1500).
        n_items: items at ``scale=1`` (default: 2000).
        scale: multiplies users, items and triggers; interactions grow in
            proportion (default: 1.0, about 75k interactions; ~13 gives ~1M).

    Returns:
        The :class:`DemoWorld`.
    """
    nu, ni = _sizes(seed, n_users, n_items, scale)
    r_items, r_text, r_users, r_trig, r_draw, r_fire, r_rate, r_time = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(8)
    )
    item_cluster, cats, major, year, quality = draw_items(r_items, ni)
    titles, texts = draw_text(r_text, cats)
    group_minority, age, region, c1, c2, w1, count = draw_users(r_users, nu, ni)

    rank = r_items.permutation(ni)
    pop = (1.0 / (rank + _ZIPF_OFFSET)) * np.where(major, _MAJOR_BOOST, 1.0)
    trig_a, trig_b, strength = draw_triggers(r_trig, pop, item_cluster, round(_TRIGGERS_PER_ITEM * ni))
    pop[trig_b] *= _TARGET_DAMP

    explore = np.where(group_minority, _EXPLORE["minority"], _EXPLORE["majority"])
    temper = np.where(group_minority, _TEMPER["minority"], _TEMPER["majority"])
    u, i, key = sample_organic(r_draw, pop, item_cluster, c1, c2, w1, explore, temper, count)
    u, i, key, triggered = apply_triggers(r_fire, u, i, key, trig_a, trig_b, strength, ni)

    order = np.lexsort((key, u))
    u, i, triggered = u[order], i[order], triggered[order]
    liked = (item_cluster[i] == c1[u]) | (item_cluster[i] == c2[u]) | triggered
    rating = draw_ratings(r_rate, u, i, liked, triggered, quality, nu)
    timestamp = draw_timestamps(r_time, u, nu)

    user_ids = _ids("u", nu)
    item_ids = _ids("i", ni)
    interactions = interaction_frame(user_ids[u], item_ids[i], rating, timestamp)
    items = item_frame(item_ids, titles, cats, texts, major, year)
    users = pd.concat([user_frame(user_ids, age, region, group_minority), new_signups(seed, nu)], ignore_index=True)
    dataset = Dataset(name="demo", interactions=interactions, items=items, users=users, rating_scale=(1.0, 5.0))
    triggers = trigger_frame(item_ids, trig_a, trig_b, strength)
    logger.debug(
        "demo world: %d users, %d items, %d interactions, %d triggers",
        nu,
        ni,
        len(interactions),
        len(triggers),
    )
    return DemoWorld(
        dataset=dataset,
        triggers=triggers,
        user_clusters=user_cluster_frame(user_ids, c1, c2, w1),
        item_clusters=pd.DataFrame({ITEM: pd.array(item_ids, dtype="str"), "cluster": item_cluster.astype(np.int64)}),
    )


def _sizes(seed: int, n_users: int, n_items: int, scale: float) -> tuple[int, int]:
    """Check the arguments of :func:`generate_demo_world`; the number of users and items at ``scale``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (got {seed!r})")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number (got {scale!r})")
    nu, ni = round(n_users * scale), round(n_items * scale)
    if nu < 1:
        raise ValueError(f"n_users * scale must give at least 1 user (got {n_users!r} * {scale!r})")
    if ni < 50:
        raise ValueError(f"n_items * scale must give at least 50 items (got {n_items!r} * {scale!r})")
    return nu, ni


def _ids(prefix: str, n: int) -> np.ndarray:
    """Zero-padded ids that sort: ``u0001`` ... (at least four digits)."""
    width = max(4, len(str(n)))
    return np.array([f"{prefix}{k:0{width}d}" for k in range(1, n + 1)], dtype=object)
