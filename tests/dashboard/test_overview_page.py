"""Overview page under AppTest: dataset card, model card, version lineage, metrics against the baseline, errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from dashboard_support import APP, TinyWorld, charts_of, html_of

from dashboard.components.text import md


def test_overview_cards_show_the_models_numbers(open_app, tiny_world) -> None:
    at = open_app()
    summary = tiny_world.gat.dataset_summary()
    page = html_of(at)
    assert [s.value for s in at.subheader][:2] == [f"Dataset · {md('tiny-demo')}", "Model · gat"]
    assert f'<div class="gl-tile-value">{summary["users"]:,}</div>' in page
    assert f'<div class="gl-tile-value">{summary["interactions"]:,}</div>' in page
    ndcg = tiny_world.gat.meta["metrics"]["test_ndcg@10"]
    assert f'<div class="gl-tile-value">{ndcg:.4f}</div>' in page
    titles = [c["layout"]["title"]["text"] for c in charts_of(at) if c["layout"].get("title")]
    # the registry's one head / mid / long-tail definition, not "the top 20% of items"
    from engine import service

    tiers = service.popularity_tiers(tiny_world.gat.item_popularity)
    head_share = re.match(r"Head: ([\d.]+)% of items hold", titles[0])
    assert head_share and float(head_share.group(1)) == pytest.approx(100 * (tiers == "head").mean(), abs=0.5)
    long_tail = next(c for c in charts_of(at) if c["layout"].get("title", {}).get("text") == titles[0])
    assert [t["name"] for t in long_tail["data"]] == ["head", "mid", "long tail"]
    # gat trains only its taste part by epochs: the curve says so, and the caption gives the whole model's figure
    assert "Training curve of the taste part (LightGCN)" in titles
    best = tiny_world.gat.meta["training"]["best_valid_ndcg@10"]
    stages = [c.value for c in at.caption if c.value.startswith("Only the taste part learns by epochs")]
    assert stages and stages[0].endswith(f"the whole model validates at NDCG@10 {best:.3f}.")
    # The baseline stored beside the GAT is compared in the metrics chart.
    bars = next(c for c in charts_of(at) if c["layout"].get("title", {}).get("text") == "Test metrics")
    assert sorted(t["name"] for t in bars["data"]) == ["gat", "pop", "uigat"]
    # The guided tour links carry the model and a concrete user.
    links = at.get("page_link")
    assert [link.proto.page for link in links] == ["recommendations", "why", "fairness", "compare"]
    query = dict(parse_qsl(links[1].proto.query_string))
    heavy = tiny_world.gat.user_ids[int(tiny_world.gat.recommender.prep.split.matrix("train").getnnz(axis=1).argmax())]
    top1 = tiny_world.gat.recommend(heavy, 1).items["item_id"].iloc[0]
    assert query == {"dataset": "tiny-demo", "model": tiny_world.gat_key, "user": heavy, "item": top1, "page": "why"}
    # A model trained from scratch: version v1, no "what changed" table, a hint how to update it.
    captions = [c.value for c in at.caption]
    assert f"**{md('version v1')}** · lineage: {md('v1 (trained)')}" in captions
    assert any(c.startswith("Trained from scratch (no updates yet). `gatlens update --dataset csv") for c in captions)
    assert not [e for e in at.expander if e.label == "What changed in the last update"]


def test_model_from_the_url_is_selected(open_app, tiny_world) -> None:
    at = open_app(model=tiny_world.pop_key)
    assert [s.value for s in at.subheader][1] == "Model · pop"
    assert at.query_params == {"page": "overview", "dataset": "tiny-demo", "model": tiny_world.pop_key}


def test_unknown_model_in_the_url_falls_back_with_a_message(open_app, tiny_world) -> None:
    at = open_app(model="gat-00000000-v9")
    assert any("not in the cache" in w.value for w in at.warning)
    assert [s.value for s in at.subheader][1] == "Model · gat"


def test_empty_cache_offers_training_and_trains_with_progress(tiny_world, tmp_path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(tmp_path / "empty"))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    assert "No trained model" in at.info[0].value
    assert at.button[0].label == "Train the csv model"
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader][:2] == [f"Dataset · {md('tiny-demo')}", "Model · gat"]
    assert list((tmp_path / "empty" / "models" / "tiny-demo").glob("*/v1/manifest.json"))


def test_corrupt_model_says_what_to_do(tiny_world, tmp_path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    cache = tmp_path / "cache"
    shutil.copytree(tiny_world.cache_dir / "models", cache / "models")
    rel = Path(tiny_world.gat.artifact_path).relative_to(tiny_world.cache_dir / "models")
    weights = cache / "models" / rel / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00" * 8 if data[-8:] != b"\x00" * 8 else b"\x01" * 8
    weights.write_bytes(bytes(data))
    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(cache))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["model"] = tiny_world.gat_key
    at.run()
    assert not at.exception
    message = at.error[0].value
    assert "could not be loaded" in message and "Train" in message
    assert at.button[0].label == "Train the csv model"


def test_stale_model_is_refused_not_swapped(tiny_world, tmp_path, monkeypatch) -> None:
    import json

    from streamlit.testing.v1 import AppTest

    cache = tmp_path / "cache"
    shutil.copytree(tiny_world.cache_dir / "models", cache / "models")
    # A model whose stored fingerprint no longer matches what its config gives today (data or engine changed).
    fake = "f" * 64
    stale = cache / "models" / "tiny-demo" / fake[:16] / "v1"
    shutil.copytree(Path(tiny_world.gat.artifact_path), stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    fresh = manifest["fingerprint"]
    manifest["fingerprint"] = fake
    (stale / "manifest.json").write_text(json.dumps(manifest))
    import engine.service as service

    # listed, but known to be outdated without loading any data: its config no longer gives its fingerprint
    current = {r["fingerprint"]: r["current"] for r in service.list_models(cache)}
    assert current[fake] is False and current[fresh] is True
    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(cache))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["model"] = "gat-ffffffff-v1"
    at.run()
    assert not at.exception
    assert "no longer matches the current data or engine version" in at.error[0].value
    picker = next(s for s in at.selectbox if s.label == "Model")
    assert any(o.startswith("gat · ffffffff v1") and o.endswith("outdated: retrain") for o in picker.options)
    assert not any(o.startswith(f"gat · {fresh[:8]}") and "outdated" in o for o in picker.options)


@pytest.fixture(scope="module")
def updated_world(tiny_world: TinyWorld, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the tiny world's cache with the GAT updated once (v2): one user gets their whole
    top 10 as new interactions (so exactly their list is replaced: the most changed user), plus a newcomer."""
    import json

    import pandas as pd

    from dashboard.settings import model_key
    from engine.config import RunConfig
    from engine.pipeline import load_version
    from engine.update.apply import update_model

    cache = tmp_path_factory.mktemp("updated") / "cache"
    shutil.copytree(tiny_world.cache_dir, cache)
    config = RunConfig.from_dict(json.loads((Path(tiny_world.gat.artifact_path) / "config.json").read_text()))
    old = load_version(config, 1, cache_dir=cache)
    user = old.idmap.users[0]
    top = old.recommend(user, 10).items["item_id"].tolist()
    rows = pd.DataFrame(
        {
            "user_id": [user] * 10 + ["u_newcomer"] * 2,
            "item_id": top + top[:2],
            "rating": 5.0,
            "timestamp": range(2_000_000_000, 2_000_000_012),
        }
    )
    new = update_model(old, rows, epochs=1, cache_dir=cache)
    return {"cache": cache, "user": user, "new": new, "key": model_key("gat", new.ref.fingerprint, new.ref.version)}


def test_updated_model_shows_its_lineage_and_what_changed(tiny_world, updated_world, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(updated_world["cache"]))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["model"] = updated_world["key"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader][1] == "Model · gat"
    captions = [c.value for c in at.caption]
    lineage = md("v2 (update: +12 interactions, 1 new user) ← v1 (trained)")
    assert f"**{md('version v2')}** · lineage: {lineage}" in captions
    assert not any(c.startswith("Trained from scratch") for c in captions)
    [expander] = [e for e in at.expander if e.label == "What changed in the last update"]
    summary = next(c.value for c in expander.caption if c.value.startswith(f"Update of {md('tiny-demo/')}"))
    assert "+12 interactions (12 positive), 1 new user, 0 new items, 1 warm-start epoch" in summary
    [table] = [d.value for d in expander.dataframe]
    assert list(table.columns) == ["user_id", "changed", "overlap", "new_interactions", "left_titles", "entered_titles"]
    first = table.iloc[0]
    assert (first["user_id"], first["changed"], first["overlap"], first["new_interactions"]) == (
        updated_world["user"],
        10,
        0.0,
        10,
    )
    new = updated_world["new"]
    titles = new.items.set_index("item_id")["title"]
    expected = new.meta["update"]["what_changed"][0]
    assert list(first["entered_titles"]) == [titles[i] for i in expected["entered"]]
    assert len(table) == len(new.meta["update"]["what_changed"])
