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
    """One to three sentences on why ``title`` is recommended.

    Args:
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
    sentences: list[str] = []
    if in_history:
        sentences.append(f"{title} is already in your history, so it is not recommended; this explains its score.")
    cited = cited_history(history)
    kinds = interactions.groupby("kind")["share"].agg(["sum", "size"]) if len(interactions) else None
    history_share = float(kinds.loc["history", "sum"]) if kinds is not None and "history" in kinds.index else 0.0
    audience_share = float(kinds.loc["audience", "sum"]) if kinds is not None and "audience" in kinds.index else 0.0
    n_audience = int(kinds.loc["audience", "size"]) if kinds is not None and "audience" in kinds.index else 0
    cited_share = float(cited["share"].sum()) if len(cited) else 0.0

    if cited.empty:
        sentences.append(f"None of your past interactions raises the score of {title}.")
    elif cited_share < THIN:
        top3 = history[history["attribution"] > 0].head(3)
        spread = (
            f"No single past interaction stands out: your top {len(top3)} account for only "
            f"{_pct(float(top3['share'].sum()))} of the edge attribution"
        )
        if history_share > 0:
            spread += f", while your {len(history)} past interactions together carry {_pct(history_share)}"
            if n_audience and audience_share > 0:
                people = "other person" if n_audience == 1 else "other people"
                spread += f" and the {n_audience} {people} who chose {title} {_pct(audience_share)}"
        sentences.append(spread + ".")
    else:
        names = join_titles(cited["title"].tolist())
        ratings = cited["rating"].to_numpy(dtype=np.float64)
        if rated and np.all(ratings >= high_rating):
            lead = f"Because you rated {names} highly"
        elif rated and not np.isnan(ratings).any():
            rated_list = join_titles([f"{t} {r:g}★" for t, r in zip(cited["title"], ratings, strict=True)])
            lead = f"Because you rated {rated_list}"
        else:
            lead = f"Because you interacted with {names}"
        sentences.append(f"{lead} ({_pct(cited_share)} of the edge attribution).")

    if audience_share > max(history_share, THIN) and not (len(cited) and cited_share < THIN):
        sentences.append(
            f"More of the credit ({_pct(audience_share)}) goes to the people who already liked {title} "
            f"than to your own history ({_pct(history_share)})."
        )

    cat_clause = _category_clause(item_categories, history, feature_groups, rated, high_rating)
    if cat_clause:
        sentences.append(cat_clause)

    if counterfactual is not None and counterfactual.found and 0 < len(counterfactual.removed) <= MAX_CITED:
        names = join_titles(counterfactual.removed["title"].tolist())
        sentences.append(
            f"Without {names} in your history it would fall to rank {counterfactual.new_rank} (verified by re-scoring)."
        )
    return " ".join(sentences)


def _category_clause(
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
        noun = "your favourites"
    else:
        pool = history["categories"]
        noun = "the items in your history"
    counts = {c: int(sum(c in cats for cats in pool)) for c in item_categories}
    best = max(counts, key=lambda c: (counts[c], c))
    if counts[best] < 2:
        return None
    return f"It is also {best}, like {counts[best]} of {noun}."


def reason_fallback(title: str, popularity_rank: int, interactions: int) -> str:
    """The reason for a user without training history."""
    return (
        f"You have no history to learn from, so this list is a popularity fallback: {title} is the "
        f"#{popularity_rank} most popular item ({interactions} training interactions). "
        "There is no personalised reason to show."
    )
