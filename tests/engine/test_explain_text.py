"""The plain-language reason says only what the numbers support (hand-built tables)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from engine.explain.text import cited_history, join_titles, reason_fallback, reason_for


def _history(rows: list[tuple[str, float, float, tuple[str, ...]]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["title", "rating", "attribution", "categories"])
    frame["share"] = frame["attribution"]  # shares of a total of 1.0 in these tables
    return frame.sort_values("attribution", ascending=False).reset_index(drop=True)


def _groups(categories: float = 0.1) -> pd.DataFrame:
    return pd.DataFrame({"group": ["categories", "text", "id", "edge_weight"], "attribution": [categories, 0, 0.5, 0]})


def _inter(history: float, audience: float) -> pd.DataFrame:
    return pd.DataFrame({"kind": ["history", "audience"], "share": [history, audience]})


def _reason(history, *, groups=None, inter=None, rated=True, cats=("Animation",), cf=None) -> str:
    return reason_for(
        user_id="u7",
        title="Target",
        item_categories=cats,
        history=history,
        interactions=inter if inter is not None else _inter(0.6, 0.1),
        feature_groups=groups if groups is not None else _groups(),
        rated=rated,
        high_rating=4.0,
        counterfactual=cf,
    )


def test_join_titles():
    assert join_titles([]) == ""
    assert join_titles(["A"]) == "A"
    assert join_titles(["A", "B", "C"]) == "A, B and C"


def test_cites_high_ratings_with_their_share():
    h = _history(
        [
            ("Toy Story (1995)", 5, 0.40, ("Animation",)),
            ("Aladdin (1992)", 4, 0.21, ("Animation",)),
            ("Heat (1995)", 5, 0.05, ("Crime",)),
        ]
    )
    assert cited_history(h)["title"].tolist() == ["Toy Story (1995)", "Aladdin (1992)"]  # 0.05 < 0.40 / 2
    text = _reason(h)
    assert text.startswith(
        "Recommended because u7 rated “Toy Story (1995)” and “Aladdin (1992)” highly (61% of the edge attribution)."
    )
    assert "It is also Animation, like 2 of u7's favourites." in text
    assert "Heat" not in text


def test_no_highly_for_a_middling_rating():
    h = _history([("A", 5, 0.40, ()), ("B", 3, 0.30, ())])
    text = _reason(h)
    assert "highly" not in text
    assert text.startswith("Recommended because u7 rated “A” 5★ and “B” 3★ (70% of the edge attribution).")


def test_implicit_feedback_wording():
    h = _history([("A", float("nan"), 0.5, ("Animation",)), ("B", float("nan"), 0.3, ("Animation",))])
    text = _reason(h, rated=False)
    assert text.startswith("Recommended because u7 interacted with “A” and “B” (80% of the edge attribution).")
    assert "like 2 of the items in u7's history" in text


def test_thin_attribution_is_called_thin():
    h = _history([("A", 5, 0.06, ()), ("B", 5, 0.04, ()), ("C", 5, 0.03, ()), ("D", 5, 0.02, ())])
    text = _reason(h)
    assert text.startswith("No single past title stands out for u7: the largest, “A”, carries 6% of the edge")
    assert "; their 4 past titles together carry 60%, the 1 other person who chose “Target” 10%." in text
    assert "highly" not in text


def test_negative_attributions_are_never_cited():
    h = _history([("A", 5, -0.2, ()), ("B", 5, -0.1, ())])
    text = _reason(h)
    assert text.startswith("None of u7's past titles raises the score of “Target”.")
    assert "A" not in text.replace("Animation", "")


def test_category_clause_needs_support():
    h = _history([("A", 5, 0.5, ("Animation",)), ("B", 5, 0.3, ("Animation",))])
    assert "Animation" not in _reason(h, groups=_groups(categories=-0.01))  # categories lower the score
    one = _history([("A", 5, 0.5, ("Animation",)), ("B", 5, 0.3, ("Drama",))])
    assert "It is also" not in _reason(one)  # a single favourite is not a pattern
    low = _history([("A", 3, 0.5, ("Animation",)), ("B", 2, 0.3, ("Animation",))])
    assert "It is also" not in _reason(low)  # ratings below 4 are not favourites


def test_audience_and_counterfactual_clauses():
    h = _history([("A", 5, 0.2, ()), ("B", 5, 0.15, ())])
    text = _reason(h, inter=_inter(0.35, 0.5))
    assert (
        "More of the credit (50%) goes to the people who already liked “Target” than to u7's own history (35%)." in text
    )
    removed = pd.DataFrame({"title": ["A"]})
    cf = SimpleNamespace(found=True, removed=removed, new_rank=14)
    assert "Without “A” in u7's history it would fall to rank 14 (verified by re-scoring)." in _reason(h, cf=cf)
    not_found = SimpleNamespace(found=False, removed=removed.iloc[:0], new_rank=None)
    assert "Without" not in _reason(h, cf=not_found)


def test_fallback_reason():
    text = reason_fallback("Star Wars (1977)", 1, 583, user_id="u9")
    assert text.startswith("u9 has no history to learn from")
    assert "popularity fallback" in text and "#1 most popular" in text and "583" in text


def test_few_past_titles_are_not_called_a_top_3_and_a_total():
    """With 3 past titles "the top 3" is the whole history: one figure, no contradiction, no "you"."""
    h = _history([("A", 5, 0.05, ()), ("B", 5, 0.04, ()), ("C", 5, 0.03, ())])
    text = _reason(h, inter=_inter(0.12, 0.0))
    assert text.startswith("No single past title stands out for u7: the largest, “A”, carries 5%")
    assert "all 3 of their past titles together 12%" in text
    assert "top 3" not in text and "you" not in text.lower().split()


def test_recently_needs_known_times_that_differ():
    from engine.explain.decomposed import recent_mask

    dated = np.array([100, 500, 300, 200, 400, 50, 60, 70, 80, 90, 10, 20], dtype=np.float64)
    assert np.flatnonzero(recent_mask(dated)).tolist() == [1, 4]  # the latest 10 % of 12, rounded up
    # a log without timestamps (-1 = unknown) or with one time for every row: nothing is "recent"
    assert not recent_mask(np.full(12, -1.0)).any()
    assert not recent_mask(np.full(12, 1_600_000_000.0)).any()
    # unknown times never count as the latest; a 3-item history says nothing either
    mixed = np.array([-1, -1, 5, 9, 7, 3, 1], dtype=np.float64)
    assert np.flatnonzero(recent_mask(mixed)).tolist() == [3]
    assert not recent_mask(np.array([1.0, 2.0, 3.0])).any()
