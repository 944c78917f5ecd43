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

import functools
import json
import logging
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- vocabulary
# The 16 genres, in the order the item draws index them. The per-genre word tables
# (title adjectives, nouns and subtitles, description subjects, plots and tones, a
# label noun such as "thriller" and the flavor phrase other genres use to mention it),
# place names, first names and sequel numerals live in package data
# (demo_words.json), so this module holds the generative story rather than 250
# lines of words. They are read on first use, not at import.
GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family",
    "Fantasy", "History", "Horror", "Music", "Mystery", "Romance", "Science Fiction", "Thriller",
)  # fmt: skip
_WORDS_FILE = "demo_words.json"


@dataclass(frozen=True)
class _Words:
    genres: dict[str, dict[str, tuple[str, ...] | str]]  # genre -> field -> words (or one phrase)
    places: tuple[str, ...]
    names: tuple[str, ...]
    numerals: tuple[str, ...]


@functools.cache
def _words() -> _Words:
    """The demo world's word tables (JSON lists as tuples, order kept: draws index by position)."""
    raw = json.loads(resources.files("engine.data").joinpath(_WORDS_FILE).read_text(encoding="utf-8"))
    genres = {
        genre: {key: tuple(value) if isinstance(value, list) else value for key, value in table.items()}
        for genre, table in raw["genres"].items()
    }
    if tuple(genres) != GENRES:
        raise RuntimeError(
            f"{_WORDS_FILE}: got genres {list(genres)}, expected {list(GENRES)} in that order "
            "(the package data and engine/data/synthetic.py disagree)"
        )
    return _Words(genres, tuple(raw["places"]), tuple(raw["names"]), tuple(raw["numerals"]))


# Title templates and how often each is used. A = adjective of the primary genre,
# N = noun of one of the item's genres, P = place, X = name, S = genre subtitle.
_TEMPLATES = (
    "The {A} {N}",
    "{A} {N}",
    "{N} of {P}",
    "The {N} of {P}",
    "{X}'s {N}",
    "{A} {N}: {S}",
    "{N} in {P}",
)
_TEMPLATE_P = np.array([0.25, 0.15, 0.12, 0.12, 0.12, 0.14, 0.10])

# --------------------------------------------------------------------------- taste clusters
CLUSTER_NAMES: tuple[str, ...] = (
    "Blockbusters",
    "Dark Suspense",
    "Heartfelt Stories",
    "Feel-Good Fun",
    "Epic Worlds",
    "Midnight Fright",
    "True Stories",
    "Quirky Comedy & Music",
)
_CLUSTER_CORE: tuple[tuple[str, ...], ...] = (
    ("Action", "Adventure", "Science Fiction"),
    ("Thriller", "Crime", "Mystery"),
    ("Drama", "Romance"),
    ("Comedy", "Family", "Animation"),
    ("Fantasy", "Adventure", "Animation"),
    ("Horror", "Thriller"),
    ("Documentary", "History", "Music"),
    ("Comedy", "Romance", "Music"),
)
_CLUSTER_SHARE = np.array([0.16, 0.15, 0.15, 0.14, 0.12, 0.10, 0.10, 0.08])  # of the catalog
_MAJOR_P = np.array([0.55, 0.35, 0.30, 0.40, 0.45, 0.25, 0.08, 0.15])  # P(provider = major | cluster)
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
_MAJOR_BOOST = 2.5  # popularity multiplier for majors: the exposure bias to audit
_ZIPF_OFFSET = 3.0
_TARGET_DAMP = 0.15  # organic popularity kept by trigger targets
_EXPLORE = {"majority": 0.12, "minority": 0.20}
# Item choice weight = popularity ** temper: the minority digs into the long tail, so a
# popularity-leaning model under-serves them (the planted accuracy disparity).
_TEMPER = {"majority": 1.0, "minority": 0.6}
_MEDIAN_COUNT = {"majority": 36.0, "minority": 16.0}
_COUNT_SIGMA = 0.8
_MIN_COUNT, _MAX_COUNT = 5, 350
_TRIGGERS_PER_ITEM = 0.1
_T0 = 1_672_531_200  # 2023-01-01T00:00:00Z
_SPAN = 2 * 365 * 86_400


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
    item_cluster, cats, major, year, quality = _draw_items(r_items, ni)
    titles, texts = _draw_text(r_text, cats)
    group_minority, age, region, c1, c2, w1, count = _draw_users(r_users, nu, ni)

    rank = r_items.permutation(ni)
    pop = (1.0 / (rank + _ZIPF_OFFSET)) * np.where(major, _MAJOR_BOOST, 1.0)
    trig_a, trig_b, strength = _draw_triggers(r_trig, pop, item_cluster, round(_TRIGGERS_PER_ITEM * ni))
    pop[trig_b] *= _TARGET_DAMP

    explore = np.where(group_minority, _EXPLORE["minority"], _EXPLORE["majority"])
    temper = np.where(group_minority, _TEMPER["minority"], _TEMPER["majority"])
    u, i, key = _sample_organic(r_draw, pop, item_cluster, c1, c2, w1, explore, temper, count)
    u, i, key, triggered = _apply_triggers(r_fire, u, i, key, trig_a, trig_b, strength, ni)

    order = np.lexsort((key, u))
    u, i, triggered = u[order], i[order], triggered[order]
    liked = (item_cluster[i] == c1[u]) | (item_cluster[i] == c2[u]) | triggered
    rating = _draw_ratings(r_rate, u, i, liked, triggered, quality, nu)
    timestamp = _draw_timestamps(r_time, u, nu)

    user_ids = _ids("u", nu)
    item_ids = _ids("i", ni)
    interactions = _interaction_frame(user_ids[u], item_ids[i], rating, timestamp)
    items = _item_frame(item_ids, titles, cats, texts, major, year)
    users = pd.concat([_user_frame(user_ids, age, region, group_minority), _new_signups(seed, nu)], ignore_index=True)
    dataset = Dataset(name="demo", interactions=interactions, items=items, users=users, rating_scale=(1.0, 5.0))
    triggers = _trigger_frame(item_ids, trig_a, trig_b, strength)
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
        user_clusters=_user_cluster_frame(user_ids, c1, c2, w1),
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


# --------------------------------------------------------------------------- frames
def _interaction_frame(users: np.ndarray, items: np.ndarray, rating: np.ndarray, timestamp: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER: pd.array(users, dtype="str"),
            ITEM: pd.array(items, dtype="str"),
            RATING: rating.astype(np.float64),
            TIMESTAMP: timestamp.astype(np.int64),
        }
    )


def _item_frame(
    item_ids: np.ndarray,
    titles: list[str],
    cats: list[tuple[str, ...]],
    texts: list[str],
    major: np.ndarray,
    year: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ITEM: pd.array(item_ids, dtype="str"),
            TITLE: pd.array(titles, dtype="str"),
            CATEGORIES: pd.Series(cats, dtype=object),
            TEXT: pd.array(texts, dtype="str"),
            "provider": pd.array(np.where(major, "major", "independent"), dtype="str"),
            "year": year.astype(np.int64),
        }
    )


def _user_frame(user_ids: np.ndarray, age: np.ndarray, region: np.ndarray, minority: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER: pd.array(user_ids, dtype="str"),
            "age_band": pd.array(np.array(AGE_BANDS)[age], dtype="str"),
            "region": pd.array(np.array(REGIONS)[region], dtype="str"),
            "group": pd.array(np.where(minority, "minority", "majority"), dtype="str"),
        }
    )


def _user_cluster_frame(user_ids: np.ndarray, c1: np.ndarray, c2: np.ndarray, w1: np.ndarray) -> pd.DataFrame:
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


def _trigger_frame(item_ids: np.ndarray, trig_a: np.ndarray, trig_b: np.ndarray, strength: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trigger_item_id": pd.array(item_ids[trig_a], dtype="str"),
            "target_item_id": pd.array(item_ids[trig_b], dtype="str"),
            "strength": strength.astype(np.float64),
        }
    )


# --------------------------------------------------------------------------- items
def _draw_items(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray, np.ndarray, np.ndarray]:
    """Cluster, categories, is-major, release year and latent quality per item."""
    cluster = rng.choice(len(CLUSTER_NAMES), size=n, p=_CLUSTER_SHARE)
    n_cats = rng.choice([1, 2, 3], size=n, p=[0.35, 0.45, 0.20])
    draws = rng.random((n, 3, 2))  # per slot: (same-core?, which genre)
    cats: list[tuple[str, ...]] = []
    for k in range(n):
        core = _CLUSTER_CORE[cluster[k]]
        chosen = [core[int(draws[k, 0, 1] * len(core))]]
        for slot in range(1, n_cats[k]):
            pool = core if draws[k, slot, 0] < 0.75 else GENRES
            pool = [g for g in pool if g not in chosen] or [g for g in GENRES if g not in chosen]
            chosen.append(pool[int(draws[k, slot, 1] * len(pool))])
        cats.append(tuple(chosen))
    major = rng.random(n) < _MAJOR_P[cluster]
    year = np.clip(2022 - np.floor(rng.exponential(10.0, size=n)), 1950, 2022).astype(np.int64)
    quality = rng.normal(0.0, 0.3, size=n)
    return cluster, cats, major, year, quality


def _draw_text(rng: np.random.Generator, cats: list[tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Unique human-readable titles and 1-2 sentence descriptions from the genre vocabularies."""
    n = len(cats)
    tries = 8
    template = rng.choice(len(_TEMPLATES), size=(n, tries), p=_TEMPLATE_P)
    pick = rng.random((n, tries, 5))  # adjective, noun-genre, noun, place/name, subtitle
    words = _words()
    titles: list[str] = []
    taken: set[str] = set()
    for k in range(n):
        genres = cats[k]
        title = ""
        for t in range(tries):
            p = pick[k, t]
            primary = words.genres[genres[0]]
            noun_genre = words.genres[genres[int(p[1] * len(genres))]]
            title = _TEMPLATES[template[k, t]].format(
                A=_at(primary["adj"], p[0]),
                N=_at(noun_genre["noun"], p[2]),
                P=_at(words.places, p[3]),
                X=_at(words.names, p[3]),
                S=_at(primary["sub"], p[4]),
            )
            if title not in taken:
                break
        if title in taken:
            # Every retry collided: a sequel numeral keeps the title readable and unique.
            base = title
            for numeral in words.numerals:
                title = f"{base} {numeral}"
                if title not in taken:
                    break
            counter = len(words.numerals) + 2
            while title in taken:
                title = f"{base} {counter}"
                counter += 1
        taken.add(title)
        titles.append(title)

    d = rng.random((n, 4))
    texts: list[str] = []
    for k in range(n):
        primary = words.genres[cats[k][0]]
        first = f"{_at(primary['subject'], d[k, 0])} {_at(primary['plot'], d[k, 1])}."
        tone = _at(primary["tone"], d[k, 2])
        article = "An" if tone[0] in "aeiou" else "A"
        if len(cats[k]) > 1:
            flavors = " and ".join(str(words.genres[g]["flavor"]) for g in cats[k][1:])
            texts.append(f"{first} {article} {tone} {primary['label']} with touches of {flavors}.")
        elif d[k, 3] < 0.5:
            texts.append(f"{first} {article} {tone} {primary['label']}.")
        else:
            texts.append(first)
    return titles, texts


def _at(words: tuple[str, ...] | str, u: float) -> str:
    """The word a uniform draw ``u`` in [0, 1) selects."""
    return words[min(int(u * len(words)), len(words) - 1)]


# --------------------------------------------------------------------------- users
def _draw_users(rng: np.random.Generator, n: int, n_items: int) -> tuple[np.ndarray, ...]:
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


# --------------------------------------------------------------------------- triggers
def _draw_triggers(
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


# --------------------------------------------------------------------------- interactions
def _sample_organic(
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


def _apply_triggers(
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


def _draw_ratings(
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


def _draw_timestamps(rng: np.random.Generator, u: np.ndarray, n_users: int) -> np.ndarray:
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


def _new_signups(seed: int, nu: int) -> pd.DataFrame:
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


def _ids(prefix: str, n: int) -> np.ndarray:
    """Zero-padded ids that sort: ``u0001`` ... (at least four digits)."""
    width = max(4, len(str(n)))
    return np.array([f"{prefix}{k:0{width}d}" for k in range(1, n + 1)], dtype=object)
