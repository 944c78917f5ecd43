"""Why this item? under AppTest: the graph, reason, badge, attributions, what-if, errors and escaping."""

from __future__ import annotations

import json
import re

from dashboard_support import HISTORYLESS_USER, XSS_TITLE, app_recommender, charts_of, html_of

from dashboard import adapters
from dashboard.components.graph_view import node_count
from dashboard.components.html import esc, table
from dashboard.components.text import md


def _pair(rec) -> tuple[str, str]:
    user = rec.user_ids[2]
    return user, str(rec.recommend(user, 10).items["item_id"].iloc[0])


def _graph_page(at) -> str:
    frames = at.get("iframe")
    assert len(frames) == 1
    return frames[0].proto.srcdoc


def test_graph_reason_and_badge_are_the_explanations(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item)
    exp = rec.explain(user, item, k=10)  # memoised: the very object the page drew
    page = _graph_page(at)
    assert node_count(page) == int(exp.subgraph_nodes["in_display"].sum())
    assert 2 <= node_count(page) <= 150
    assert "vis-network" in page and "cdnjs" not in page.split("<body>")[1]  # inlined: works offline
    body = html_of(at)
    assert f'<span class="gl-subject">{esc(exp.item_title)}</span>' in body
    assert f'<div class="gl-note gl-neutral">{esc(exp.reason)}</div>' in body
    label, tone, _ = adapters.faithfulness_badge(exp)
    assert f'class="gl-badge gl-{tone}"' in body and f">{esc(label)}</span>" in body
    assert f'<div class="gl-tile-value">#{exp.rank}</div>' in body
    titles = [c["layout"].get("title", {}).get("text") for c in charts_of(at)]
    assert titles == ["Which interactions drive the score (IG)", "Which input features drive the score (IG)"]
    assert at.query_params == {
        "page": "why",
        "dataset": "tiny-demo",
        "model": tiny_world.gat_key,
        "user": user,
        "item": item,
        "k": "10",
    }


def test_counterfactual_table_lists_the_removed_interactions(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    for user in rec.user_ids[:40]:
        item = str(rec.recommend(user, 10).items["item_id"].iloc[0])
        cf = rec.explain(user, item, k=10).counterfactual
        if cf is not None and cf.found and len(cf.removed):
            break
    else:
        raise AssertionError("no pair of the tiny world has a counterfactual")
    at = open_app(page="why", user=user, item=item)
    body = html_of(at)
    assert any(f"leaves the top {cf.k} (#{cf.old_rank} → #{cf.new_rank})" in m.value for m in at.markdown)
    assert table(cf.removed[["title", "rating", "attribution"]], {"attribution": ".4f"}) in body


def test_layer_and_head_selectors_redraw_by_attention(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user, item = _pair(rec)
    at = open_app(page="why", user=user, item=item)
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
    nodes = json.loads(data.split(");", 1)[0])
    idmap = rec.recommender.idmap
    hostile = next(n for n in nodes if n["id"] == str(idmap.n_users + idmap.item_index(tiny_world.xss_item)))
    assert hostile["label"].startswith("<img src=x")  # drawn on the canvas as text
    assert hostile["title"].startswith("<b>&lt;img src=x onerror=alert(1)&gt;</b>")


def test_errors_are_friendly(open_app, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user, _ = _pair(rec)
    at = open_app(page="why", user=user, item="no-such-item")
    assert f"There is no item **{md('no-such-item')}**" in at.warning[0].value
    at = open_app(page="why", model=tiny_world.pop_key)
    assert "Explanations need the graph attention model" in at.info[0].value
    at = open_app(page="why", user=HISTORYLESS_USER)
    assert any(c.value.startswith("Not personalised: most popular") for c in at.caption)
