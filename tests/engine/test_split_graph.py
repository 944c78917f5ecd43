"""Splits are deterministic and leak-free; the graph holds training edges only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.graph import EDGE_IU, EDGE_UI, build_graph
from engine.data.idmap import IdMap
from engine.data.schema import Dataset
from engine.data.split import I, U, kcore, split, to_implicit


def toy(n_users: int = 40, n_items: int = 30, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(5, 20), replace=False)
        for t, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), 1000 + 10 * t + u))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(
        {"item_id": [f"i{i}" for i in range(n_items)], "title": "t", "categories": [("a",)] * n_items, "text": ""}
    )
    return Dataset("toy", inter, items, None, (1.0, 5.0))


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame[U], frame[I], strict=True))


@pytest.mark.parametrize("method", ["random", "temporal", "global_time"])
def test_no_validation_or_test_pair_in_training(method: str) -> None:
    sp = split(toy(), method=method, seed=3)
    train, valid, test = pairs(sp.train), pairs(sp.valid), pairs(sp.test)
    assert train.isdisjoint(valid) and train.isdisjoint(test) and valid.isdisjoint(test)
    assert len(valid) > 0 and len(test) > 0


def test_random_split_is_deterministic_and_8_1_1_per_user() -> None:
    a, b = split(toy(), seed=7), split(toy(), seed=7)
    c = split(toy(), seed=8)
    assert pairs(a.test) == pairs(b.test) and pairs(a.train) == pairs(b.train)
    assert pairs(a.test) != pairs(c.test)
    # A user with 19 positives: floor(1.9) = 1 valid, 1 test, 17 train (RecBole's rounding).
    sizes = pd.concat([a.train, a.valid, a.test]).groupby(U).size()
    u = int(sizes.idxmax())
    n = int(sizes.max())
    assert (a.valid[U] == u).sum() == n // 10
    assert (a.test[U] == u).sum() == n // 10
    assert (a.train[U] == u).sum() == n - 2 * (n // 10)


def test_item_counts_are_the_column_sums_of_each_part() -> None:
    sp = split(toy(), seed=3)
    for part in ("train", "valid", "test"):
        counts = sp.item_counts(part)
        assert counts.dtype == np.int64 and counts.shape == (sp.n_items,)
        assert counts.tolist() == np.asarray(sp.matrix(part).sum(0)).ravel().astype(int).tolist()
    assert sp.item_counts().sum() == len(sp.train)


def test_threshold_keeps_ratings_at_least_3() -> None:
    ds = toy()
    kept = to_implicit(ds.interactions, 3.0)
    assert kept["rating"].min() >= 3
    assert len(kept) == int((ds.interactions["rating"] >= 3).sum())


def test_kcore_leaves_every_user_and_item_with_k() -> None:
    df = kcore(to_implicit(toy().interactions, None), 6)
    assert df.groupby("user_id").size().min() >= 6
    assert df.groupby("item_id").size().min() >= 6


def test_temporal_split_holds_out_each_users_latest() -> None:
    ds = toy()
    sp = split(ds, method="temporal", threshold=None)
    last = sp.train.groupby(U)["timestamp"].max()
    test_t = sp.test.set_index(U)["timestamp"]
    assert (test_t > last.loc[test_t.index]).all()


def test_graph_has_only_training_edges_in_both_directions() -> None:
    sp = split(toy(), seed=1)
    g = build_graph(sp)
    n_u = sp.n_users
    ui = g.edge_index[:, g.edge_type == EDGE_UI]
    iu = g.edge_index[:, g.edge_type == EDGE_IU]
    got = {(int(s), int(d) - n_u) for s, d in ui.T}
    assert got == pairs(sp.train)
    assert {(int(d), int(s) - n_u) for s, d in iu.T} == got
    assert g.edge_attr.shape == (2 * len(sp.train), 2)
    assert float(g.edge_attr.min()) >= 0 and float(g.edge_attr.max()) <= 1


def test_category_nodes_are_added_on_request() -> None:
    sp = split(toy(), seed=1)
    cats = [("a", "b")] + [("a",)] * (sp.n_items - 1)
    g = build_graph(sp, item_categories=cats, with_category_nodes=True)
    assert g.n_categories == 2 and g.categories == ["a", "b"]
    assert g.num_nodes == sp.n_users + sp.n_items + 2
    assert g.to_pyg().num_nodes == g.num_nodes


def test_idmap_json_round_trip_and_extend() -> None:
    m = IdMap.build(["u2", "u1"], ["a", "b", "c"])
    again = IdMap.from_json(m.to_json())
    assert again == m and again.user_index("u1") == 1 and again.item_index("c") == 2
    ext = m.extend(users=["u1", "u9"], items=["d"])
    assert ext.user_index("u9") == 2 and ext.item_index("a") == 0 and ext.n_items == 4
    with pytest.raises(KeyError, match="unknown user id 'nope'"):
        m.user_index("nope")
