"""Re-rankers: strength 0 is the identity, hand examples, monotone trade-offs, spec parsing."""

from __future__ import annotations

import math
import time
from itertools import pairwise

import numpy as np
import pytest

from engine.evaluation.popularity import popularity_tiers
from engine.fairness.rerank import (
    apply_rerank,
    calibrated,
    calibration_kl,
    mmr,
    parse_rerank_spec,
    popularity_penalty,
    top_k,
)

N_ITEMS, N_CATS = 200, 6


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    n_users, n_cands = 40, 30
    candidates = np.stack([rng.choice(N_ITEMS, n_cands, replace=False) for _ in range(n_users)])
    scores = rng.normal(size=(n_users, n_cands))
    categories = (rng.random((N_ITEMS, N_CATS)) < 0.3).astype(float)
    categories[np.arange(N_ITEMS), rng.integers(0, N_CATS, N_ITEMS)] = 1.0  # every item has a category
    vectors = rng.normal(size=(N_ITEMS, 8))
    popularity = np.floor(rng.pareto(1.2, N_ITEMS) * 10)
    history = rng.dirichlet(np.full(N_CATS, 0.5), n_users)
    return {
        "candidates": candidates,
        "scores": scores,
        "categories": categories,
        "vectors": vectors,
        "popularity": popularity,
        "history": history,
    }


def test_top_k_sorts_by_score_keeps_tie_order_and_pads():
    candidates = np.array([[5, 6, 7, 8], [1, 2, -1, 3]])
    scores = np.array([[0.1, 0.9, 0.9, 0.5], [np.nan, 2.0, 9.0, 1.0]])
    assert top_k(candidates, scores, 3).tolist() == [[6, 7, 8], [2, 3, -1]]
    assert top_k(candidates, scores, 5).tolist() == [[6, 7, 8, 5, -1], [2, 3, -1, -1, -1]]


def test_strength_zero_returns_original_top_k(world):
    w = world
    base = top_k(w["candidates"], w["scores"], 10)
    assert np.array_equal(mmr(w["candidates"], w["scores"], w["vectors"], 10, 0.0), base)
    assert np.array_equal(popularity_penalty(w["candidates"], w["scores"], w["popularity"], 10, 0.0), base)
    lists = calibrated(w["candidates"], w["scores"], w["categories"], w["history"], 10, 0.0)
    assert np.array_equal(lists, base)
    assert np.array_equal(apply_rerank("none", w["candidates"], w["scores"], k=10), base)


def test_mmr_prefers_a_different_category_over_a_near_duplicate():
    candidates = np.array([[0, 1, 2]])
    scores = np.array([[1.0, 0.95, 0.5]])  # normalised relevance 1, 0.9, 0
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])  # item 1 duplicates item 0
    assert mmr(candidates, scores, vectors, 2, 0.0).tolist() == [[0, 1]]
    # lam=0.5: item 1 -> 0.5*0.9 - 0.5*cos ~ -0.05; item 2 -> 0.5*0 - 0 = 0
    assert mmr(candidates, scores, vectors, 2, 0.5).tolist() == [[0, 2]]
    # lam=0.02: item 1 -> 0.98*0.9 - 0.02 = 0.862 beats item 2 (0)
    assert mmr(candidates, scores, vectors, 2, 0.02).tolist() == [[0, 1]]
    multi_hot = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # action, action, drama
    assert mmr(candidates, scores, multi_hot, 3, 0.5).tolist() == [[0, 2, 1]]


def test_mmr_lowers_intra_list_similarity(world):
    w = world
    unit = w["categories"] / np.linalg.norm(w["categories"], axis=1, keepdims=True)

    def mean_pairwise_sim(lists):
        v = unit[lists]
        sims = np.einsum("ukd,ujd->ukj", v, v)
        k = lists.shape[1]
        return (sims.sum(axis=(1, 2)) - k).mean() / (k * (k - 1))

    base = mean_pairwise_sim(top_k(w["candidates"], w["scores"], 10))
    diverse = mean_pairwise_sim(mmr(w["candidates"], w["scores"], w["categories"], 10, 0.7))
    assert diverse < base - 0.05


def test_popularity_penalty_hand_example():
    candidates = np.array([[0, 1]])
    scores = np.array([[1.0, 0.9]])  # relevance 1, 0
    popularity = np.array([1000.0, 1.0])  # p = 1, log(2)/log(1001) ~ 0.10
    assert popularity_penalty(candidates, scores, popularity, 1, 0.5).tolist() == [[0]]  # 0.5 vs -0.05
    assert popularity_penalty(candidates, scores, popularity, 1, 2.0).tolist() == [[1]]  # -1 vs -0.2


def test_popularity_penalty_increases_tail_share_monotonically(world):
    w = world
    is_tail = (popularity_tiers(w["popularity"]) == "tail").to_numpy()
    log_pop = np.log1p(w["popularity"])
    tail_share, mean_log_pop = [], []
    for strength in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0):
        lists = popularity_penalty(w["candidates"], w["scores"], w["popularity"], 10, strength)
        tail_share.append(is_tail[lists].mean())
        mean_log_pop.append(log_pop[lists].mean())
    assert all(b >= a for a, b in pairwise(tail_share))
    assert all(b <= a + 1e-12 for a, b in pairwise(mean_log_pop))
    assert tail_share[-1] > tail_share[0] + 0.1


def test_calibrated_hand_example_and_kl_value():
    candidates = np.array([[0, 1, 2, 3]])
    scores = np.array([[1.0, 0.9, 0.8, 0.7]])
    categories = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # three action, one drama
    history = np.array([[0.5, 0.5]])
    assert calibrated(candidates, scores, categories, history, 2, 0.0).tolist() == [[0, 1]]
    assert calibrated(candidates, scores, categories, history, 2, 0.5).tolist() == [[0, 3]]
    # One action item: q~ = (0.99 * 1 + 0.005, 0.005)
    expected = 0.5 * math.log(0.5 / 0.995) + 0.5 * math.log(0.5 / 0.005)
    assert calibration_kl(np.array([[0, -1]]), categories, history)[0] == pytest.approx(expected)
    assert calibration_kl(np.array([[0, 3]]), categories, history)[0] == pytest.approx(0.0, abs=1e-12)


def test_calibrated_reduces_kl(world):
    w = world
    base = top_k(w["candidates"], w["scores"], 10)
    kl_base = calibration_kl(base, w["categories"], w["history"]).mean()
    kl = [kl_base]
    for lam in (0.3, 0.7):
        lists = calibrated(w["candidates"], w["scores"], w["categories"], w["history"], 10, lam)
        kl.append(calibration_kl(lists, w["categories"], w["history"]).mean())
    assert kl[1] < kl[0] and kl[2] < kl[1]


def test_parse_rerank_spec():
    assert parse_rerank_spec("mmr:0.3") == ("mmr", 0.3)
    assert parse_rerank_spec(" POP:2 ") == ("pop", 2.0)
    assert parse_rerank_spec("calibrated:0.4") == ("calibrated", 0.4)
    assert parse_rerank_spec("none") == ("none", 0.0)
    with pytest.raises(ValueError, match=r"'diverse:0\.3'.*\['mmr', 'pop', 'calibrated'\]"):
        parse_rerank_spec("diverse:0.3")
    with pytest.raises(ValueError, match=r"'mmr'.*missing strength"):
        parse_rerank_spec("mmr")
    with pytest.raises(ValueError, match="'high' is not a number"):
        parse_rerank_spec("pop:high")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_rerank_spec("mmr:1.5")
    with pytest.raises(ValueError, match=">= 0"):
        parse_rerank_spec("pop:-1")


def test_apply_rerank_dispatches_and_names_missing_inputs(world):
    w = world
    c, s = w["candidates"], w["scores"]
    via_spec = apply_rerank("mmr:0.3", c, s, k=5, item_vectors=w["vectors"])
    assert np.array_equal(via_spec, mmr(c, s, w["vectors"], 5, 0.3))
    via_spec = apply_rerank("pop:0.5", c, s, k=5, item_popularity=w["popularity"])
    assert np.array_equal(via_spec, popularity_penalty(c, s, w["popularity"], 5, 0.5))
    with pytest.raises(ValueError, match="item_categories"):
        apply_rerank("calibrated:0.4", c, s, k=5)


def test_invalid_candidates_are_rejected():
    with pytest.raises(ValueError, match="row 1"):
        top_k(np.array([[1, 2], [3, 3]]), np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="same shape"):
        top_k(np.array([[1, 2]]), np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="item_popularity has 3 rows"):
        popularity_penalty(np.array([[1, 5]]), np.zeros((1, 2)), np.ones(3), 1, 0.5)


def test_rerankers_are_fast_on_movielens_sized_input():
    # 943 users x 100 candidates -> top 10; measured ~0.05 s (mmr), ~0.01 s (pop), ~0.13 s (calibrated).
    rng = np.random.default_rng(1)
    n_users, n_cands, n_items = 943, 100, 1682
    candidates = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :n_cands]
    scores = rng.normal(size=(n_users, n_cands))
    categories = (rng.random((n_items, 19)) < 0.15).astype(float)
    history = rng.dirichlet(np.full(19, 0.3), n_users)
    runs = {
        "mmr": lambda: mmr(candidates, scores, rng.normal(size=(n_items, 64)), 10, 0.3),
        "pop": lambda: popularity_penalty(candidates, scores, rng.integers(0, 500, n_items), 10, 0.5),
        "calibrated": lambda: calibrated(candidates, scores, categories, history, 10, 0.4),
    }
    for name, run in runs.items():
        start = time.perf_counter()
        out = run()
        assert out.shape == (n_users, 10)
        assert time.perf_counter() - start < 3.0, name
