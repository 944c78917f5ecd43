"""Pure builders (no Streamlit run): graph view, HTML fragments, charts, report, settings, import rules."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard.components import charts
from dashboard.components.graph_view import MAX_NODES, network_html, node_count
from dashboard.components.html import deep_link, esc, rec_cards, table, tiles
from dashboard.settings import load_settings, model_key

HOSTILE = "<img src=x onerror=alert(1)>"
ROOT = Path(__file__).resolve().parents[2]


def _graph(n_items: int = 3):
    nodes = pd.DataFrame(
        {
            "id": ["u1", "t1", *[f"h{i}" for i in range(n_items)]],
            "kind": ["user", "target", *["history"] * n_items],
            "label": ["u1", HOSTILE, *[f"Film {i}" for i in range(n_items)]],
            "importance": [1.0, 1.0, *np.linspace(0.1, 0.5, n_items)],
        }
    )
    edges = pd.DataFrame(
        {
            "src": ["u1"] * n_items,
            "dst": [f"h{i}" for i in range(n_items)],
            "weight": ([0.4, -0.2, 0.1] * n_items)[:n_items],
            "detail": [HOSTILE] * n_items,
        }
    )
    return nodes, edges


def test_network_html_is_offline_escaped_and_counts_nodes() -> None:
    nodes, edges = _graph()
    page = network_html(nodes, edges)
    assert node_count(page) == 5
    # Works offline: nothing is fetched (pyvis's template links Bootstrap from a CDN; stripped).
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?https?://", page)
    assert "vis-network" in page
    data = json.loads(page.split("nodes = new vis.DataSet(")[1].split(");")[0])
    target = next(n for n in data if n["id"] == "t1")
    assert target["title"] == "<b>&lt;img src=x onerror=alert(1)&gt;</b><br><i>recommended item</i>"  # no node id
    assert "<img" not in page.split("nodes = new vis.DataSet(")[1].split("</script>")[0]
    edge_data = json.loads(page.split("edges = new vis.DataSet(")[1].split(");")[0])
    assert [round(e["width"], 4) for e in edge_data] == [8.0, round(0.5 + 7.5 * 0.5, 4), round(0.5 + 7.5 * 0.25, 4)]
    assert edge_data[1]["color"]["color"] == "#ef4444"  # negative attribution in red
    assert "box.innerHTML = entry.title" in page  # escaped tooltips become elements


def test_network_html_refuses_oversized_or_broken_graphs() -> None:
    nodes, edges = _graph(MAX_NODES - 1)
    with pytest.raises(ValueError, match="at most 150 nodes"):
        network_html(nodes, edges.iloc[:0])
    nodes, edges = _graph()
    with pytest.raises(ValueError, match="not in the node table"):
        network_html(nodes, edges.assign(dst="ghost"))
    with pytest.raises(ValueError, match="unknown node kind"):
        network_html(nodes.assign(kind="alien"), edges)


def test_cards_and_tiles_escape_every_data_string() -> None:
    items = pd.DataFrame(
        {
            "rank": [1],
            "item_id": ['i"1'],
            "title": [HOSTILE],
            "categories": [("<b>x</b>",)],
            "score": [0.5],
            "popularity": [3],
        }
    )
    html = rec_cards(items, reasons={'i"1': HOSTILE}, links={'i"1': 'why?item=i"1'})
    assert "<img" not in html and "<b>x</b>" not in html
    assert esc(HOSTILE) in html and 'data-item="i&quot;1"' in html and 'href="why?item=i&quot;1"' in html
    assert tiles([("a<", "1>", None)]) == (
        '<div class="gl-tiles"><div class="gl-tile"><div class="gl-tile-label">'
        'a&lt;</div><div class="gl-tile-value">1&gt;</div></div></div>'
    )
    assert deep_link("why", {"user": "u 1", "item": None, "k": 10}) == "why?user=u+1&k=10"
    removed = pd.DataFrame({"title": [HOSTILE], "rating": [4.0], "attribution": [0.123456]})
    assert table(removed, {"attribution": ".4f"}) == (
        '<table class="gl-table"><thead><tr><th>title</th><th>rating</th><th>attribution</th></tr></thead>'
        f"<tbody><tr><td>{esc(HOSTILE)}</td><td>4.0</td><td>0.1235</td></tr></tbody></table>"
    )


def test_charts_escape_and_compute() -> None:
    fig = charts.long_tail(np.array([1, 10, 5, 3, 1]), ["tail", "head", "mid", "mid", "tail"])
    assert fig.layout.title.text == "Head: 20% of items hold 50% of interactions"
    assert [t.name for t in fig.data] == ["head", "mid", "long tail"]
    frame = pd.DataFrame({"label": [HOSTILE, "b", "c"], "value": [0.1, -0.5, 0.2]})
    bars = charts.attribution_bars(frame)
    # Largest magnitude on top (plotly draws the last bar on top); labels escaped for plotly's HTML subset.
    assert list(bars.data[0].y) == [esc(HOSTILE), "c", "b"]
    assert list(bars.data[0].marker.color) == [charts.ACCENT, charts.ACCENT, charts.NEGATIVE]
    groups = pd.DataFrame(
        {
            "group": ["a", "b"],
            "value": [0.2, 0.1],
            "ci_low": [0.1, 0.0],
            "ci_high": [0.3, 0.4],
            "size": [100, 5],
            "too_small": [False, True],
        }
    )
    ci = charts.group_intervals(groups, metric="ndcg@10", feature="gender")
    assert [t.name for t in ci.data] == ["group", "too small to judge"]
    assert list(ci.data[0].error_x.array) == pytest.approx([0.1])
    trade = charts.tradeoff(
        pd.DataFrame({"strength": [0, 0.5, 1], "aplt": [0, 0.1, 0.3], "ndcg@10": [0.3, 0.28, 0.2]}),
        x="aplt",
        y="ndcg@10",
        selected=0.5,
    )
    assert trade.data[-1].x == (0.1,) and trade.data[-1].name == "strength 0.5"


def test_audit_report_is_one_offline_document() -> None:
    from types import SimpleNamespace

    from dashboard.components.report import audit_report_html

    groups = pd.DataFrame(
        {
            "feature": ["group"] * 2,
            "group": [HOSTILE, "b"],
            "metric": ["ndcg@10"] * 2,
            "value": [0.2, 0.1],
            "ci_low": [0.1, 0.0],
            "ci_high": [0.3, 0.2],
            "size": [50, 40],
            "too_small": [False, False],
        }
    )
    report = SimpleNamespace(
        settings={"dataset": "demo", "model": "gat", "k": 10, "n_boot": 100, "definitions": {"gini": "RecBole"}},
        accuracy={"ndcg@10": 0.25},
        beyond_accuracy={"gini_index": 0.5, "aplt": 0.1},
        groups=groups,
        disparities=None,
        exposure=pd.DataFrame(
            {
                "dimension": ["popularity"] * 2,
                "group": ["head", "tail"],
                "exposure_share": [0.8, 0.2],
                "catalog_share": [0.2, 0.8],
            }
        ),
        lorenz=pd.DataFrame({"x": [0, 0.5, 1], "y": [0, 0.2, 1]}),
        tradeoff=None,
    )
    doc = audit_report_html(report, title="Audit <demo>")
    assert doc.startswith("<!doctype html>") and "<title>Audit &lt;demo&gt;</title>" in doc
    assert doc.count("* plotly.js v") == 1  # plotly.js inlined once, shared by every figure
    assert not re.search(r"<(script|link)[^>]*(src|href)=", doc)  # nothing fetched when opened
    assert "<img src=x" not in doc and "&lt;img src=x onerror=alert(1)&gt;" in doc
    assert "<td>0.2500</td>" in doc


def test_settings_from_environment(tmp_path) -> None:
    cfg = load_settings(
        {
            "GATLENS_CACHE_DIR": str(tmp_path),
            "GATLENS_DATASET": "ml-100k",
            "GATLENS_EPOCHS": "7",
            "GATLENS_TEXT": "0",
            "GATLENS_LIST_REASONS": "5",
        }
    )
    assert (cfg.cache_dir, cfg.dataset, cfg.epochs, cfg.text, cfg.list_reasons) == (tmp_path, "ml-100k", 7, False, 5)
    run = cfg.train_config()
    assert (run.data.dataset, run.train.epochs, run.features.text) == ("ml-100k", 7, False)
    with pytest.raises(ValueError, match="GATLENS_EPOCHS must be a int"):
        load_settings({"GATLENS_EPOCHS": "many"})
    assert model_key("gat", "02a36f00cf1d17a94c57", 3) == "gat-02a36f00-v3"


def test_dashboard_never_imports_torch_and_uses_new_apis() -> None:
    forbidden = {"torch", "torch_geometric", "captum"}
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not roots & forbidden, path
        text = path.read_text(encoding="utf-8")
        assert "use_container_width" not in text and "components.v1" not in text, path


def test_graph_frames_keep_the_pair_edges_and_the_strongest_rest() -> None:
    from types import SimpleNamespace

    from dashboard.adapters import graph_frames

    # user 0, target item 1, other items 2..6; interactions: (0,2), (0,3), and four among the rest.
    pairs = [(0, 2, 0.01), (0, 3, -0.02), (4, 5, 0.9), (5, 6, -0.8), (4, 6, 0.05), (2, 5, 0.3)]
    rows = []
    for k, (a, b, w) in enumerate(pairs):
        for s, d in ((a, b), (b, a)):
            rows.append(
                {
                    "src": s,
                    "dst": d,
                    "interaction": k,
                    "in_display": True,
                    "rank": k + 1,
                    "interaction_attribution": w,
                    "attribution": w,
                }
            )
    nodes = pd.DataFrame(
        {
            "node": range(7),
            "type": ["user", *["item"] * 6],
            "id": ["u", "i", *[f"j{k}" for k in range(5)]],
            "title": "t",
            "hop": 1,
            "influence": 0.1,
            "in_display": True,
        }
    )
    exp = SimpleNamespace(subgraph_nodes=nodes, edges=pd.DataFrame(rows), user_id="u", item_id="i")
    _, all_edges = graph_frames(exp)
    assert len(all_edges) == len(pairs)
    _, kept = graph_frames(exp, max_edges=4)
    # Both edges of the user stay however weak; then |0.9| and |-0.8|, in their original order.
    assert kept["weight"].tolist() == [0.01, -0.02, 0.9, -0.8]
    # At 3, item 6 would lose its every edge: its strongest one (-0.8) stays.
    _, kept = graph_frames(exp, max_edges=3)
    assert kept["weight"].tolist() == [0.01, -0.02, 0.9, -0.8]
    _, kept = graph_frames(exp, max_edges=2)
    # At 2 only the user's edges make the cut; 4 and 5 keep 0.9, 6 keeps -0.8 (not 0.05).
    assert kept["weight"].tolist() == [0.01, -0.02, 0.9, -0.8]


def test_metric_table_marks_the_best_value_by_direction_and_escapes() -> None:
    from dashboard.components.tables import HIGHER, LOWER, Col, best_rows, metric_table

    frame = pd.DataFrame({"model": [HOSTILE, "b", "c"], "ndcg": [0.2, 0.3, float("nan")], "gini": [0.9, 0.5, 0.7]})
    html = metric_table(
        frame,
        [
            Col("model", "Model", text=True),
            Col("ndcg", "NDCG@10", "ranking <quality>", lambda v: f"{v:.2f}", HIGHER),
            Col("gini", "Exposure Gini", None, lambda v: f"{v:.2f}", LOWER),
        ],
        key="t",
    )
    assert esc(HOSTILE) in html and HOSTILE not in html
    assert 'title="ranking &lt;quality&gt;"' in html
    assert html.count("gl-best") == 2 + 1  # two marked cells (+ the CSS rule)
    assert '<td class="gl-best">0.30 ★</td>' in html and '<td class="gl-best">0.50 ★</td>' in html
    assert "<td>—</td>" in html and "None" not in html and "nan" not in html
    assert best_rows([0.1, 0.1], HIGHER) == set()  # all equal: nothing to point at
    assert best_rows([0.1, 0.3, 0.3], HIGHER) == {1, 2}


def test_one_colour_per_model_everywhere() -> None:
    from dashboard.components.colors import model_color, model_colors

    assert model_color("gat") == model_color("gat-02a36f00-v1") == charts.ACCENT
    assert model_color("lightgcn") != model_color("gat")
    assert model_color("my-plugin") == model_color("my-plugin")  # stable for unknown names
    two = model_colors(["gat-aaaa-v1", "gat-bbbb-v2"])
    assert len(set(two.values())) == 2  # two versions of one model stay apart


def test_findings_panel_escapes_and_orders(tiny_world) -> None:
    from dashboard.components.findings import findings_html
    from engine import service

    report = tiny_world.gat.audit(k=10, n_boot=200, metrics=["ndcg@10", "aplt"])
    findings = service.audit_findings(report)
    gaps = findings[findings["kind"] == "group gap"]
    hostile = gaps.assign(low_group=HOSTILE)
    html = findings_html(pd.concat([hostile, findings[findings["kind"] != "group gap"]]), fmt=service.format_value)
    assert HOSTILE not in html and esc(HOSTILE) in html
    assert html.count("data-feature=") == len(gaps)
    assert "Exposure concentration:" in html
    assert "no significant gap" in findings_html(findings.iloc[0:0], fmt=service.format_value).lower()


def test_better_model_note_names_the_best_other_model() -> None:
    from dashboard.components.leaderboard import better_model_note, latest_per_model

    rows = [
        {"model": "lightgcn", "key": "lightgcn-1-v1", "metrics": {"test_ndcg@10": 0.28}},
        {"model": "gat", "key": "gat-1-v1", "metrics": {"test_ndcg@10": 0.18}},
        {"model": "pop", "key": "pop-1-v1", "metrics": {"test_ndcg@10": 0.08}},
    ]
    note = better_model_note(rows, rows[1])
    assert note is not None and "lightgcn" in note and "0.2800 against 0.1800" in note
    assert better_model_note(rows, rows[0]) is None
    assert list(latest_per_model(rows)) == ["lightgcn", "gat", "pop"]
    # a model an older engine trained cannot be opened: never named as better, never the newest of its model
    old = [{"model": "gat", "key": "gat-0-v1", "metrics": {"test_ndcg@10": 0.40}, "current": False}, *rows]
    assert "lightgcn" in better_model_note(old, rows[1]) and "gat-0-v1" not in better_model_note(old, rows[1])
    assert latest_per_model(old)["gat"]["key"] == "gat-1-v1"


def test_rank_overlap_compares_ranks_not_scores() -> None:
    fig = charts.rank_overlap(["a", "b", "c"], ["c", "d", "a"], ("gat", "pop"), titles={"a": HOSTILE})
    lines = [t for t in fig.data if t.mode == "lines"]
    assert sorted((tuple(t.y)) for t in lines) == [(1, 3), (3, 1)]  # a: #1 vs #3; c: #3 vs #1
    texts = [t for t in fig.data if t.mode == "markers+text"]
    assert texts[0].text[0] == esc(HOSTILE)
    assert not any("score" in str(t.hovertemplate) for t in texts)


def test_axes_read_cleanly() -> None:
    curve = charts.training_curve([{"epoch": 1, "loss": 0.7, "valid_ndcg@10": 0.1}, {"epoch": 2, "loss": 0.6}])
    assert curve.layout.yaxis2.tickmode == "auto"  # not synced to the loss grid (odd ticks like 0.0983)
    assert curve.layout.legend.yanchor == "bottom" and curve.layout.legend.y == 1.0  # above the plot, not on a title
    assert curve.layout.xaxis.automargin and curve.layout.yaxis.automargin  # titles never clipped (HTML report)
    assert curve.layout.title.text == "Training curve"
    staged = charts.training_curve([{"epoch": 1, "loss": 0.7, "valid_ndcg@10": 0.1, "stage": "taste"}])
    assert staged.layout.title.text == "Training curve of the taste part (LightGCN)"


def test_popularity_is_said_with_the_datasets_own_verb() -> None:
    from dashboard.components.cards import popularity_words
    from dashboard.components.words import audience_words

    assert popularity_words(455, 0.985) == "watched by 455 · top 2 % most watched"  # the demo world's default
    assert popularity_words(1_234, 0.995, "chose") == "chosen by 1,234 · top 1 % most chosen"
    assert popularity_words(3, 0.2, "chose") == "chosen by 3 · chosen less than most items"
    assert audience_words(1, "chose") == "chosen by 1"
