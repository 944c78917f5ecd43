"""Fairness page under AppTest: it leads with the audit's findings and opens on the largest gap; plain
column names everywhere; the best model per column marked; the HTML report starts with the findings;
grouping, metric, re-ranker and strength in the URL; tiles, trade-off slider and downloads."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from dashboard_support import charts_of, html_of

from engine import service

RAW_KEYS = re.compile(
    r"(^|[^A-Za-z])(arp|aplt|ild_\w+|gini_index|catalog_coverage|calibration_kl|\w+_cost_per_aplt\w*|"
    r"ndcg@\d+|recall@\d+|ci_low|ci_high|too_small|max_group|min_group|None)($|[^A-Za-z])"
)


def _audit(rec, **kw):
    return rec.audit(k=10, n_boot=1000, metrics=["ndcg@10", "recall@10", "aplt", "novelty"], **kw)


class _Tables(HTMLParser):
    """Every ``<table data-table=…>`` on the page: its header texts and rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, list]] = {}
        self._name: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._name = attrs.get("data-table") or f"table{len(self.tables)}"
            self.tables[self._name] = {"head": [], "rows": [], "best": []}
        elif tag in ("th", "td") and self._name:
            self._cell = []
            if "gl-best" in (attrs.get("class") or ""):
                self.tables[self._name]["best"].append((len(self.tables[self._name]["rows"]), len(self._row)))
        elif tag == "tr":
            self._row = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None and self._name:
            text = "".join(self._cell).strip()
            if tag == "th":
                self.tables[self._name]["head"].append(text)
            else:
                self._row.append(text)
            self._cell = None
        elif tag == "tr" and self._name and self._row:
            self.tables[self._name]["rows"].append(self._row)
            self._row = []
        elif tag == "table":
            self._name = None


def _tables(html: str) -> dict[str, dict[str, list]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def test_findings_panel_leads_with_the_largest_gap_and_the_page_opens_on_it(open_app, tiny_world) -> None:
    report = _audit(tiny_world.gat)
    findings = service.audit_findings(report)
    gaps = findings[findings["kind"] == "group gap"]
    assert len(gaps), "the tiny demo world has significant gaps (its planted structure)"
    first = gaps.iloc[0]
    # the first finding is the audit's own significant disparity, with its numbers
    disp = report.disparities.set_index(["feature", "metric"]).loc[(first["feature"], first["metric"])]
    assert bool(disp["significant"]) and disp["ci_low"] > 0
    assert first["difference"] == disp["difference"] and first["low_group"] == disp["min_group"]
    # sorted by relative size within each tier (accuracy before list character, attributes before usage)
    for _, tier in gaps.groupby([gaps["metric"].str.contains("@"), gaps["feature_kind"]], sort=False):
        assert tier["relative"].is_monotonic_decreasing
    at = open_app(page="fairness")
    page = html_of(at)
    assert page.index("gl-find") < page.index("gl-tile-value")  # the findings come before the tiles
    rows = re.findall(r'<tr(?: class="gl-first")? data-feature="([^"]+)" data-metric="([^"]+)">', page)
    assert rows[0] == (first["feature"], first["metric"])
    assert [r for r in rows] == list(zip(gaps["feature"], gaps["metric"], strict=True))[: len(rows)]
    panel = [row for row in _tables(page)["table0"]["rows"] if len(row) > 1]  # without the section rows
    assert panel[0][1:4] == [
        first["feature"],
        first["metric_label"],
        f"{first['low_group']} {service.format_value(first['metric'], first['low_value'])}",
    ]
    # the page opens on that grouping and metric, and the URL says so
    assert at.selectbox(key="w_fair_feature").value == first["feature"]
    assert at.selectbox(key="w_fair_metric").value == first["metric"]
    assert (at.query_params["grouping"], at.query_params["metric"]) == (first["feature"], first["metric"])
    # plain verdicts with their thresholds
    assert "Threshold: Gini 0.5–0.8 is concentrated" in page
    assert "of the catalog but get" in page and "Threshold: a long-tail share under 75%" in page


def test_headline_tiles_and_group_table_match_the_audit(open_app, tiny_world) -> None:
    at = open_app(page="fairness", grouping="age_band", metric="ndcg@10")
    report = _audit(tiny_world.gat)
    page = html_of(at)
    assert f'<div class="gl-tile-value">{report.accuracy["ndcg@10"]:.4f}</div>' in page
    assert f'<div class="gl-tile-value">{report.beyond_accuracy["gini_index"]:.3f}</div>' in page
    assert f'<div class="gl-tile-value">{report.beyond_accuracy["aplt"]:.1%}</div>' in page
    assert (at.selectbox(key="w_fair_feature").value, at.selectbox(key="w_fair_metric").value) == (
        "age_band",
        "ndcg@10",
    )
    expected = report.groups[(report.groups["feature"] == "age_band") & (report.groups["metric"] == "ndcg@10")]
    shown = _tables(page)["groups"]
    assert shown["head"] == ["Group", "NDCG@10", "95% CI low", "95% CI high", "Users", "Judged"]
    assert [r[0] for r in shown["rows"]] == expected["group"].tolist()  # full names, in the groups' order
    assert [r[4] for r in shown["rows"]] == [f"{n:,}" for n in expected["size"]]
    assert [r[2] for r in shown["rows"]] == [f"{v:.4f}" for v in expected["ci_low"]]
    titles = [c["layout"].get("title", {}).get("text", "") for c in charts_of(at)]
    assert "NDCG@10 by age_band (95% CI)" in titles
    assert f"Exposure concentration — Gini {report.beyond_accuracy['gini_index']:.3f}" in titles
    assert at.query_params["k"] == "10"


def test_no_raw_metric_key_in_any_table_header_or_chart_axis(open_app) -> None:
    at = open_app(page="fairness")
    at.toggle(key="w_fair_all").set_value(True).run()
    assert not at.exception
    tables = _tables(html_of(at))
    assert {"groups", "tradeoff", "models", "model_gaps"} <= set(tables)
    for name, table in tables.items():
        for header in table["head"]:
            assert not RAW_KEYS.search(header), (name, header)
        for row in table["rows"]:
            assert "None" not in row and "nan" not in row, (name, row)
    trade = tables["tradeoff"]
    assert "Long-tail share" in trade["head"] and "Average popularity" in trade["head"]
    assert {r[0] for r in trade["rows"]} == {"long-tail boost"}  # the picker's name, not "pop"
    assert all(r[trade["head"].index("Long-tail share")].endswith("%") for r in trade["rows"])  # percent everywhere
    for chart in charts_of(at):
        for axis in ("xaxis", "yaxis"):
            title = (chart["layout"].get(axis) or {}).get("title", {}).get("text") or ""
            assert not RAW_KEYS.search(title), (chart["layout"].get("title"), title)
        for trace in chart["data"]:
            assert trace.get("name") not in ("pop", "mmr", "calibrated"), trace.get("name")
    for dataframe in at.dataframe:  # the All-metrics table: plain headers via column_config
        assert "label" in dataframe.value.columns  # shown as "Metric"
    captions = " ".join(c.value for c in at.caption)
    assert "0.5 * sum" not in captions  # no caption that is a bare formula


def test_model_comparison_marks_the_best_value_and_includes_group_gaps(open_app, tiny_world) -> None:
    at = open_app(page="fairness")
    at.toggle(key="w_fair_all").set_value(True).run()
    table = _tables(html_of(at))["models"]
    head, rows = table["head"], table["rows"]
    names = [r[0] for r in rows]
    assert names[0] == "gat" and sorted(names) == ["gat", "pop", "uigat"]
    metrics = ["ndcg@10", "recall@10", "aplt", "novelty"]
    reports = {m: getattr(tiny_world, m).audit(k=10, n_boot=1000, metrics=metrics) for m in names}
    col = head.index("NDCG@10")
    best = max(reports, key=lambda m: reports[m].accuracy["ndcg@10"])
    assert (names.index(best), col) in table["best"]
    assert rows[names.index(best)][col].endswith("★")
    gini = head.index("Exposure Gini")  # lower is better
    low = min(reports, key=lambda m: reports[m].beyond_accuracy["gini_index"])
    assert (names.index(low), gini) in table["best"]
    gaps = _tables(html_of(at))["model_gaps"]
    assert gaps["head"][0] == "Model" and len(gaps["head"]) > 1
    feature = gaps["head"][1]
    disp = reports["gat"].disparities.set_index(["feature", "metric"]).loc[(feature, "ndcg@10")]
    assert gaps["rows"][0][1].rstrip(" ★") == f"{disp['difference']:.4f}"
    assert "of the best group minus the worst" in " ".join(m.value for m in at.markdown)


def test_html_report_starts_with_the_findings(tiny_world) -> None:
    from dashboard.components.report import audit_report_html

    report = _audit(tiny_world.gat)
    findings = service.audit_findings(report)
    doc = audit_report_html(report)
    assert doc.index("<h2>Findings</h2>") < doc.index("<h2>Accuracy</h2>")
    first = findings[findings["kind"] == "group gap"].iloc[0]
    assert f'data-feature="{first["feature"]}" data-metric="{first["metric"]}"' in doc
    assert "Exposure concentration:" in doc and "Long-tail exposure:" in doc
    assert "Threshold:" in doc
    assert "ci_low" not in doc.split("<h2>Glossary</h2>")[0].replace("data-", "")
    assert "<td>None</td>" not in doc and "ndcg@10_cost_per_aplt" not in doc


def test_a_deep_link_reproduces_grouping_metric_and_reranker(open_app) -> None:
    at = open_app(page="fairness", grouping="age_band", metric="recall@10", reranker="mmr", strength="0.3", k=10)
    assert at.selectbox(key="w_fair_feature").value == "age_band"
    assert at.selectbox(key="w_fair_metric").value == "recall@10"
    assert at.selectbox(key="w_fair_reranker").value == "mmr"
    assert at.slider(key="w_fair_strength").value == 0.3
    params = dict(at.query_params)
    assert {k: params[k] for k in ("grouping", "metric", "reranker", "strength", "k")} == {
        "grouping": "age_band",
        "metric": "recall@10",
        "reranker": "mmr",
        "strength": "0.3",
        "k": "10",
    }
    page = html_of(at)
    assert "after the diversity (MMR) re-ranker at strength 0.3" in " ".join(c.value for c in at.caption)
    assert "vs model" in page  # tiles compare the re-ranked lists with the model's own
    # changing the grouping updates the URL
    at.selectbox(key="w_fair_feature").select("activity").run()
    assert at.query_params["grouping"] == "activity"


def test_strength_slider_applies_the_reranker(open_app, tiny_world) -> None:
    at = open_app(page="fairness")
    at.selectbox(key="w_fair_reranker").select("pop").run()
    at.slider(key="w_fair_strength").set_value(1.0).run()
    assert not at.exception
    reranked = _audit(tiny_world.gat, rerank="pop:1")
    plain = _audit(tiny_world.gat)
    page = html_of(at)
    assert f'<div class="gl-tile-value">{reranked.accuracy["ndcg@10"]:.4f}</div>' in page
    delta = reranked.accuracy["ndcg@10"] - plain.accuracy["ndcg@10"]
    assert f"{delta:+.4f} vs model" in page
    trade = next(c for c in charts_of(at) if c["layout"].get("title", {}).get("text") == "Accuracy vs long-tail share")
    assert trade["data"][-1]["name"] == "strength 1"  # the slider's point is marked on the sweep
    assert trade["data"][0]["name"] == "long-tail boost"  # the legend says what the picker says
    assert at.query_params["reranker"] == "pop" and at.query_params["strength"] == "1"


def test_download_buttons_are_offered(open_app) -> None:
    # Their payloads are checked in the browser test (AppTest has no media server).
    at = open_app(page="fairness")
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["Download group table (CSV)", "Download full report (HTML)"]
