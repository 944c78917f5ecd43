"""The list a user is shown: K, category filter, hide-popular and re-ranker, as URL keys and as the list itself.

One place decides what "the user's list" is, so the Recommendations page and the Why page agree:
the Why link carries the same keys, and the Why page shows the rank the reader saw on the list
("#1 in the list shown: Drama only, long-tail boost 0.3"), not only the model's plain rank.

URL keys (strings in the session's selection, see :mod:`dashboard.context`):
``categories=Drama|Comedy`` (any of them; ``|`` never occurs in a category name: the csv
format splits on it), ``hide_popular=1``, ``rerank=mmr|pop|calibrated`` and ``rerank_strength=0.3``
(not the Fairness page's ``reranker``/``strength``: that page studies a re-ranker over all users,
this one is the list a reader looks at, and each keeps its own setting).
A value the catalog or the re-rankers do not know is dropped with a notice, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard import adapters

LIST_KEYS = ("categories", "hide_popular", "rerank", "rerank_strength")
HIDE_POPULAR_SHARE = 0.05
DEFAULT_STRENGTH = 0.3
SEP = "|"


def strength_range(method: str) -> tuple[float, float]:
    """The re-ranker strength slider's range (the long-tail boost goes to 2)."""
    return (0.0, 2.0 if method == "pop" else 1.0)


@dataclass(frozen=True)
class ListView:
    """How the list is filtered and re-ranked (everything but the user and K)."""

    categories: tuple[str, ...] = ()
    hide_popular: bool = False
    rerank: str = "none"
    strength: float = DEFAULT_STRENGTH

    @property
    def active(self) -> bool:
        """Whether the list differs from the model's plain top-K."""
        return bool(self.categories) or self.hide_popular or self.rerank != "none"

    def filters(self) -> dict[str, Any]:
        """Keyword arguments of ``rec.recommend`` / ``recommend_reranked``."""
        return {
            "categories": list(self.categories) or None,
            "hide_popular": HIDE_POPULAR_SHARE if self.hide_popular else None,
        }

    @property
    def spec(self) -> str:
        """The engine's re-ranker spec, e.g. ``"pop:0.3"``."""
        return f"{self.rerank}:{self.strength:g}"

    def describe(self) -> str:
        """Plain words, e.g. ``"Drama or Comedy only · top 5 % hidden · long-tail boost 0.3"``."""
        parts = []
        if self.categories:
            parts.append(" or ".join(self.categories) + " only")
        if self.hide_popular:
            parts.append(f"top {HIDE_POPULAR_SHARE:.0%} most popular hidden")
        if self.rerank != "none":
            parts.append(f"{adapters.RERANKERS.get(self.rerank, self.rerank)} {self.strength:g}")
        return " · ".join(parts) or "no filter"

    def to_selection(self) -> dict[str, str | None]:
        """The URL values of this view (None where a key is at its default, so it stays out of the URL)."""
        return {
            "categories": SEP.join(self.categories) or None,
            "hide_popular": "1" if self.hide_popular else None,
            "rerank": self.rerank if self.rerank != "none" else None,
            "rerank_strength": f"{self.strength:g}" if self.rerank != "none" else None,
        }


def from_selection(sel: Mapping[str, Any], known_categories: Iterable[str], notice: Callable[[str], None]) -> ListView:
    """Parse and check the URL values in ``sel``; unknown values are dropped with a ``notice``."""
    known = set(known_categories)
    wanted = [c for c in str(sel.get("categories") or "").split(SEP) if c]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        notice(f"The link's categories {', '.join(unknown)} are not in this catalog; they are left out.")
    categories = tuple(dict.fromkeys(c for c in wanted if c in known))
    hide = str(sel.get("hide_popular") or "").strip().lower() in ("1", "true", "yes", "on")
    rerank = str(sel.get("rerank") or "none")
    if rerank not in adapters.RERANKERS:
        notice(f"The link's re-ranker {rerank!r} is unknown; showing the list without one.")
        rerank = "none"
    strength = DEFAULT_STRENGTH
    raw = sel.get("rerank_strength")
    if rerank != "none" and raw not in (None, ""):
        low, high = strength_range(rerank)
        try:
            strength = float(raw)
        except (TypeError, ValueError):
            notice(f"The link's rerank_strength={raw!r} is not a number; using {DEFAULT_STRENGTH}.")
            strength = DEFAULT_STRENGTH
        if not low <= strength <= high:  # also NaN
            notice(f"The link's rerank_strength={raw!r} is outside {low:g}–{high:g}; using {DEFAULT_STRENGTH}.")
            strength = DEFAULT_STRENGTH
        strength = round(strength, 1)  # the slider's step
    return ListView(categories, hide, rerank, strength)


def top_list(rec: Any, user: str, k: int, view: ListView) -> tuple[pd.DataFrame, str | None]:
    """The list the Recommendations page shows: ``(items, fallback)``.

    ``items`` has the columns of ``rec.recommend(...).items`` (``rank`` is the rank in this list),
    plus ``model_rank`` when a re-ranker reordered it.
    """
    if view.rerank != "none" and rec.user_status(user) == "known":
        # A user with a history never gets the popularity fallback: one ranking, not two.
        return rec.recommend_reranked(user, view.spec, k, **view.filters()), None
    recs = rec.recommend(user, k, **view.filters())
    return recs.items, recs.fallback


def rank_in_list(rec: Any, user: str, item: str, k: int, view: ListView) -> int | None:
    """The rank of ``item`` in the list ``view`` shows (None when it is not among its top ``k``)."""
    items, _ = top_list(rec, user, k, view)
    hits = items.index[items["item_id"].astype(str) == str(item)]
    return int(items.loc[hits[0], "rank"]) if len(hits) else None


def rank_tile(
    rec: Any, user: str, item: str, k: int, sel: Mapping[str, Any], model_rank: int | None
) -> tuple[str, str] | None:
    """The Why page's rank tile ``(value, hint)`` for a link from a filtered or re-ranked list, else None.

    ``model_rank`` is the item's rank among all the user's unseen items (the explanation's).
    """
    names = {c for cs in rec.items["categories"] for c in cs}
    view = from_selection(sel, names, lambda _text: None)  # the Recommendations page already said it
    if not view.active:
        return None
    rank = rank_in_list(rec, user, item, k, view)
    overall = f"#{model_rank} among all unseen items" if model_rank else "already in the user's history"
    if rank is None:
        return "not listed", f"not in the top {k} shown ({view.describe()}); {overall}"
    return f"#{rank}", f"in the list shown ({view.describe()}); {overall}"
