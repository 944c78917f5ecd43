"""The demo world's catalog: genres, taste clusters, items and their titles and descriptions.

Steps 1-2 of the generative story in :mod:`engine.data.synthetic`: each item gets a taste
cluster, 1-3 genres, a provider, a release year and a latent quality, then a unique title and a
one- or two-sentence description built from the genre word tables (package data,
``demo_words.json``, read on first use).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, ITEM, TEXT, TITLE

# --------------------------------------------------------------------------- vocabulary
# The 16 genres, in the order the item draws index them. The per-genre word tables
# (title adjectives, nouns and subtitles, description subjects, plots and tones, a
# label noun such as "thriller" and the flavor phrase other genres use to mention it),
# place names, first names and sequel numerals live in package data
# (demo_words.json), so the generator holds the generative story rather than 250
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
def word_tables() -> _Words:
    """The demo world's word tables (JSON lists as tuples, order kept: draws index by position)."""
    raw = json.loads(resources.files("engine.data").joinpath(_WORDS_FILE).read_text(encoding="utf-8"))
    genres = {
        genre: {key: tuple(value) if isinstance(value, list) else value for key, value in table.items()}
        for genre, table in raw["genres"].items()
    }
    if tuple(genres) != GENRES:
        raise RuntimeError(
            f"{_WORDS_FILE}: got genres {list(genres)}, expected {list(GENRES)} in that order "
            "(the package data and engine/data/demo_catalog.py disagree)"
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


# --------------------------------------------------------------------------- items
def draw_items(
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


def draw_text(rng: np.random.Generator, cats: list[tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Unique human-readable titles and 1-2 sentence descriptions from the genre vocabularies."""
    n = len(cats)
    tries = 8
    template = rng.choice(len(_TEMPLATES), size=(n, tries), p=_TEMPLATE_P)
    pick = rng.random((n, tries, 5))  # adjective, noun-genre, noun, place/name, subtitle
    words = word_tables()
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


# --------------------------------------------------------------------------- frame
def item_frame(
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
