"""``gatlens explain``'s text report: each edge once, and no negative zero (no model needed: a stub explanation)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pandas as pd
import pytest

from engine.commands.explain import _fmt, _report


def _explanation(*, others: bool = True) -> SimpleNamespace:
    titles = [f"Film {n}" for n in range(8)]
    history = pd.DataFrame(
        {
            "item_id": [f"i{n}" for n in range(8)],
            "title": titles,
            "rating": [5.0] * 8,
            "attention": [0.1] * 8,
            "influence": [0.05] * 8,
            "attribution": [0.3, 0.2, 0.1, 0.05, 0.01, 0.0, -0.00001, -0.00004],
            "share": [0.4, 0.3, 0.2, 0.05, 0.01, 0.0, -0.00001, -0.00004],
            "rank": range(1, 9),
        }
    )
    own = history.assign(user_id="u1", kind="history")[["user_id", "title", "kind", "attribution", "attention"]]
    rows = [own]
    if others:
        rows.append(
            pd.DataFrame(
                {
                    "user_id": ["u7", "u9"],
                    "title": ["The Item", "Film 0"],
                    "kind": ["audience", "context"],
                    "attribution": [0.02, 0.01],
                    "attention": [0.2, 0.1],
                }
            )
        )
    interactions = pd.concat(rows, ignore_index=True).sort_values("attribution", ascending=False)
    interactions["rank"] = range(1, len(interactions) + 1)
    groups = pd.DataFrame(
        {
            "group": ["categories", "text", "id", "edge_weight"],
            "label": ["categories", "text", "ids", "edge weights"],
            "available": [True, False, True, True],
            "attribution": [0.5, 0.0, 0.49, -0.0001],
            "share": [0.51, 0.0, 0.49, -0.0004],
        }
    )
    return SimpleNamespace(
        user_id="u1",
        item_id="i99",
        item_title="The Item",
        fallback=None,
        rank=3,
        score=1.25,
        method="ig",
        reason="Recommended because u1 rated Film 0 5★.",
        history_influence=history,
        interactions=interactions,
        feature_groups=groups,
        counterfactual=None,
        subgraph_nodes=pd.DataFrame({"in_display": [True, True, False]}),
        edges=pd.DataFrame({"src": range(20)}),
        self_influence={"user": -0.001, "item": 0.2},
        completeness=1e-7,
    )


def test_each_edge_is_printed_once() -> None:
    text = _report(_explanation(), top=8, seconds=0.1)
    for title in (f"Film {n}" for n in range(1, 8)):
        assert len(re.findall(rf"\b{title}\b", text)) == 1, title  # in the user's history table only
    assert "user u7 - The Item [audience]" in text and "user u9 - Film 0 [context]" in text
    assert "user u1 -" not in text  # the user's own interactions are not listed a second time


def test_a_subgraph_without_other_users_says_so() -> None:
    text = _report(_explanation(others=False), top=8, seconds=0.1)
    assert "holds no other user's interaction" in text
    assert len(re.findall(r"\bFilm 3\b", text)) == 1


def test_no_negative_zero_anywhere() -> None:
    text = _report(_explanation(), top=8, seconds=0.1)
    assert not re.search(r"-0(\.0+)?\b(?!\.\d*[1-9])", text), [ln for ln in text.splitlines() if "-0" in ln]
    assert "(-0%)" not in text and "(-0.0%)" not in text


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        (-0.0004, ".0f", "0"),
        (-0.04, ".1f", "0.0"),
        (-0.0, "+.4f", "+0.0000"),
        (-0.6, ".0f", "-1"),
        (0.25, "+.4f", "+0.2500"),
        (float("nan"), ".3f", "-"),
        (None, ".3f", "-"),
    ],
)
def test_fmt(value, spec: str, expected: str) -> None:
    assert _fmt(value, spec) == expected
