"""Incremental updates: validation that rejects a file whole, new users and items, lineage, what changed."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.artifacts.store import ArtifactStore
from engine.assembly import prepare
from engine.config import RunConfig
from engine.data.schema import CATEGORIES, ITEM, RATING, TIMESTAMP, TITLE, USER, Dataset, DataValidationError
from engine.data.split import I, U
from engine.data.synthetic import generate_demo_world
from engine.errors import StaleArtifactError
from engine.features.text import TextFeatures
from engine.pipeline import load_latest, load_version, train_or_load
from engine.recommender import WHAT_CHANGED_COLUMNS
from engine.update.apply import update_model
from engine.update.changes import what_changed
from engine.update.merge import merge_updates, restore_prepared
from engine.update.warm import warm_start

# The warm-start details below are the user-item attention model's; the default gat's update is tested last.
CFG = RunConfig().with_overrides(model={"name": "uigat"}, features={"text": False}, train={"epochs": 3})
NEW_ITEM = "i0199"


@dataclass
class World:
    base: Dataset
    new_rows: pd.DataFrame
    new_item: pd.DataFrame
    cache: Path


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    ds = generate_demo_world(seed=0, n_users=150, n_items=200).dataset
    inter = ds.interactions
    latest = inter[TIMESTAMP] >= inter[TIMESTAMP].quantile(0.95)
    on_new_item = inter[ITEM] == NEW_ITEM
    base = Dataset(
        ds.name,
        inter[~latest & ~on_new_item].reset_index(drop=True),
        ds.items[ds.items[ITEM] != NEW_ITEM].reset_index(drop=True),
        ds.users,
        ds.rating_scale,
    )
    newcomer = pd.DataFrame(
        {
            USER: "u_new",
            ITEM: ["i0001", "i0002", "i0003", NEW_ITEM],
            RATING: [5.0, 4.0, 2.0, 5.0],
            TIMESTAMP: 2_000_000_000,
        }
    )
    new_rows = pd.concat([inter[latest | on_new_item], newcomer], ignore_index=True)
    cache = tmp_path_factory.mktemp("cache")
    return World(base, new_rows, ds.items[ds.items[ITEM] == NEW_ITEM].reset_index(drop=True), cache)


@pytest.fixture(scope="module")
def updated(world: World) -> tuple:
    old = train_or_load(CFG, dataset=world.base, cache_dir=world.cache)
    new = update_model(old, world.new_rows, new_items=world.new_item, epochs=2, cache_dir=world.cache)
    return old, new


def test_a_bad_file_is_rejected_whole_and_nothing_is_written(world: World, updated: tuple, tmp_path: Path) -> None:
    old, _ = updated
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "user_id,item_id,rating,timestamp\n"
        "u0001,i0001,4,1000000001\n"
        "u0002,i0002,five,1000000002\n"
        "u0003,nope,4,1000000003\n"
    )
    before = _files(world.cache)
    with pytest.raises(DataValidationError) as err:
        update_model(old, bad, cache_dir=world.cache)
    assert err.value.problems == [
        "bad.csv, line 3, column 'rating': got 'five', expected a number",
        "bad.csv, line 4, column 'item_id': got 'nope', expected one of the item_id values in the catalog of 'demo'",
    ]
    assert str(err.value).endswith("(and 1 more problem(s))")
    assert _files(world.cache) == before


def test_rows_already_logged_and_missing_ratings_are_rejected(world: World, updated: tuple) -> None:
    old, new = updated
    with pytest.raises(DataValidationError, match=r"new interactions, line 2, column 'user_id'.*was this file applied"):
        update_model(new, world.new_rows, new_items=None, cache_dir=world.cache, save=False)
    no_rating = world.new_rows[[USER, ITEM]].head(3)
    with pytest.raises(DataValidationError, match=r"line 1: missing column 'rating'.*\[1, 5\]"):
        update_model(old, no_rating, cache_dir=world.cache, save=False)
    with pytest.raises(DataValidationError, match=r"new items, line 2, column 'item_id': got 'i0001'"):
        update_model(old, world.new_rows, new_items=old.dataset.items.head(1), save=False)


def test_new_users_and_items_join_with_embeddings(world: World, updated: tuple) -> None:
    old, new = updated
    assert new.idmap.users[: old.idmap.n_users] == old.idmap.users  # old indices never move
    assert new.idmap.items[: old.idmap.n_items] == old.idmap.items
    assert new.idmap.users[old.idmap.n_users :] == ("u_new",)
    assert new.idmap.items[old.idmap.n_items :] == (NEW_ITEM,)
    positives = world.new_rows[world.new_rows[RATING] >= 3]
    pairs = old.prep.split.train[[U, I]].itertuples(index=False)
    old_train = {(old.idmap.users[u], old.idmap.items[i]) for u, i in pairs}
    added = {(u, i) for u, i in positives[[USER, ITEM]].itertuples(index=False)} - old_train
    card = new.meta["update"]
    assert card["positives"] == len(positives)
    assert card["train_pairs_added"] == len(added) == len(new.prep.split.train) - len(old.prep.split.train)
    assert (card["new_users"], card["new_items"], card["rows"]) == (1, 1, len(world.new_rows))
    # u_new rated i0003 with 2: not a positive, so 3 training pairs.
    u_new = new.idmap.user_index("u_new")
    assert (new.prep.split.train[U] == u_new).sum() == 3
    recs = new.recommend("u_new", k=5)
    assert recs.fallback is None and len(recs.items) == 5
    assert not set(recs.items[ITEM]) & {"i0001", "i0002", NEW_ITEM}  # seen items excluded
    emb = new.model.cached_embeddings()
    assert emb["users"][u_new].norm() > 0 and emb["items"][new.idmap.item_index(NEW_ITEM)].norm() > 0
    row = new.items.set_index(ITEM).loc[NEW_ITEM]
    assert row[CATEGORIES] == world.new_item[CATEGORIES].iat[0] and len(row[CATEGORIES]) > 0
    j = new.idmap.item_index(NEW_ITEM)
    names = [new.prep.category_names[c] for c in torch.nonzero(new.prep.categories[j]).flatten().tolist()]
    assert tuple(sorted(names)) == tuple(sorted(row[CATEGORIES]))


def test_a_new_version_records_its_parent_and_keeps_the_old(world: World, updated: tuple) -> None:
    old, new = updated
    assert (old.ref.version, new.ref.version) == (1, 2)
    assert new.ref.fingerprint == old.ref.fingerprint and new.ref.parent == old.ref
    manifest = json.loads((new.ref.path / "manifest.json").read_text())
    assert manifest["parent"]["version"] == 1 and manifest["parent"]["fingerprint"] == old.ref.fingerprint
    assert manifest["meta"]["update"]["parent"] == f"demo/{old.ref.fingerprint[:16]}/v1"
    store = ArtifactStore(world.cache / "models")
    assert [r.version for r in store.versions("demo", old.ref.fingerprint)] == [1, 2]
    v1 = store.load(old.ref)
    assert v1 is not None and v1.tensors["model"]["user_emb.weight"].shape[0] == old.idmap.n_users


def test_restore_replays_the_update(world: World, updated: tuple) -> None:
    _, new = updated
    store = ArtifactStore(world.cache / "models")
    loaded = store.load(new.ref)
    prep = restore_prepared(prepare(CFG, dataset=world.base, cache_dir=world.cache), loaded)
    assert prep.split.idmap == new.idmap
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(prep.split, part), getattr(new.prep.split, part))
    again = load_latest(CFG, cache_dir=world.cache, dataset=world.base)
    assert again is not None and again.ref.version == 2
    u = new.idmap.user_index("u_new")
    np.testing.assert_allclose(again.scores(u), new.scores(u), atol=1e-6)


def test_train_or_load_after_an_update_loads_the_updated_version(world: World, updated: tuple) -> None:
    # What `gatlens recommend / explain / audit` do: the newest version, its update replayed.
    _, new = updated
    again = train_or_load(CFG, dataset=world.base, cache_dir=world.cache)
    assert again.ref.version == 2 and again.idmap == new.idmap
    u = new.idmap.user_index("u_new")
    np.testing.assert_allclose(again.scores(u), new.scores(u), atol=1e-6)


def test_what_changed_ranks_users_by_list_change(updated: tuple) -> None:
    old, new = updated
    same = what_changed(old, old, k=10)
    assert len(same) == old.idmap.n_users and (same["changed"] == 0).all() and (same["overlap"] == 1.0).all()
    frame = what_changed(old, new, k=10)
    assert list(frame.columns) == [
        USER,
        "changed",
        "overlap",
        "new_interactions",
        "entered",
        "left",
        "top_before",
        "top_after",
    ]
    assert frame["changed"].is_monotonic_decreasing
    assert "u_new" not in set(frame[USER])
    row = frame.iloc[0]
    assert row["changed"] == len(row["left"]) == len(row["entered"]) > 0
    assert row["changed"] == 10 - len(set(row["top_before"]) & set(row["top_after"]))
    assert row["overlap"] == pytest.approx(1 - row["changed"] / 10)
    stored = new.meta["update"]["what_changed"]
    assert stored[0][USER] == row[USER] and len(stored) == 20
    assert new.meta["update"]["users_changed"] == int((frame["changed"] > 0).sum())


def test_lineage_and_what_changed_table_after_one_update(updated: tuple) -> None:
    old, new = updated
    lineage = new.lineage()
    fp16 = old.ref.fingerprint[:16]
    assert [e["version"] for e in lineage] == [2, 1] and new.version == 2
    assert [e["key"] for e in lineage] == [f"demo/{fp16}/v2", f"demo/{fp16}/v1"]
    assert [e["update"] for e in lineage] == [True, False]
    assert all(e["available"] and e["created"] for e in lineage)
    card = new.meta["update"]
    assert (lineage[0]["rows"], lineage[0]["new_users"], lineage[0]["new_items"]) == (card["rows"], 1, 1)
    assert lineage[0]["seconds"] == card["seconds"] and lineage[0]["valid_ndcg@10_after"] == card["valid_ndcg@10_after"]
    assert lineage[1]["rows"] is None and lineage[1]["valid_ndcg@10_before"] is None
    assert old.lineage() == lineage[1:]

    expected = what_changed(old, new, k=10)
    frame = new.what_changed()
    assert list(frame.columns) == list(WHAT_CHANGED_COLUMNS) and len(frame) == 20
    top = frame.iloc[0]
    assert (top[USER], top["changed"], top["entered"], top["left"]) == (
        expected[USER].iat[0],
        expected["changed"].iat[0],
        expected["entered"].iat[0],
        expected["left"].iat[0],
    )
    titles = new.items.set_index(ITEM)[TITLE]
    assert top["entered_titles"] == [titles[i] for i in top["entered"]] and len(top["entered_titles"]) > 0
    assert top["left_titles"] == [titles[i] for i in top["left"]]
    full = new.what_changed(limit=None)  # the artifact's stored table, not just the card's 20 rows
    assert full[USER].tolist() == expected[USER].tolist()
    never = old.what_changed()
    assert never.empty and list(never.columns) == list(WHAT_CHANGED_COLUMNS)


def test_load_version_picks_the_version_and_refuses_a_stale_fingerprint(world: World, updated: tuple) -> None:
    old, new = updated
    v1 = load_version(CFG, 1, fingerprint=old.ref.fingerprint, cache_dir=world.cache, dataset=world.base)
    assert v1 is not None and v1.ref == old.ref and v1.idmap == old.idmap
    v2 = load_version(CFG, 2, cache_dir=world.cache, dataset=world.base)
    assert v2 is not None and v2.idmap == new.idmap and [e["version"] for e in v2.lineage()] == [2, 1]
    assert load_version(CFG, 9, cache_dir=world.cache, dataset=world.base) is None
    with pytest.raises(StaleArtifactError, match="no longer matches"):
        load_version(CFG, 1, fingerprint="f" * 64, cache_dir=world.cache, dataset=world.base)


def test_lineage_stops_at_a_missing_parent(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    fp = "a" * 64
    v1 = store.save("demo", fp, tensors={}, json_files={}, meta={})
    v2 = store.save("demo", fp, tensors={}, json_files={}, meta={"update": {"rows": 3}}, parent=v1)
    v3 = store.save("demo", fp, tensors={}, json_files={}, meta={"update": {"rows": 4}}, parent=v2)
    assert [(r.version, m["meta"]) for r, m in store.lineage(v3)] == [
        (3, {"update": {"rows": 4}}),
        (2, {"update": {"rows": 3}}),
        (1, {}),
    ]
    (v1.path / "manifest.json").unlink()
    chain = store.lineage(v3)
    assert [r.version for r, _ in chain] == [3, 2, 1] and chain[-1][1] is None
    assert chain[0][0].parent == v2


def test_warm_start_copies_old_rows_and_initialises_new_ones(world: World, updated: tuple) -> None:
    old, new = updated
    model = warm_start(old.model, new.prep)
    n_u, n_i = old.idmap.n_users, old.idmap.n_items
    assert torch.equal(model.user_emb.weight[:n_u], old.model.user_emb.weight)
    assert torch.equal(model.item_emb.weight[:n_i], old.model.item_emb.weight)
    assert torch.count_nonzero(model.item_emb.weight[n_i:]) == 0  # placed by content alone
    train = new.prep.split.train
    items = torch.tensor(train.loc[train[U] == n_u, I].to_numpy())
    with torch.no_grad():
        want = model.item_inputs()[items].mean(0)
    assert torch.allclose(model.user_emb.weight[n_u], want, atol=1e-6)


def test_new_items_take_their_text_features_through_the_projection(world: World, updated: tuple) -> None:
    old, _ = updated
    rng = np.random.default_rng(0)
    text = TextFeatures(rng.normal(size=(old.idmap.n_items, 16)).astype(np.float32), None, "test features")
    prep = replace(old.prep, text=text)
    from engine.assembly import make_model

    base_model = make_model(prep)
    new_rows = np.array([[1.0] * 16], dtype=np.float32)
    merged = merge_updates(prep, world.new_rows, world.new_item, text_rows=new_rows)
    model = warm_start(base_model, merged)
    j = merged.split.idmap.item_index(NEW_ITEM)
    assert torch.equal(model.text[j], torch.ones(16))
    with torch.no_grad():
        want = model.text_proj(torch.ones(1, 16))[0] + model.cat_proj(merged.categories[j : j + 1])[0]
        assert torch.allclose(model.item_inputs()[j], want, atol=1e-6)
        assert want.norm() > 0


def test_cli_update_rejects_a_bad_file_then_applies_a_good_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from engine.cli import build_parser, main
    from engine.commands.update import update_config

    common = ["--dataset", "demo", "--scale", "0.1", "--no-text", "--train-epochs", "2", "--cache-dir", str(tmp_path)]
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating,timestamp\nu0001,i0001,9,1000000001\n")
    assert main(["update", *common, "--new", str(bad)]) == 2
    assert "no trained gat model" in capsys.readouterr().err
    args = build_parser().parse_args(["update", *common, "--new", str(bad)])
    train_or_load(update_config(args), cache_dir=tmp_path)
    before = _files(tmp_path)
    assert main(["update", *common, "--new", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: bad.csv, line 2, column 'rating': got '9', expected a rating in the scale [1, 5]"]
    assert _files(tmp_path) == before
    good = tmp_path / "good.csv"
    good.write_text("user_id,item_id,rating,timestamp\nnewbie,i0001,5,2000000000\nnewbie,i0002,4,2000000001\n")
    assert main(["update", *common, "--new", str(good), "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["version"], out["new_users"], out["positives"], out["epochs"]) == (2, 1, 2, 1)


@pytest.mark.parametrize(
    ("mode", "sources", "dense_max"), [("auto", -1, 20000), ("minibatch", 8, 20000), ("auto", -1, 10)]
)
def test_gat_update_refits_the_relation_on_the_new_interactions(
    world: World, tmp_path: Path, mode: str, sources: int, dense_max: int
) -> None:
    """The default gat: new interactions reach the item-item relation (a cold item becomes a source).

    ``dense_max`` 10 puts the catalog above ``relation_dense_max``: the relation is refitted from
    the sparse co-occurrence, and the update keeps that form.
    """
    model = {"name": "gat", "relation_sources": sources, "relation_dense_max": dense_max}
    cfg = CFG.with_overrides(model=model)
    old = train_or_load(cfg, dataset=world.base, cache_dir=tmp_path)
    new = update_model(old, world.new_rows, new_items=world.new_item, epochs=2, cache_dir=tmp_path, mode=mode)
    # the taste epochs ran on sampled subgraphs only when asked to
    assert ("edges_per_step" in new.curve[0]) == (mode == "minibatch")
    j = new.idmap.item_index(NEW_ITEM)
    assert bool(new.model.warm[j]) and new.model.relation_from(torch.tensor([j])).abs().sum() > 0
    # exactly the closed form on the merged interactions, in the form and with the ridge the old model chose
    assert float(new.model.relation_l2) == pytest.approx(float(old.model.relation_l2))
    chosen = int(old.model.relation_sources)
    assert int(new.model.relation_sources) == chosen and (sources < 0 or chosen == sources)
    assert chosen > 0 or dense_max > 10  # no dense form above relation_dense_max
    ref = warm_start(old.model, new.prep).fit_relation(new.prep.graph, l2=float(old.model.relation_l2), sources=chosen)
    assert ref.dense == new.model.dense == (chosen == 0)
    for name in ("relation_dense", "nbr_index", "nbr_value"):
        assert torch.allclose(getattr(ref, name).float(), getattr(new.model, name).float(), atol=1e-6)
    # the newcomer's history enters their score term by term, the new item among their sources
    u = new.idmap.user_index("u_new")
    out = new.model.contributions(u, int(np.argmax(new.scores(u))))
    assert j in out["history"].tolist()
    card = new.meta["update"]
    assert (
        card["warm_start_valid_ndcg@10"] is not None
        and card["valid_ndcg@10_after"] >= card["warm_start_valid_ndcg@10"] - 1e-9
    )
