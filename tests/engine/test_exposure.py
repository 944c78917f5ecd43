"""Item exposure: shares per group, head/mid/tail split, Lorenz curve and Gini."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.evaluation.popularity import popularity_tiers
from engine.fairness.exposure import (
    exposure_by_group,
    gini,
    interaction_share,
    item_exposure,
    lorenz_curve,
    position_weights,
)


def test_position_weights():
    assert position_weights(3).tolist() == pytest.approx([1.0, 1 / math.log2(3), 0.5])
    assert position_weights(3, "uniform").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="'square'"):
        position_weights(3, "square")


def test_exposure_by_group_hand_example_with_log_weights():
    topk = np.array([[0, 1], [1, 2]])
    groups = pd.Series(["a", "a", "b", "b"], index=[0, 1, 2, 3])
    w2 = 1 / math.log2(3)
    # item exposure: 0 -> 1, 1 -> w2 + 1, 2 -> w2, 3 -> 0
    a, b = 2 + w2, w2
    out = exposure_by_group(topk, groups).set_index("group")
    assert out.loc["a", "exposure_share"] == pytest.approx(a / (a + b))
    assert out.loc["b", "exposure_share"] == pytest.approx(b / (a + b))
    assert out.loc["a", "catalog_share"] == pytest.approx(0.5)
    assert out.loc["a", "exposure_ratio"] == pytest.approx(2 * a / (a + b))
    assert out["interaction_share"].isna().all()
    uniform = exposure_by_group(topk, groups, weighting="uniform").set_index("group")
    assert uniform["exposure_share"].tolist() == pytest.approx([0.75, 0.25])


def test_exposure_shares_sum_to_one_and_padding_is_ignored():
    rng = np.random.default_rng(0)
    topk = rng.integers(0, 50, size=(30, 10))
    topk[0, 5:] = -1
    groups = pd.Series(pd.Categorical(rng.choice(["x", "y", "z"], 50), categories=["z", "y", "x"]))
    pop = rng.integers(0, 100, 50)
    out = exposure_by_group(topk, groups, interactions_share=interaction_share(groups, pop))
    assert out["group"].tolist() == ["z", "y", "x"]  # category order kept
    for column in ("exposure_share", "catalog_share", "interaction_share"):
        assert out[column].sum() == pytest.approx(1.0)
    assert item_exposure(topk, 50, weighting="uniform").sum() == 30 * 10 - 5


def test_interactions_share_is_aligned_and_checked():
    topk = np.array([[0, 2]])
    groups = pd.Series(["a", "b", "b"])
    out = exposure_by_group(topk, groups, interactions_share=pd.Series({"b": 3.0, "a": 1.0}))
    assert out.set_index("group")["interaction_share"].tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="'c'"):
        exposure_by_group(topk, groups, interactions_share=pd.Series({"c": 1.0}))
    with pytest.raises(ValueError, match="absent from item_groups"):
        exposure_by_group(np.array([[7]]), groups)


def test_popularity_tiers_split_by_share_of_interactions():
    pop = np.array([20, 15, 15, 10, 10, 10, 8, 6, 4, 2, 0])  # 100 interactions
    out = popularity_tiers(pop)
    # head: 20 alone is 20%; adding the 15s would reach 50%.
    # tail from the bottom: 0+2+4+6+8 = 20%; adding the 10s would reach 50%.
    assert out.tolist() == ["head"] + ["mid"] * 5 + ["tail"] * 5
    assert list(out.cat.categories) == ["head", "mid", "tail"]
    share = interaction_share(out, pop)
    assert share["head"] == pytest.approx(0.2) and share["tail"] == pytest.approx(0.2)


def test_popularity_tiers_keep_ties_together_and_zero_items_in_tail():
    pop = np.array([30, 30, 20, 10, 10, 0])
    # head=0.2: the tied 30s hold 60% together, so neither is head (ties are never split).
    # tail=0.25: the tied 10s hold 20% and join the tail together; tail=0.15 keeps only the 0.
    assert popularity_tiers(pop, head=0.2, tail=0.25).tolist() == ["mid"] * 3 + ["tail"] * 3
    assert popularity_tiers(pop, head=0.6, tail=0.15).tolist() == ["head"] * 2 + ["mid"] * 3 + ["tail"]
    with pytest.raises(ValueError, match="head"):
        popularity_tiers(pop, head=1.5)


def test_gini_known_values():
    assert gini(np.ones(7)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 0, 9.0])) == pytest.approx(4 / 5)  # (n-1)/n
    assert gini(np.array([1.0, 2.0, 3.0])) == pytest.approx(4 / 18)
    with pytest.raises(ValueError, match="all zero"):
        gini(np.zeros(3))


def test_lorenz_curve_hand_example_and_gini_consistency():
    curve = lorenz_curve(np.array([1.0, 0.0, 3.0]))
    assert curve["x"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert curve["y"].tolist() == pytest.approx([0, 0, 0.25, 1])
    rng = np.random.default_rng(2)
    x = rng.pareto(1.5, 200)
    curve = lorenz_curve(x)
    area = np.sum(np.diff(curve["x"]) * (curve["y"].to_numpy()[1:] + curve["y"].to_numpy()[:-1]) / 2)
    assert gini(x) == pytest.approx(1 - 2 * area)
