"""The tidy in-memory data model every loader produces.

Column names are constants so no module spells them twice. External ids are
strings everywhere (MovieLens ids ``"42"``, demo ids ``"u0042"``); internal
contiguous indices live only in :mod:`engine.data.idmap`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import DataValidationError as DataValidationError  # defined with the other errors; re-exported

USER = "user_id"
ITEM = "item_id"
RATING = "rating"
COUNT = "count"  # csv only: a count per interaction (plays, clicks), read into the rating column
TIMESTAMP = "timestamp"
TITLE = "title"
CATEGORIES = "categories"  # a tuple[str, ...] per item (possibly empty)
TEXT = "text"

INTERACTION_COLUMNS = (USER, ITEM, RATING, TIMESTAMP)
ITEM_COLUMNS = (ITEM, TITLE, CATEGORIES, TEXT)


@dataclass(frozen=True)
class Dataset:
    """Interactions, item content and optional user attributes, validated.

    Attributes:
        name: dataset name, e.g. ``"demo"`` or ``"ml-100k"``.
        interactions: columns ``user_id`` (str), ``item_id`` (str), ``rating``
            (float, NaN for implicit logs), ``timestamp`` (int64 Unix seconds, or
            -1 when unknown). One row per (user, item) event.
        items: columns ``item_id`` (str, unique), ``title`` (str), ``categories``
            (tuple of str), ``text`` (str, may be empty) plus optional extra
            item attribute columns (e.g. the demo world's ``provider``).
        users: ``user_id`` (str, unique) plus attribute columns, or None.
        rating_scale: (min, max) of explicit ratings, or None for implicit logs and counts.
        counts: whether the ``rating`` column holds counts (plays, clicks, purchases: finite,
            >= 0) rather than ratings (default: False). Every counted interaction is a positive,
            whatever its count, and weighs ``log(1 + count)`` relative to the largest
            (:func:`engine.data.split.split`).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    rating_scale: tuple[float, float] | None = None
    counts: bool = False

    @property
    def is_implicit(self) -> bool:
        """True when every interaction is a positive: no ratings, or counts."""
        return self.counts or bool(self.interactions[RATING].isna().all())

    @property
    def user_attributes(self) -> list[str]:
        """Attribute columns of the users table (empty when there is none)."""
        if self.users is None:
            return []
        return [c for c in self.users.columns if c != USER]

    def content_hash(self) -> str:
        """Stable sha256 of all content; keys caches and fingerprints artifacts."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        frames = [self.interactions, self.items]
        if self.users is not None:
            frames.append(self.users)
        for frame in frames:
            h.update(",".join(map(str, frame.columns)).encode())
            as_text = frame.astype({c: str for c in frame.columns})
            h.update(pd.util.hash_pandas_object(as_text, index=False).to_numpy().tobytes())
        h.update(repr(self.rating_scale).encode())
        if self.counts:  # only then: every other dataset keeps the hash it had before counts existed
            h.update(b"counts")
        return h.hexdigest()

    def summary(self) -> dict:
        """Counts and distributions for ``gatlens data summary`` and the dataset card."""
        inter = self.interactions
        n_users = int(inter[USER].nunique())
        n_items = int(len(self.items))
        n_rated_items = int(inter[ITEM].nunique())
        n = int(len(inter))
        hist: dict[str, int] = {}
        if not self.is_implicit:
            counts = inter[RATING].value_counts().sort_index()
            hist = {f"{k:g}": int(v) for k, v in counts.items()}
        per_user = inter.groupby(USER).size()
        per_item = inter.groupby(ITEM).size()
        ts = inter[TIMESTAMP]
        ts = ts[ts >= 0]
        return {
            "dataset": self.name,
            "users": n_users,
            "items": n_items,
            "items_with_interactions": n_rated_items,
            "interactions": n,
            "density": n / (n_users * n_items) if n_users and n_items else 0.0,
            "implicit": self.is_implicit,
            "counts": self.counts,
            "count_range": (
                [float(inter[RATING].min()), float(inter[RATING].max()), float(inter[RATING].median())]
                if self.counts and n
                else None
            ),
            "rating_scale": list(self.rating_scale) if self.rating_scale else None,
            "rating_histogram": hist,
            "interactions_per_user": _describe(per_user.to_numpy()),
            "interactions_per_item": _describe(per_item.to_numpy()),
            "time_range": [int(ts.min()), int(ts.max())] if len(ts) else None,
            "user_attributes": self.user_attributes,
            "item_attributes": [c for c in self.items.columns if c not in ITEM_COLUMNS],
            "categories": sorted({c for cats in self.items[CATEGORIES] for c in cats}),
        }


def _describe(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 3),
        "max": int(values.max()),
    }
