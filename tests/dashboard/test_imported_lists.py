"""Imported lists in the dashboard: the model picker, the Fairness and Compare pages, and no Why page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dashboard_support import charts_of


@pytest.fixture
def lists_cache(tiny_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A cache of its own (the session's world stays as other tests expect): the GAT, and its lists
    exported and imported back as ``vendor``."""
    from dashboard.settings import model_key
    from engine import service

    cache = tmp_path / "cache"
    src = Path(tiny_world.gat.artifact_path)
    shutil.copytree(src, cache / "models" / src.parents[1].name / src.parent.name / src.name)
    out = tmp_path / "vendor.csv"
    service.export_lists(tiny_world.gat, out, k=20)
    card = service.import_lists(tiny_world.gat.config, out, "vendor", cache_dir=cache)
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(cache))
    row = service.list_lists(cache)[0]
    key = model_key("vendor", row["fingerprint"], row["version"])
    return {"vendor": key, "file": card["source"]["file"], "path": str(out)}


def test_picker_marks_imported_lists(open_app, lists_cache) -> None:
    at = open_app(page="fairness", model=lists_cache["vendor"], k=10)
    picker = at.sidebar.selectbox(key="w_model")
    assert picker.value == lists_cache["vendor"]
    assert any("vendor · imported lists v1" in str(option) for option in picker.options)
    note = next(i.value for i in at.info if "imported from another system" in i.value)
    assert "vendor\\.csv" in note and "142 of 142 test users they cover" in note  # escaped Markdown
    assert not at.exception


def test_fairness_page_audits_imported_lists_like_the_model(open_app, lists_cache, tiny_world) -> None:
    at = open_app(page="fairness", model=lists_cache["vendor"], k=10)
    from engine import service

    native = tiny_world.gat.audit(k=10, n_boot=0)
    tiles = "\n".join(h.value for h in at.html)
    assert service.format_value("ndcg@10", native.accuracy["ndcg@10"], unit=True) in tiles
    assert not at.exception


def test_compare_page_puts_imported_lists_beside_the_gat(open_app, lists_cache, tiny_world) -> None:
    from dashboard.settings import model_key

    gat = tiny_world.gat
    gat_key = model_key("gat", gat.fingerprint, gat.version)
    at = open_app(page="compare", model=gat_key, vs=lists_cache["vendor"], user=gat.user_ids[3], k=10)
    assert at.selectbox(key="w_compare_other").value == lists_cache["vendor"]
    bars = next(c for c in charts_of(at) if c["layout"].get("title", {}).get("text") == "Test metrics")
    assert [t["name"] for t in bars["data"]] == ["gat", "vendor (imported)"]
    assert bars["data"][0]["y"] == bars["data"][1]["y"] or bars["data"][0]["x"] == bars["data"][1]["x"]


def test_why_page_says_imported_lists_have_no_explanation(open_app, lists_cache) -> None:
    at = open_app(page="why", model=lists_cache["vendor"])
    assert not at.exception
    assert any("vendor" in i.value and "imported from another system" in i.value for i in at.info)


def test_recommendations_page_shows_the_imported_list(open_app, lists_cache, tiny_world) -> None:
    import re

    from dashboard_support import html_of

    user = tiny_world.gat.user_ids[5]
    at = open_app(page="recommendations", model=lists_cache["vendor"], user=user, k=10)
    shown = re.findall(r'data-item="([^"]+)"', html_of(at))
    import pandas as pd

    lists = pd.read_csv(lists_cache["path"], dtype=str)
    listed = lists.loc[lists["user_id"] == user, "item_id"].tolist()[:10]
    assert shown[:10] == listed
