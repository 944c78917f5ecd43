"""Acceptance: a metric registered once shows up, labelled and formatted, in the CLI audit,
the HTML report and the dashboard's Fairness page, with no other code edited."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.lists import ListContext, gather, list_mean
from engine.evaluation.metrics import LOWER, Format, Metric, registered
from engine.evaluation.popularity import HEAD, popularity_tiers
from engine.evaluation.topk import held_out, top_k

KEY, LABEL = "head_share", "Blockbuster share"


def _head_share(ctx: ListContext) -> np.ndarray:
    head = (popularity_tiers(ctx.popularity) == HEAD).to_numpy(dtype=np.float64)
    return list_mean(gather(head, ctx.topk), ctx.topk)


NEW_METRIC = Metric(
    KEY,
    LABEL,
    "Share of recommended items that come from the head (the most popular items, together 20% of interactions).",
    LOWER,
    "user",
    _head_share,
    "Abdollahpouri et al. 2020 (head tier)",
    fmt=Format("percent", 2),
)


@pytest.fixture
def new_metric():
    """The metric, registered for one test; the dashboard's caches are cleared around it."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    with registered(NEW_METRIC):
        yield NEW_METRIC
    st.cache_data.clear()
    st.cache_resource.clear()


def _expected(rec, k: int = 10) -> float:
    """The head share of the model's plain top-k test lists, computed without the registry."""
    users, _, exclude = held_out(rec.prep.split, "test")
    lists = top_k(rec.model, users, exclude, k).items
    head = (popularity_tiers(rec.item_popularity) == HEAD).to_numpy()
    return float(np.mean([head[row[row >= 0]].mean() for row in lists]))


def test_registered_metric_reaches_the_cli_audit(new_metric, tmp_path, capsys) -> None:
    from engine.cli import build_parser, main
    from engine.commands.common import config_from_args
    from engine.pipeline import train_or_load

    args = ["audit", "--dataset", "demo", "--scale", "0.1", "--epochs", "1", "--no-text"]
    args += ["--cache-dir", str(tmp_path), "--n-boot", "0", "--groups", "group"]
    rec = train_or_load(config_from_args(build_parser().parse_args(args)), cache_dir=tmp_path)
    expected = _expected(rec)
    assert 0.0 < expected < 1.0
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if LABEL in x)
    assert f"{expected:.2%}" in line and "lower is better" in line
    # and it can be broken down by user group like any per-user metric
    assert main([*args, "--metrics", f"ndcg@10,{KEY}"]) == 0
    assert f"{LABEL} [CI]" in capsys.readouterr().out


def test_registered_metric_reaches_the_html_report(new_metric, tiny_world) -> None:
    from dashboard.components.report import audit_report_html
    from engine.fairness.audit import run_audit

    rec = tiny_world.gat.recommender
    report = run_audit(rec, n_boot=0)
    expected = _expected(rec)
    assert report.beyond_accuracy[KEY] == pytest.approx(expected)
    doc = audit_report_html(report)
    assert f"<td>{LABEL}</td>\n      <td>{expected:.2%}</td>" in doc
    assert f"<b>{LABEL}</b> (lower is better): Share of recommended items that come from the head" in doc


def test_registered_metric_reaches_the_fairness_page(new_metric, open_app, tiny_world) -> None:
    at = open_app(page="fairness")
    table = next(df.value for df in at.dataframe if "definition" in df.value.columns)
    row = table.set_index("label").loc[LABEL]
    assert row["text"] == f"{_expected(tiny_world.gat.recommender):.2%}"
    assert row["direction"] == "lower is better" and row["definition"] == NEW_METRIC.definition


def test_the_registry_is_restored_after_the_test() -> None:
    from engine.evaluation.metrics import find

    assert find(KEY) is None
