"""Full-ranking accuracy metrics: hand-computed values, exclusion, and PyG cross-checks."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from engine.data.idmap import IdMap
from engine.data.split import I, SplitData, U
from engine.evaluation.ranking import METRICS, evaluate, metrics_from_topk, topk_items


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


class MatrixModel:
    """Scores are rows of a fixed ``[n_users, n_items]`` matrix."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores[users]


def _frame(pairs: list[tuple[int, int]]) -> pd.DataFrame:
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    i = np.array([p[1] for p in pairs], dtype=np.int64)
    n = len(pairs)
    return pd.DataFrame(
        {
            U: u,
            I: i,
            "w_rating": np.ones(n, np.float32),
            "w_recency": np.ones(n, np.float32),
            "timestamp": np.zeros(n, np.int64),
        }
    )


@pytest.fixture
def tiny_split() -> SplitData:
    # 3 users x 8 items.
    # user 0: train {0, 1, 2}, valid {3}, test {4, 5}
    # user 1: train {0, 6},    valid {},  test {7}
    # user 2: train {1},       valid {2}, test {}    (skipped on test)
    idmap = IdMap.build(["a", "b", "c"], [f"i{k}" for k in range(8)])
    train = _frame([(0, 0), (0, 1), (0, 2), (1, 0), (1, 6), (2, 1)])
    valid = _frame([(0, 3), (2, 2)])
    test = _frame([(0, 4), (0, 5), (1, 7)])
    return SplitData(idmap, train, valid, test)


# --------------------------------------------------------------------------- metrics_from_topk


def test_metrics_hand_computed() -> None:
    topk = np.array(
        [
            [0, 1, 2, 3],  # relevant {1, 3, 5}: hits at ranks 2 and 4
            [4, 5, 6, -1],  # relevant {4}: hit at rank 1; last slot is padding
            [7, 8, 9, 0],  # relevant {}: undefined -> NaN
            [2, 3, 4, 5],  # relevant {9}: no hit
        ]
    )
    relevant = _csr([[1, 3, 5], [4], [], [9]], 10)
    df = metrics_from_topk(topk, relevant, ks=(2, 4))
    assert df["n_relevant"].tolist() == [3, 1, 0, 1]
    d = [1 / math.log2(r + 1) for r in range(1, 5)]  # 1, 0.6309, 0.5, 0.4307

    row0 = df.iloc[0]
    # @2: 1 hit of 3 relevant.
    assert row0["recall@2"] == pytest.approx(1 / 3)
    assert row0["precision@2"] == pytest.approx(1 / 2)
    assert row0["f1@2"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))  # = 0.4
    assert row0["ndcg@2"] == pytest.approx(d[1] / (d[0] + d[1]))  # IDCG over min(3, 2) = 2 -> 0.38685
    assert row0["mrr@2"] == pytest.approx(1 / 2)
    assert row0["hit@2"] == 1.0
    assert row0["map@2"] == pytest.approx((1 / 2) / 2)  # P@2 at the hit / min(3, 2) = 0.25
    # @4: 2 hits of 3.
    assert row0["recall@4"] == pytest.approx(2 / 3)
    assert row0["precision@4"] == pytest.approx(2 / 4)
    assert row0["f1@4"] == pytest.approx(4 / 7)  # 2 * .5 * .6667 / 1.1667
    assert row0["ndcg@4"] == pytest.approx((d[1] + d[3]) / (d[0] + d[1] + d[2]))  # 0.49819
    assert row0["mrr@4"] == pytest.approx(1 / 2)
    assert row0["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # (P@2 + P@4) / min(3, 4) = 1/3

    row1 = df.iloc[1]
    assert row1["recall@2"] == 1.0 and row1["precision@2"] == 0.5
    assert row1["f1@2"] == pytest.approx(2 / 3)
    assert row1["ndcg@2"] == pytest.approx(1.0) and row1["mrr@2"] == 1.0 and row1["map@2"] == 1.0
    # padding counts as a miss: precision divides by K, not by the 3 real items.
    assert row1["precision@4"] == pytest.approx(1 / 4)
    assert row1["f1@4"] == pytest.approx(0.4)

    assert df.iloc[2].drop("n_relevant").isna().all()
    row3 = df.iloc[3].drop("n_relevant")
    assert (row3 == 0.0).all()
    assert list(df.columns) == ["n_relevant"] + [f"{m}@{k}" for k in (2, 4) for m in METRICS]


def test_metrics_validate_inputs() -> None:
    rel = _csr([[1]], 5)
    with pytest.raises(ValueError, match="every k"):
        metrics_from_topk(np.array([[0, 1]]), rel, ks=(3,))
    with pytest.raises(ValueError, match="rows"):
        metrics_from_topk(np.array([[0, 1], [2, 3]]), rel, ks=(2,))
    with pytest.raises(ValueError, match="positive"):
        metrics_from_topk(np.array([[0, 1]]), rel, ks=(0,))


# --------------------------------------------------------------------------- topk_items / evaluate


def test_topk_items_masks_and_pads() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    exclude = _csr([[0, 2, 3], [3]], 4)
    out = topk_items(MatrixModel(scores), np.array([1, 0]), exclude, 2, batch_size=1)
    # user 1 loses item 3 -> items 2, 1; user 0 keeps only item 1 -> padded with -1.
    assert out.tolist() == [[2, 1], [1, -1]]
    with pytest.raises(ValueError, match="k must be"):
        topk_items(MatrixModel(scores), np.array([0]), exclude, 5)


def test_evaluate_excludes_train_and_valid(tiny_split: SplitData) -> None:
    train = tiny_split.matrix("train").toarray()
    valid = tiny_split.matrix("valid").toarray()
    test = tiny_split.matrix("test").toarray()
    # A model that loves what the user already saw: without masking, train and
    # valid items would fill the top of every list.
    scores = 100 * train + 50 * valid + 10 * test + np.arange(8)[::-1] * 0.1
    res = evaluate(MatrixModel(scores), tiny_split, "test", ks=(2, 3))
    assert res.per_user["u"].tolist() == [0, 1]  # user 2 has no test item
    assert res.topk.shape == (2, 3)
    for row, u in zip(res.topk, res.per_user["u"], strict=True):
        assert not set(row) & set(np.flatnonzero(train[u] + valid[u]))
    # test items now lead: user 0 [4, 5, ...], user 1 [7, ...]
    assert res.topk[0, :2].tolist() == [4, 5] and res.topk[1, 0] == 7
    assert res.overall["recall@2"] == pytest.approx(1.0)
    assert res.overall["ndcg@3"] == pytest.approx(1.0)
    assert res.overall["precision@2"] == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert res.per_user["n_relevant"].tolist() == [2, 1]


def test_evaluate_valid_masks_train_only(tiny_split: SplitData) -> None:
    train = tiny_split.matrix("train").toarray()
    valid = tiny_split.matrix("valid").toarray()
    scores = 100 * train + 50 * valid + np.arange(8)[::-1] * 0.1
    res = evaluate(MatrixModel(scores), tiny_split, "valid", ks=(1,))
    # users 0 and 2 have a valid item; it is not masked and ranks first.
    assert res.per_user["u"].tolist() == [0, 2]
    assert res.topk[:, 0].tolist() == [3, 2]
    assert res.overall["hit@1"] == 1.0
    with pytest.raises(ValueError, match="part"):
        evaluate(MatrixModel(scores), tiny_split, "train")


def test_evaluate_ml100k_scale_is_fast() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 943, 1682
    pairs = {
        (int(u), int(i))
        for u, i in zip(rng.integers(0, n_users, 100_000), rng.integers(0, n_items, 100_000), strict=True)
    }
    pairs = sorted(pairs)
    part = rng.choice(3, size=len(pairs), p=[0.8, 0.1, 0.1])
    frames = [_frame([p for p, s in zip(pairs, part, strict=True) if s == k]) for k in range(3)]
    split = SplitData(IdMap.build(map(str, range(n_users)), map(str, range(n_items))), *frames)
    model = MatrixModel(rng.normal(size=(n_users, n_items)))
    evaluate(model, split, "test")  # warm-up
    t = time.perf_counter()
    res = evaluate(model, split, "test")
    elapsed = time.perf_counter() - t
    assert elapsed < 1.0, f"evaluate took {elapsed:.3f}s on 943 x 1682"
    # random scores: Recall@10 ~ 10 / (n_items - |train|) on average, far below 0.05
    assert 0 < res.overall["recall@10"] < 0.05
    assert len(res.per_user) == (np.diff(split.matrix("test").indptr) > 0).sum()


# --------------------------------------------------------------------------- PyG cross-check


@pytest.mark.parametrize("k", [1, 5, 10])
def test_matches_torch_geometric(k: int) -> None:
    from torch_geometric.metrics import (
        LinkPredF1,
        LinkPredHitRatio,
        LinkPredMAP,
        LinkPredMRR,
        LinkPredNDCG,
        LinkPredPrecision,
        LinkPredRecall,
    )

    rng = np.random.default_rng(k)
    n_users, n_items = 200, 60
    topk = np.stack([rng.permutation(n_items)[:10] for _ in range(n_users)])
    # 0..12 relevant items per user (some users with none, some with > k).
    rows = [sorted(rng.choice(n_items, size=rng.integers(0, 13), replace=False).tolist()) for _ in range(n_users)]
    rel = _csr(rows, n_items)
    ours = metrics_from_topk(topk, rel, ks=(k,)).mean()  # NaN rows (no relevant) skipped
    coo = rel.tocoo()
    edge_label_index = torch.tensor(np.stack([coo.row, coo.col]), dtype=torch.long)
    pred = torch.from_numpy(topk)
    # Same definitions (PyG normalises MAP and NDCG by min(|R|, k) like RecBole).
    pairs = {
        "recall": LinkPredRecall(k),
        "precision": LinkPredPrecision(k),
        "f1": LinkPredF1(k),
        "ndcg": LinkPredNDCG(k),
        "mrr": LinkPredMRR(k),
        "hit": LinkPredHitRatio(k),
        "map": LinkPredMAP(k),
    }
    for name, metric in pairs.items():
        metric.update(pred, edge_label_index)
        assert ours[f"{name}@{k}"] == pytest.approx(float(metric.compute()), abs=1e-6), name
