"""Fairness page under AppTest: the numbers are the audit's, groups with CIs, trade-off slider, downloads."""

from __future__ import annotations

from dashboard_support import charts_of, html_of


def _audit(rec, **kw):
    return rec.audit(k=10, n_boot=1000, metrics=["ndcg@10", "recall@10", "aplt", "novelty"], **kw)


def test_headline_tiles_and_group_table_match_the_audit(open_app, tiny_world) -> None:
    at = open_app(page="fairness")
    report = _audit(tiny_world.gat)
    page = html_of(at)
    assert f'<div class="gl-tile-value">{report.accuracy["ndcg@10"]:.4f}</div>' in page
    assert f'<div class="gl-tile-value">{report.beyond_accuracy["gini_index"]:.3f}</div>' in page
    feature = at.selectbox(key="w_fair_feature").value
    metric = at.selectbox(key="w_fair_metric").value
    assert (feature, metric) == (report.groups["feature"].iloc[0], "ndcg@10")
    shown = at.dataframe[0].value
    expected = report.groups[(report.groups["feature"] == feature) & (report.groups["metric"] == metric)]
    assert shown["group"].tolist() == expected["group"].tolist()
    assert shown["size"].tolist() == expected["size"].tolist()
    assert shown["ci_low"].round(10).tolist() == expected["ci_low"].round(10).tolist()
    titles = [c["layout"].get("title", {}).get("text", "") for c in charts_of(at)]
    assert f"ndcg@10 by {feature} (95% CI)" in titles
    assert f"Exposure concentration — Gini {report.beyond_accuracy['gini_index']:.3f}" in titles
    assert at.query_params["k"] == "10"


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


def test_download_buttons_are_offered(open_app) -> None:
    # Their payloads are checked in the browser test (AppTest has no media server).
    at = open_app(page="fairness")
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["Download group table (CSV)", "Download full report (HTML)"]
