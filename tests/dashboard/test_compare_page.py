"""Compare page under AppTest: two models' lists side by side, their overlap, their metrics."""

from __future__ import annotations

import re
from pathlib import Path

from dashboard_support import charts_of, html_of


def test_two_lists_side_by_side_with_overlap(open_app, tiny_world) -> None:
    gat, pop = tiny_world.gat, tiny_world.pop
    user = gat.user_ids[10]
    at = open_app(page="compare", user=user, k=8)
    assert at.selectbox(key="w_compare_other").value in (tiny_world.pop_key, tiny_world.uigat_key)
    at.selectbox(key="w_compare_other").select(tiny_world.pop_key).run()
    page = html_of(at)
    a = gat.recommend(user, 8).items["item_id"].tolist()
    b = pop.recommend(user, 8).items["item_id"].tolist()
    shown = re.findall(r'data-item="([^"]+)"', page)
    assert shown == a + b
    both = set(a) & set(b)
    caption = next(c.value for c in at.caption if "in common" in c.value)
    assert caption.startswith(f"{len(both)} of the top 8 items in common")
    assert f"Jaccard overlap {len(both) / len(set(a) | set(b)):.2f}" in caption
    marked = re.findall(r'class="gl-card gl-mark" data-item="([^"]+)"', page)
    assert sorted(marked) == sorted((set(a) | set(b)) - both)
    bars = next(c for c in charts_of(at) if c["layout"].get("title", {}).get("text") == "Test metrics")
    assert [t["name"] for t in bars["data"]] == ["gat", "pop"]


def test_single_model_dataset_explains_how_to_compare(open_app, tiny_world, tmp_path, monkeypatch) -> None:
    import shutil

    cache = tmp_path / "cache"
    src = Path(tiny_world.gat.artifact_path)
    shutil.copytree(src, cache / "models" / "tiny-demo" / src.parent.name / "v1")
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(cache))
    at = open_app(page="compare")
    assert "Only one model is trained" in at.info[0].value
