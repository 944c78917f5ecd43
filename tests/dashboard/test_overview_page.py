"""Overview page under AppTest: dataset card, model card, metrics against the baseline, errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qsl

from dashboard_support import APP, charts_of, html_of


def test_overview_cards_show_the_models_numbers(open_app, tiny_world) -> None:
    at = open_app()
    summary = tiny_world.gat.dataset_summary()
    page = html_of(at)
    assert [s.value for s in at.subheader][:2] == ["Dataset · tiny-demo", "Model · gat"]
    assert f'<div class="gl-tile-value">{summary["users"]:,}</div>' in page
    assert f'<div class="gl-tile-value">{summary["interactions"]:,}</div>' in page
    ndcg = tiny_world.gat.meta["metrics"]["test_ndcg@10"]
    assert f'<div class="gl-tile-value">{ndcg:.4f}</div>' in page
    titles = [c["layout"]["title"]["text"] for c in charts_of(at) if c["layout"].get("title")]
    assert titles[0].startswith("Long tail: the top 20% of items hold")
    assert "Training curve" in titles
    # The baseline stored beside the GAT is compared in the metrics chart.
    bars = next(c for c in charts_of(at) if c["layout"].get("title", {}).get("text") == "Test metrics")
    assert sorted(t["name"] for t in bars["data"]) == ["gat", "pop"]
    # The guided tour links carry the model and a concrete user.
    links = at.get("page_link")
    assert [link.proto.page for link in links] == ["recommendations", "why", "fairness", "compare"]
    query = dict(parse_qsl(links[1].proto.query_string))
    heavy = tiny_world.gat.idmap.users[int(tiny_world.gat.prep.split.matrix("train").getnnz(axis=1).argmax())]
    top1 = tiny_world.gat.recommend(heavy, 1).items["item_id"].iloc[0]
    assert query == {"dataset": "tiny-demo", "model": tiny_world.gat_key, "user": heavy, "item": top1, "page": "why"}


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
    assert [s.value for s in at.subheader][:2] == ["Dataset · tiny-demo", "Model · gat"]
    assert list((tmp_path / "empty" / "models" / "tiny-demo").glob("*/v1/manifest.json"))


def test_corrupt_model_says_what_to_do(tiny_world, tmp_path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    cache = tmp_path / "cache"
    shutil.copytree(tiny_world.cache_dir / "models", cache / "models")
    weights = next(Path(cache / "models").glob("tiny-demo/*/v1/model.safetensors"))
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
    shutil.copytree(tiny_world.gat.ref.path, stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    manifest["fingerprint"] = fake
    (stale / "manifest.json").write_text(json.dumps(manifest))
    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GATLENS_CACHE_DIR", str(cache))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["model"] = "gat-ffffffff-v1"
    at.run()
    assert not at.exception
    assert "no longer matches the current data or engine version" in at.error[0].value
