"""Why this item? under AppTest: focused graph, rank in words, counterfactual, K, expander, what-if, escaping."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest
from dashboard_support import HISTORYLESS_USER, XSS_TITLE, app_recommender, charts_of, html_of

from dashboard import adapters
from dashboard.components.graph_view import NODE_COLORS, node_count
from dashboard.components.html import esc
from dashboard.components.text import md
from dashboard.components.why_focus import MAX_PAST_ITEMS, counterfactual_view


def _pair(rec) -> tuple[str, str]:
    user = rec.user_ids[2]
    return user, str(rec.recommend(user, 10).items["item_id"].iloc[0])


def _graph_page(at) -> str:
    frames = at.get("iframe")
    assert len(frames) == 1
    return frames[0].proto.srcdoc


def _nodes_edges(page: str) -> tuple[list[dict], list[dict]]:
    nodes = json.loads(page.split("nodes = new vis.DataSet(", 1)[1].split(");", 1)[0])
    edges = json.loads(page.split("edges = new vis.DataSet(", 1)[1].split(");", 1)[0])
    return nodes, edges


def _legend(page: str) -> list[str]:
    block = re.search(r'<div class="gl-legend">(.*?)</div>', page).group(1)
    return re.findall(r'<span class="dot"[^>]*></span>([^<]+)', block)


@pytest.mark.parametrize("model", ["gat", "uigat"])
def test_focused_graph_reason_and_rank_in_words(open_app, tiny_world, model) -> None:
    key = getattr(tiny_world, f"{model}_key")
    rec = app_recommender(tiny_world, key)
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item, model=key)
    exp = rec.explain(user, item, k=10)  # memoised: the very object the page drew
    page = _graph_page(at)
    assert "vis-network" in page and "cdnjs" not in page.split("<body>")[1]  # inlined: works offline
    nodes, _ = _nodes_edges(page)
    past = [n for n in nodes if n["color"] == NODE_COLORS["history"]]
    positive = int((exp.history_influence["attribution"] > 0).sum())
    assert len(past) == min(MAX_PAST_ITEMS, positive) and len(past) <= 15  # the default view: <= 15 past items
    assert {n["label"] for n in past} <= {t if len(t) <= 28 else t[:27] + "…" for t in exp.history_influence["title"]}
    assert all("x" in n and n["physics"] is False for n in nodes)  # a fixed layout: nothing drifts
    assert '"physics": {"enabled": false}' in page and "glSettle" in page
    assert _legend(page) == ["the user", "their past items", "recommended item", "other users"]
    if model == "gat":  # co-consumers are evidence there, not terms: thin edges, a tooltip that says so
        others = [n for n in nodes if n["color"] == NODE_COLORS["other_user"]]
        assert [n["label"] for n in others] == list(exp.co_consumers["user_id"])[: len(others)] and others
        assert all("not a separate part of this score" in n["title"] for n in others)
    assert len(set(NODE_COLORS[k] for k in ("user", "history", "target", "other_user"))) == 4
    body = html_of(at)
    assert f'<span class="gl-subject">{esc(exp.item_title)}</span>' in body
    assert f'<div class="gl-note gl-neutral">{esc(exp.reason)}</div>' in body
    n_unseen = len(rec.items) - int((rec.history(user)["part"] == "train").sum())
    assert f'<div class="gl-tile-value">#{exp.rank}</div>' in body
    assert esc(f"of {n_unseen:,} items {user} has not seen") in body
    assert re.search(r"(well above|above|just above) the #10 item|the last item in the top 10", body)
    tile_values = re.findall(r'<div class="gl-tile-value">([^<]*)</div>', body)
    assert f"{exp.score:.3f}" not in "".join(tile_values)  # no raw logits for the PM
    for word in ("robust", "IG completeness", "without any subgraph edge"):
        assert word not in body
    charts = charts_of(at)
    titles = [c["layout"]["title"]["text"] for c in charts]
    # the attention model's inputs are id / text / category parts; the default model's score is a sum of terms
    second = "Which kinds of input count" if model == "uigat" else "How the score adds up"
    assert titles == ["What counts for this recommendation", second]
    for chart in charts:  # axis titles everywhere, shares in percent
        assert chart["layout"]["xaxis"]["title"]["text"] and chart["layout"]["yaxis"]["title"]["text"]
        assert chart["layout"]["xaxis"]["tickformat"] in (".0%", ".1%")
        low, high = chart["layout"]["xaxis"]["range"]
        assert -1.05 <= low <= 0 <= high <= 1.05
    assert at.query_params == {
        "page": "why",
        "dataset": "tiny-demo",
        "model": key,
        "user": user,
        "item": item,
        "k": "10",
    }


_INDEXED = re.compile(r"\bu\d{4}\b.*·.*\bhop\b")


def _assert_tooltips_in_words(nodes: list[dict], edges: list[dict]) -> None:
    for entry in (*nodes, *edges):
        title = entry["title"]
        assert not _INDEXED.search(title), title
        assert not re.search(r"\bhop\b|\binfluence \d|\battribution [+-]?\d", title), title
    for node in nodes:
        assert not re.search(r"\b(past|other):", node["title"])  # the focused view's ids stay hidden too
        if not str(node["id"]).isdigit():
            continue
        # a subgraph node index (the full view's vis id) never shows in its own tooltip
        text = re.sub(r"\(#\d+ of [\d,]+ interactions\)", "", node["title"])
        assert not re.search(rf"(?<![\w#.,]){re.escape(str(node['id']))}(?![\w.,★]|\s?%)", text), node["title"]


def test_graph_tooltips_are_words_without_internal_indices(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world, tiny_world.uigat_key)  # the full subgraph view is the attention model's
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item, model=tiny_world.uigat_key)
    nodes, edges = _nodes_edges(_graph_page(at))
    _assert_tooltips_in_words(nodes, edges)
    assert any("of this recommendation" in n["title"] for n in nodes)
    assert any(re.search(rf"{user} (rated|chose) ", e["title"]) for e in edges)
    at.toggle(key="w_why_full").set_value(True).run()
    assert not at.exception
    exp = rec.explain(user, item, k=10)
    page = _graph_page(at)
    assert node_count(page) == int(exp.subgraph_nodes["in_display"].sum())
    assert 2 <= node_count(page) <= 150
    nodes, edges = _nodes_edges(page)
    _assert_tooltips_in_words(nodes, edges)
    assert {"the user", "their past items", "recommended item", "other users"} <= set(_legend(page))


def test_counterfactual_shows_at_most_ten_rows_and_counts_the_rest(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    for user in rec.user_ids[:40]:
        item = str(rec.recommend(user, 10).items["item_id"].iloc[0])
        exp = rec.explain(user, item, k=10)
        cf = exp.counterfactual
        if cf is not None and cf.found and len(cf.removed):
            break
    else:
        raise AssertionError("no pair of the tiny world has a counterfactual")
    at = open_app(page="why", user=user, item=item)
    view = counterfactual_view(exp)
    body = html_of(at)
    assert esc(view.verdict) in body and f"#{cf.old_rank} → #{cf.new_rank}" in view.verdict
    shown = body.split("share of this recommendation</th>", 1)[1].split("</tbody>", 1)[0]
    assert shown.count("<tr>") == min(len(cf.removed), 10)
    assert esc(str(cf.removed["title"].iloc[0])) in shown

    # A long counterfactual: the page shows 10 rows, "+N more" and a plain verdict. The service
    # memoises explanations per arguments, so the page draws the edited one.
    history = rec.history(user)
    train = history[history["part"] == "train"].head(14)
    long_removed = pd.DataFrame(
        {"item_id": train["item_id"], "title": train["title"], "rating": train["rating"], "attribution": 0.01}
    )
    key = (user, item, (("k", 10),))
    rec._explanations[key] = replace(exp, counterfactual=replace(cf, removed=long_removed))
    try:
        at = open_app(page="why", user=user, item=item)
    finally:
        rec._explanations[key] = exp
    body = html_of(at)
    shown = body.split("share of this recommendation</th>", 1)[1].split("</tbody>", 1)[0]
    assert shown.count("<tr>") == 10
    assert any(c.value == "+4 more past items" for c in at.caption)
    assert "No small set of past items explains it: it takes removing 14" in body
    assert "many signals" in body and "robust" not in body


def test_counterfactual_verdicts_in_plain_words() -> None:
    removed = pd.DataFrame(
        {
            "item_id": [f"i{n}" for n in range(12)],
            "title": [f"Film {n}" for n in range(12)],
            "rating": 5.0,
            "attribution": 0.1,
        }
    )
    hist = removed.assign(categories=[()] * 12)[["item_id", "title", "categories", "rating", "attribution"]]
    inter = removed.assign(user_id="u1", kind="history")[["user_id", "item_id", "title", "kind", "attribution"]]

    def exp(found: bool, n: int, old: int | None = 3):
        cf = SimpleNamespace(found=found, k=10, old_rank=old, new_rank=12, removed=removed.head(n), note="")
        return SimpleNamespace(user_id="u1", counterfactual=cf, history_influence=hist, interactions=inter)

    few = counterfactual_view(exp(True, 2))
    assert (few.headline, few.tone, len(few.rows), few.more) == ("2 past items", "good", 2, 0)
    assert few.verdict == "Without these 2 past items, the item drops out of u1's top 10 (#3 → #12)."
    assert list(few.rows["rating"]) == ["5★", "5★"]
    many = counterfactual_view(exp(True, 12))
    assert (many.headline, len(many.rows), many.more) == ("many signals", 10, 2)
    none = counterfactual_view(exp(False, 0))
    assert none.headline == "many signals" and none.verdict.startswith("No small set of past items explains it")
    assert counterfactual_view(exp(False, 0, old=None)).tone == "neutral"
    assert counterfactual_view(SimpleNamespace(user_id="u1", counterfactual=None)).headline == "not checked"


def test_k_control_changes_the_url_and_the_rank_text(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = rec.user_ids[2]
    item = str(rec.recommend(user, 10).items["item_id"].iloc[2])  # #3 of the list
    at = open_app(page="why", user=user, item=item)
    assert re.search(r"above the #10 item", html_of(at))
    at.slider(key="w_why_k").set_value(2).run()
    assert not at.exception
    assert at.query_params["k"] == "2"
    body = html_of(at)
    assert "the #10 item" not in body
    assert re.search(r"(just|well) below the #2 item, outside the top 2", body)
    at = open_app(page="why", user=user, item=item, k=3)
    assert at.slider(key="w_why_k").value == 3
    assert "the last item in the top 3" in html_of(at)


def test_data_scientist_expander_holds_the_technical_figures(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world, tiny_world.uigat_key)
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item, model=tiny_world.uigat_key)
    exp = rec.explain(user, item, k=10)
    box = next(e for e in at.expander if e.label == "For data scientists")
    inside = "\n".join(h.value for h in box.get("html"))
    assert "Completeness gap" in inside and esc(f"{exp.completeness:.2e}") in inside
    assert esc(f"{exp.baseline_score:.4f}") in inside and "Computation subgraph" in inside
    assert ">Integrated Gradients (ig)<" in inside  # the method


def test_an_item_already_seen_says_so_and_offers_the_top_unseen_one(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = rec.user_ids[2]
    history = rec.history(user)
    seen = history.loc[history["part"] == "train"].iloc[0]
    at = open_app(page="why", user=user, item=seen["item_id"])
    body = html_of(at)
    assert "it is already in their history, so it is not recommended to them" in body
    assert not at.get("iframe")
    top = rec.recommend(user, 10).items.iloc[0]
    button = at.button(key="w_why_top")
    assert button.label == f"Explain {user}'s top unseen item instead: {md(top['title'])}"
    button.click().run()
    assert at.query_params["item"] == str(top["item_id"])
    assert '<div class="gl-tile-value">#1</div>' in html_of(at)


def test_layer_and_head_selectors_redraw_by_attention(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world, tiny_world.uigat_key)
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item, model=tiny_world.uigat_key)
    at.toggle(key="w_why_full").set_value(True).run()
    by_attribution = _graph_page(at)
    assert at.selectbox(key="w_why_layer").options == ["all", "1", "2"]
    assert at.selectbox(key="w_why_head").options == ["mean", "0", "1"]
    at.selectbox(key="w_why_measure").select("attention").run()
    at.selectbox(key="w_why_layer").select(1).run()
    at.selectbox(key="w_why_head").select(0).run()
    by_head = _graph_page(at)
    assert by_head != by_attribution
    exp = rec.explain(user, item, k=10)
    _, edges = adapters.graph_frames(exp, measure="attention", layer=1, head=0)
    widths = [e["width"] for e in json.loads(re.search(r"edges = new vis\.DataSet\((.*?)\);", by_head).group(1))]
    top = edges["weight"].abs().max()
    assert sorted(round(w, 6) for w in widths) == sorted(round(0.5 + 7.5 * abs(w) / top, 6) for w in edges["weight"])


def test_what_if_rescoring_matches_the_engine(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item)
    assert not at.get("multiselect")  # lazy tabs: the editor runs only when its tab is open
    at.session_state["w_why_tab"] = "What-if editor"
    at.run()
    assert not at.get("plotly_chart")  # and the closed Attributions tab is not drawn
    history = rec.history(user)
    drop = history.loc[history["part"] == "train", "item_id"].head(3).tolist()
    at.multiselect(key="w_whatif_remove").set_value(drop)
    at.button(key="FormSubmitter:w_whatif_form-Re-score").click().run()
    assert not at.exception
    result = rec.what_if(user, remove=drop, k=10)
    expected = result.items[(result.items["new_rank"] >= 1) & (result.items["new_rank"] <= 10)]
    cards = re.findall(r'data-item="([^"]+)"', html_of(at).split("New top", 1)[-1])
    assert cards[-10:] == expected.sort_values("new_rank")["item_id"].tolist()


def test_hostile_title_stays_text_in_graph_and_page(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = next(u for u in rec.user_ids if tiny_world.xss_item in set(rec.recommend(u, 10).items["item_id"]))
    at = open_app(page="why", user=user, item=tiny_world.xss_item)
    body = html_of(at)
    assert esc(XSS_TITLE) in body and "<img" not in body
    page = _graph_page(at)
    data = page.split("nodes = new vis.DataSet(", 1)[1]
    assert "<img" not in data.split(");", 1)[0]  # JSON-escaped label, HTML-escaped tooltip
    nodes, edges = _nodes_edges(page)
    hostile = next(n for n in nodes if n["id"] == "item")
    assert hostile["label"].startswith("<img src=x")  # drawn on the canvas as text
    assert hostile["title"].startswith("<b>&lt;img src=x onerror=alert(1)&gt;</b>")
    assert all("<img" not in e["title"] for e in edges)


def test_errors_are_friendly(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user, _ = _pair(rec)
    at = open_app(page="why", user=user, item="no-such-item")
    assert f"There is no item **{md('no-such-item')}**" in at.warning[0].value
    at = open_app(page="why", model=tiny_world.pop_key)
    assert "cannot explain its scores: explanations need a model whose score" in at.info[0].value
    at = open_app(page="why", user=HISTORYLESS_USER)
    assert any(c.value.startswith("Not personalised: most popular") for c in at.caption)
