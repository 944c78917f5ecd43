"""The plain-language reason, written only from numbers the explanation computed.

Rules that keep it honest: an interaction is cited only if its attribution is positive;
"highly" only if every cited rating reaches the high-rating threshold; a share is quoted
only as computed (share of the total absolute edge attribution); when the attribution is
spread thin, the text says so instead of naming a winner; a category is mentioned only
when the user's history really contains it and the categories group pushes the score up;
the counterfactual is mentioned only when it was verified. Titles stay plain text
(escaping is the display's job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Below this share of the edge attribution, the cited interactions do not "explain" the score.
THIN = 0.15
MAX_CITED = 3


def join_titles(titles: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    titles = [str(t) for t in titles]
    if len(titles) <= 1:
        return "".join(titles)
    return ", ".join(titles[:-1]) + " and " + titles[-1]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def cited_history(history: pd.DataFrame) -> pd.DataFrame:
    """The interactions the reason names: positive attribution, at most 3, each >= half the top one."""
    pos = history[history["attribution"] > 0].sort_values("attribution", ascending=False, kind="stable")
    if pos.empty:
        return pos
    top = float(pos["attribution"].iloc[0])
    return pos[pos["attribution"] >= 0.5 * top].head(MAX_CITED)


def reason_for(
    *,
    user_id: str,
    title: str,
    item_categories: Sequence[str],
    history: pd.DataFrame,
    interactions: pd.DataFrame,
    feature_groups: pd.DataFrame,
    rated: bool,
    high_rating: float,
    counterfactual: Any = None,
    in_history: bool = False,
) -> str:
    """One to three sentences, in the third person, on why ``title`` is recommended to ``user_id``.

    The reader is usually not the user (a product manager, an analyst), so the text names the
    user instead of saying "you".

    Args:
        user_id: the user's external id.
        title: the item's title.
        item_categories: its categories.
        history: the explanation's ``history_influence`` frame (``title``, ``categories``,
            ``rating``, ``attribution``, ``share``).
        interactions: the explanation's ``interactions`` frame (``kind``, ``share``).
        feature_groups: the explanation's ``feature_groups`` frame.
        rated: whether the dataset has explicit ratings.
        high_rating: ratings at or above this are "high" (default for 1-5: 4).
        counterfactual: the verified :class:`~engine.explain.counterfactual.Counterfactual` or None.
        in_history: the item is one of the user's training items, so it is not recommended
            and the text explains its score only (default: False).

    Returns:
        The reason, plain text.
    """
    user = str(user_id)
    sentences: list[str] = []
    if in_history:
        sentences.append(
            f"{quote(title)} is already in {user}'s history, so it is not recommended; this explains its score."
        )
    cited = cited_history(history)
    kinds = interactions.groupby("kind")["share"].agg(["sum", "size"]) if len(interactions) else None
    history_share = float(kinds.loc["history", "sum"]) if kinds is not None and "history" in kinds.index else 0.0
    audience_share = float(kinds.loc["audience", "sum"]) if kinds is not None and "audience" in kinds.index else 0.0
    n_audience = int(kinds.loc["audience", "size"]) if kinds is not None and "audience" in kinds.index else 0
    cited_share = float(cited["share"].sum()) if len(cited) else 0.0
    thin = len(cited) > 0 and cited_share < THIN

    if cited.empty:
        sentences.append(f"None of {user}'s past titles raises the score of {quote(title)}.")
    elif thin:
        sentences.append(_thin_sentence(user, title, history, history_share, audience_share, n_audience))
    else:
        sentences.append(
            f"Recommended because {user} {_attributed_clause(cited, rated=rated, high_rating=high_rating)} "
            f"({_pct(cited_share)} of the edge attribution)."
        )

    if audience_share > max(history_share, THIN) and not thin:
        sentences.append(
            f"More of the credit ({_pct(audience_share)}) goes to the people who already liked {quote(title)} "
            f"than to {user}'s own history ({_pct(history_share)})."
        )

    cat_clause = _category_clause(user, item_categories, history, feature_groups, rated, high_rating)
    if cat_clause:
        sentences.append(cat_clause)

    if counterfactual is not None and counterfactual.found and 0 < len(counterfactual.removed) <= MAX_CITED:
        names = join_titles([quote(t) for t in counterfactual.removed["title"]])
        sentences.append(
            f"Without {names} in {user}'s history it would fall to rank {counterfactual.new_rank} "
            "(verified by re-scoring)."
        )
    return " ".join(sentences)


def _attributed_clause(cited: pd.DataFrame, *, rated: bool, high_rating: float) -> str:
    """ "rated “A” and “B” highly" / "rated “A” 5★ and “B” 3★" / "interacted with “A”"."""
    names = join_titles([quote(t) for t in cited["title"]])
    ratings = cited["rating"].to_numpy(dtype=np.float64)
    if rated and np.all(ratings >= high_rating):
        return f"rated {names} highly"
    if rated and not np.isnan(ratings).any():
        return "rated " + join_titles([f"{quote(t)} {r:g}★" for t, r in zip(cited["title"], ratings, strict=True)])
    return f"interacted with {names}"


def _thin_sentence(
    user: str, title: str, history: pd.DataFrame, history_share: float, audience_share: float, n_audience: int
) -> str:
    """No few past titles explain the score: name the largest anyway, and say where the rest comes from."""
    positive = history[history["attribution"] > 0].sort_values("attribution", ascending=False, kind="stable")
    largest = positive.iloc[0]
    text = (
        f"No single past title stands out for {user}: the largest, {quote(largest['title'])}, carries "
        f"{_pct(float(largest['share']))} of the edge attribution"
    )
    if len(history) <= MAX_CITED:
        # With so few past titles, "the top 3" is the whole history: one figure, not two that look contradictory.
        text += f", and all {len(history)} of their past titles together {_pct(history_share)}"
    elif history_share > 0:
        text += f"; their {len(history)} past titles together carry {_pct(history_share)}"
    if n_audience and audience_share > 0:
        people = "other person" if n_audience == 1 else "other people"
        text += f", the {n_audience} {people} who chose {quote(title)} {_pct(audience_share)}"
    return text + "."


def _category_clause(
    user: str,
    item_categories: Sequence[str],
    history: pd.DataFrame,
    feature_groups: pd.DataFrame,
    rated: bool,
    high_rating: float,
) -> str | None:
    groups = feature_groups.set_index("group") if len(feature_groups) else None
    # ``not > 0`` rather than ``<= 0``: a method that does not attribute groups leaves NaN there.
    if groups is None or "categories" not in groups.index or not float(groups.loc["categories", "attribution"]) > 0:
        return None
    if not len(item_categories) or history.empty:
        return None
    if rated:
        pool = history.loc[history["rating"] >= high_rating, "categories"]
        noun = f"{user}'s favourites"
    else:
        pool = history["categories"]
        noun = f"the items in {user}'s history"
    counts = {c: int(sum(c in cats for cats in pool)) for c in item_categories}
    best = max(counts, key=lambda c: (counts[c], c))
    if counts[best] < 2:
        return None
    return f"It is also {best}, like {counts[best]} of {noun}."


def reason_fallback(title: str, popularity_rank: int, interactions: int, *, user_id: str = "This user") -> str:
    """The reason for a user without training history (``user_id`` names them; default: "This user")."""
    return (
        f"{user_id} has no history to learn from, so this list is a popularity fallback: {quote(title)} is the "
        f"#{popularity_rank} most popular item ({interactions} training interactions). "
        "There is no personalised reason to show."
    )


# -- reasons from an exact decomposition (third person, one per recommended item) --------------
# The top three contributions must carry at least this share of what the history adds
# (the sum of the positive contributions) for the reason to name titles.
NAMED_SHARE = 0.25
# A title is named next to the largest only if its contribution is at least this share of it.
CITE_RATIO = 1 / 3


def interaction_verb(dataset_name: str) -> str:
    """The verb for an interaction: "watched" on the movie datasets, "chose" elsewhere."""
    name = str(dataset_name).lower()
    return "watched" if name == "demo" or name.startswith(("ml-", "movielens")) else "chose"


def quote(title: Any) -> str:
    """A title in typographic quotes (plain text: escaping is the display's job)."""
    return f"\u201c{title}\u201d"


def _genre_counts(history: pd.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cats in history["categories"]:
        for c in cats if isinstance(cats, (list, tuple, np.ndarray)) else ():
            counts[str(c)] = counts.get(str(c), 0) + 1
    return counts


def _cite_clause(cited: pd.DataFrame, *, rated: bool, high_rating: float, verb: str) -> str:
    """ "rated “A” 5★ and “B” 4★, and watched “C” recently": one verb per group, strongest first."""
    groups: dict[str, list[str]] = {}
    # (a namedtuple row's .count is tuple.count: the column is read by position instead)
    counts = cited["count"].to_numpy(np.float64) if "count" in cited.columns else np.full(len(cited), np.nan)
    for row, count in zip(cited.itertuples(), counts, strict=True):
        rating = float(row.rating) if row.rating is not None else float("nan")
        high = rated and not np.isnan(rating) and rating >= high_rating
        title = f"{quote(row.title)} {rating:g}\u2605" if high else quote(row.title)
        if count > 1:  # a dataset of counts: "chose “A” 5,134 times"
            title += f" {count:,.0f} times" if count == round(count) else f" {count:,.1f} times"
        if bool(getattr(row, "recent", False)):
            title += " recently"
        groups.setdefault("rated" if high else verb, []).append(title)
    parts = [f"{v} {join_titles(titles)}" for v, titles in groups.items()]
    if all(len(t) == 1 for t in groups.values()):
        return join_titles(parts)
    return ", and ".join(parts)


@dataclass(frozen=True)
class Decisive:
    """A verified counterfactual: removing ``items`` moves the item from ``old_rank`` to ``new_rank`` (> k)."""

    items: tuple[str, ...]
    old_rank: int
    new_rank: int
    k: int


def reason_from_terms(
    *,
    user_id: str,
    history: pd.DataFrame,
    terms: dict[str, float],
    item_title: str,
    item_categories: Sequence[str],
    rated: bool,
    high_rating: float,
    verb: str = "watched",
    in_history: bool = False,
    avoid: Sequence[tuple[str, ...]] = (),
    decisive: Decisive | None = None,
) -> tuple[str, tuple[str, ...]]:
    """One reason, in the third person, from an exact decomposition of one score.

    When a verified counterfactual of at most :data:`MAX_CITED` past titles exists (``decisive``),
    the reason names exactly those titles and what removing them does: the strongest, checked
    statement there is ("without them it would fall from #1 to #21"). Otherwise:

    Rules: titles are named only from positive contributions, at most three, each at least a
    third of the largest, and only when the top three carry at least :data:`NAMED_SHARE` of what
    the history adds; otherwise the reason says the item comes from the user's overall taste (or
    popularity) and that no single title stands out. When the taste profile (or popularity) adds
    more than the whole history, the reason leads with it and names the largest title for scale only.
    A star rating is quoted only when it is high; "recently" only for the user's latest
    interactions (the ``recent`` column). Nothing is shortened: the text is whole words and whole
    titles.

    Args:
        user_id: the user's external id (the reason names the user, not "you").
        history: the user's past interactions: ``item_id``, ``title``, ``categories``, ``rating``
            (NaN when unrated), ``contribution`` and optionally ``recent`` (bool).
        terms: ``{"history": ..., "taste profile": ..., "popularity": ...}``.
        item_title: the explained item's title.
        item_categories: its categories.
        rated: whether the dataset has explicit ratings.
        high_rating: ratings at or above this are quoted with their stars.
        verb: the verb for an unrated interaction (default: "watched"; :func:`interaction_verb`).
        in_history: the item is already one of the user's training items (default: False).
        avoid: cited sets (tuples of item ids) already used for other items of the same list;
            when this item's would repeat one (in any order), the weakest cited title gives way to the next
            contributor (default: none).
        decisive: the verified counterfactual set and its ranks (default: None, none known).

    Returns:
        ``(reason, cited item ids)``.
    """
    user = str(user_id)
    lead = "Recommended"
    opening = ""
    if in_history:
        opening = f"{quote(item_title)} is already in {user}'s history, so it is not recommended. "
        lead = "It scores as it does"
    pos = history[history["contribution"] > 0].sort_values("contribution", ascending=False, kind="stable")
    added = float(pos["contribution"].sum())
    if decisive is not None and not in_history and 0 < len(decisive.items) <= MAX_CITED:
        cited = pos.set_index("item_id", drop=False).reindex(list(decisive.items)).dropna(subset=["title"])
        if len(cited) == len(decisive.items):
            them = "it" if len(cited) == 1 else "them"
            text = (
                f"{lead} because {user} {_cite_clause(cited, rated=rated, high_rating=high_rating, verb=verb)}: "
                f"without {them} it would fall from #{decisive.old_rank} to #{decisive.new_rank}, out of the "
                f"top {decisive.k}"
            )
            return opening + text + ".", tuple(cited["item_id"])
    genres = _genre_counts(history)
    shared = sorted((c for c in item_categories if genres.get(str(c), 0) > 0), key=lambda c: (-genres[str(c)], c))
    taste_paren = f" ({', '.join(shared[:2])})" if shared else ""
    # Which residual lifts the item more: popularity, or (also when neither lifts it) the taste profile.
    taste, popularity = float(terms.get("taste profile", 0.0)), float(terms.get("popularity", 0.0))
    by_popularity = popularity > max(taste, 0.0)
    if added <= 0:
        if by_popularity:
            text = f"{lead} mainly for its popularity; none of {user}'s past titles raises its score."
        else:
            text = f"{lead} for {user}'s overall taste{taste_paren}; none of their past titles raises its score."
        return opening + text, ()
    if max(taste, popularity) > added:
        # A residual adds more than the whole history (a taste-led mix: on a sparse long-tail
        # catalog every #1 item): "because <title>" would claim what the score does not say.
        led = "its popularity" if by_popularity else f"{user}'s overall taste{taste_paren}"
        first = pos.iloc[0]
        text = (
            f"{lead} mainly for {led}, which outweighs what their past titles add; "
            f"of those, {quote(str(first['title']))} adds the most "
            f"({_pct(float(first['contribution']) / added)} of what their history adds)."
        )
        return opening + text, ()  # named for scale, not cited as the cause
    top3 = float(pos["contribution"].head(3).sum())
    if top3 < NAMED_SHARE * added:
        # Still name the largest few with their shares: specific titles, and the shares say how little each weighs.
        largest = pos.head(MAX_CITED)
        named = join_titles([f"{quote(r.title)} ({_pct(float(r.contribution) / added)})" for r in largest.itertuples()])
        verb_n = "carries" if len(largest) == 1 else "carry"
        text = (
            f"{lead} for {user}'s overall taste{taste_paren}; no single past title stands out: the largest, "
            f"{named}, {verb_n} {_pct(float(largest['contribution'].sum()) / added)} of what their history adds."
        )
        return opening + text, ()  # named for scale, not cited as the causes
    top = float(pos["contribution"].iloc[0])
    strong = pos[pos["contribution"] >= CITE_RATIO * top]
    cited = strong.head(MAX_CITED)
    used = {frozenset(a) for a in avoid}
    if frozenset(cited["item_id"]) in used:
        # Another item of the list already has this set: keep the strongest, swap in the next contributor.
        for nxt in range(len(cited), min(len(pos), 10)):
            alt = pd.concat([cited.iloc[:-1], pos.iloc[nxt : nxt + 1]]) if len(cited) > 1 else pos.iloc[[0, nxt]]
            if frozenset(alt["item_id"]) not in used:
                cited = alt
                break
    text = f"{lead} because {user} {_cite_clause(cited, rated=rated, high_rating=high_rating, verb=verb)}"
    # How much of the history's pull the named titles carry: tells two items with the same
    # causes apart, and says how complete the named causes are.
    share = float(cited["contribution"].clip(lower=0).sum()) / added
    text += f" ({'together ' if len(cited) > 1 else ''}{_pct(share)} of what their history adds)"
    cited_ids = set(cited["item_id"])
    others = history[~history["item_id"].isin(cited_ids)]
    other_counts = _genre_counts(others) if len(others) else {}
    best = max(item_categories, key=lambda c: (other_counts.get(str(c), 0), str(c)), default=None)
    n_other = other_counts.get(str(best), 0) if best is not None else 0
    if n_other:
        text += f"; {n_other} other {best} title{'s' if n_other != 1 else ''} in their history"
    return opening + text + ".", tuple(cited["item_id"])
