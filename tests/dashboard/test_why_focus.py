"""The Why page's words and focused graph from either kind of explanation (no model, no Streamlit)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd

from dashboard.components.graph_view import network_html
from dashboard.components.why_focus import (
    contributions,
    focused_frames,
    percent,
    rank_words,
    residuals,
    technical_figures,
)

HOSTILE = "<img src=x onerror=alert(1)>"


def _decomposed(n: int = 20) -> SimpleNamespace:
    """A decomposable explanation as the engine shapes it: history terms, residuals, no subgraph."""
    ids = [f"i{j:04d}" for j in range(n)]
    titles = [HOSTILE if j == 0 else f"Film {j}" for j in range(n)]
    values = np.linspace(0.5, -0.1, n)
    inter = pd.DataFrame(
        {"user_id": "u0042", "item_id": ids, "title": titles, "kind": "history", "attribution": values}
    )
    hist = pd.DataFrame(
        {"item_id": ids, "title": titles, "categories": [("Drama",)] * n, "rating": 5.0, "attribution": values}
    )
    terms = pd.DataFrame(
        {
            "term": ["history", "taste profile", "popularity"],
            "label": ["past interactions (20 titles)", "taste profile", "popularity"],
            "meaning": ["sum of the past items", "what the history says in general", "how often it is chosen"],
            "value": [float(values.sum()), 1.0, 0.5],
            "share": [0.5, 0.33, 0.17],
        }
    )
    return SimpleNamespace(
        user_id="u0042",
        item_id="i9999",
        item_title="Gentle Visitor",
        method="exact",
        score=float(values.sum()) + 1.5,
        baseline_score=1.5,
        completeness=0.0,
        interactions=inter,
        history_influence=hist,
        subgraph_nodes=pd.DataFrame(columns=["node", "type", "id", "title", "in_display"]),
        edges=pd.DataFrame(),
        counterfactual=None,
        timings={"total": 0.01},
        terms=terms,
    )


def test_a_decomposable_explanation_draws_its_past_items_and_lists_its_residuals() -> None:
    exp = _decomposed()
    rest = residuals(exp)
    assert list(rest["label"]) == ["taste profile", "popularity"]  # the history row is the items themselves
    terms = contributions(exp)
    assert set(terms["kind"]) == {"past item", "residual"}
    assert abs(terms["share"].abs().sum() - 1.0) < 1e-9
    nodes, edges = focused_frames(exp)
    kinds = nodes["kind"].value_counts().to_dict()
    assert kinds == {"user": 1, "target": 1, "history": 15}  # <= 15, the largest positive contributions
    assert nodes.loc[nodes["kind"] == "history", "label"].iloc[0] == HOSTILE
    first = nodes[nodes["kind"] == "history"].iloc[0]
    share = float(terms.loc[terms["label"] == HOSTILE, "share"].iloc[0])
    assert first["detail"] == f"u0042 rated it 5★; it counts for {percent(share)} of this recommendation"
    page = network_html(nodes, edges)
    data = json.loads(page.split("nodes = new vis.DataSet(", 1)[1].split(");", 1)[0])
    assert all(n["physics"] is False for n in data)
    assert "<img" not in page.split("nodes = new vis.DataSet(", 1)[1].split("</script>", 1)[0]
    figures = dict(technical_figures(exp))
    assert figures["Explanation method"] == "exact decomposition (exact)"
    assert "Baseline score (an empty history)" in figures and "Computation subgraph" not in figures


def test_rank_in_words_against_the_kth_item() -> None:
    top = np.linspace(10.0, 1.0, 10)
    assert rank_words("u1", 1, 1642, 10.0, top, 10).sentence == (
        "Ranked #1 of 1,642 items u1 has not seen, well above the #10 item."
    )
    assert rank_words("u1", 9, 1642, 1.5, top, 10).versus == "just above the #10 item"
    assert rank_words("u1", 10, 1642, 1.0, top, 10).versus == "the last item in the top 10"
    assert rank_words("u1", 12, 1642, 0.9, top, 10).versus == "just below the #10 item, outside the top 10"
    assert rank_words("u1", None, 1642, 0.9, top, 10).value == "seen"
    assert re.fullmatch(r"\d+ %|\d\.\d %|< 0\.1 %", percent(0.234)) and percent(0.0004) == "< 0.1 %"
