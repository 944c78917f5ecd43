"""Beyond-accuracy metrics: hand-computed tiny world, padding, validation, PyG cross-checks."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from engine.evaluation import beyond as B
from engine.evaluation import compute as C
from engine.evaluation.popularity import long_tail, popularity_tiers


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


# Tiny world: 6 items, 10 training users, 3 evaluated users, K = 3.
N_ITEMS, N_USERS = 6, 10
POP = np.array([10, 6, 4, 3, 2, 0])  # 25 training interactions; item 5 is cold
TOPK = np.array([[0, 1, 2], [0, 3, 4], [0, 1, 3]])
# exposure counts: item0 3, item1 2, item2 1, item3 2, item4 1, item5 0 (9 slots)
CATS = np.array(
    [  # A  B  C
        [1, 0, 0],  # item0 {A}
        [1, 1, 0],  # item1 {A, B}
        [0, 1, 0],  # item2 {B}
        [0, 0, 1],  # item3 {C}
        [0, 0, 0],  # item4 {}
        [1, 0, 0],  # item5 {A}
    ]
)
EMB = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [0, 0], [1, 0]], dtype=float)
HISTORY = _csr([[3, 5], [1], [2, 4]], N_ITEMS)  # disjoint from each user's list
RELEVANT = _csr([[1, 4], [4], [3]], N_ITEMS)  # disjoint from history
# long tail (least popular, <= 20% of interactions): 0 + 2 + 3 = 5 = 20% of 25 -> {3, 4, 5};
# no head (item 0 alone holds 40%), so head + mid = the short head {0, 1, 2}


def test_exposure_coverage_entropy_gini() -> None:
    assert B.exposure_counts(TOPK, N_ITEMS).tolist() == [3, 2, 1, 2, 1, 0]
    assert B.catalog_coverage(TOPK, N_ITEMS) == pytest.approx(5 / 6)
    # p = 3/9, 2/9, 1/9, 2/9, 1/9 -> H = 1/3*log2(3) + 4/9*log2(9/2) + 2/9*log2(9) = 2.19716 bits
    h = (1 / 3) * math.log2(3) + (4 / 9) * math.log2(9 / 2) + (2 / 9) * math.log2(9)
    assert B.distributional_coverage(TOPK, N_ITEMS) == pytest.approx(h)
    assert h == pytest.approx(2.19716, abs=1e-5)
    assert B.distributional_coverage(TOPK, N_ITEMS, base=math.e) == pytest.approx(h * math.log(2))
    # sorted counts [0, 1, 1, 2, 2, 3], weights 2j - 7 = [-5, -3, -1, 1, 3, 5]:
    # sum = -3 - 1 + 2 + 6 + 15 = 19 -> G = 19 / (6 * 9) = 0.35185
    assert B.gini_index(TOPK, N_ITEMS) == pytest.approx(19 / 54)
    # one item shown to everyone: maximal concentration (n - 1) / n
    assert B.gini_index(np.array([[2], [2]]), 4) == pytest.approx(3 / 4)


def test_personalization() -> None:
    # overlaps: u0-u1 {0} = 1, u0-u2 {0, 1} = 2, u1-u2 {0, 3} = 2 -> mean overlap/K = (5/3)/3 = 5/9
    assert B.personalization(TOPK, N_ITEMS) == pytest.approx(1 - 5 / 9)
    assert B.personalization(np.array([[0, 1], [0, 1]]), 3) == pytest.approx(0.0)
    assert B.personalization(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(1.0)
    assert math.isnan(B.personalization(np.array([[0, 1]]), 3))


def test_long_tail_is_the_one_tier_definition() -> None:
    assert np.flatnonzero(long_tail(POP)).tolist() == [3, 4, 5]
    assert popularity_tiers(POP).tolist() == ["mid"] * 3 + ["tail"] * 3
    # ties are never split by item index: four equally popular items are all mid
    assert not long_tail(np.ones(4)).any()
    # no interactions at all: nothing is popular, the whole catalog is long tail
    assert long_tail(np.zeros(3)).all()
    with pytest.raises(ValueError, match="bool mask"):
        B.aplt(TOPK, POP, tail=np.array([0, 0, 1]))


def test_popularity_metrics() -> None:
    # ARP per user: (10+6+4)/3, (10+3+2)/3, (10+6+3)/3 -> mean (20 + 15 + 19) / 9 = 6
    assert B.average_recommendation_popularity(TOPK, POP) == pytest.approx(6.0)
    # tail {3, 4, 5}: shares 0/3, 2/3, 1/3 -> 1/3
    assert B.aplt(TOPK, POP) == pytest.approx(1 / 3)
    # an explicit tail {2, 3, 4, 5}: tail shares 1/3, 2/3, 1/3 -> 4/9
    assert B.aplt(TOPK, POP, tail=np.array([False, False, True, True, True, True])) == pytest.approx(4 / 9)
    # novelty -log2(pop/10): item0 0, item1 0.73697, item2 1.32193, item3 1.73697, item4 2.32193
    info = [-math.log2(p / N_USERS) for p in (10, 6, 4, 3, 2)]
    per_user = [
        (info[0] + info[1] + info[2]) / 3,
        (info[0] + info[3] + info[4]) / 3,
        (info[0] + info[1] + info[3]) / 3,
    ]
    assert B.novelty(TOPK, POP, N_USERS) == pytest.approx(np.mean(per_user))
    assert np.mean(per_user) == pytest.approx(0.954636, abs=1e-6)
    # a cold item counts as seen once: -log2(1/10)
    assert B.novelty(np.array([[5]]), POP, N_USERS) == pytest.approx(math.log2(10))
    with pytest.raises(ValueError, match="exceeds n_users"):
        B.novelty(TOPK, POP, 5)


def test_pop_rsp_and_reo() -> None:
    # RSP: recommended head 3 + 1 + 2 = 6, tail 0 + 2 + 1 = 3
    # head items not in history: u0 3, u1 2 (item 1 seen), u2 2 (item 2 seen) = 7
    # tail items not in history: u0 1 ({3,5} seen), u1 3, u2 2 (item 4 seen) = 6
    # P = 6/7, 1/2 -> std/mean = (6/7 - 1/2) / (6/7 + 1/2) = 5/19
    assert B.pop_rsp(TOPK, POP, HISTORY) == pytest.approx(5 / 19)
    # REO: relevant hits u0 {1} head, u1 {4} tail, u2 {3} tail -> head 1, tail 2
    # relevant per group: head {1} = 1, tail {4}, {4}, {3} = 3 -> P = 1, 2/3 -> (1/3) / (5/3) = 1/5
    assert B.pop_reo(TOPK, POP, RELEVANT) == pytest.approx(0.2)
    # equal recall in both groups -> 0
    assert B.pop_reo(np.array([[0, 3]]), POP, _csr([[0, 3]], N_ITEMS)) == pytest.approx(0.0)


def test_diversity() -> None:
    # Jaccard distances: u0 (0.5 + 1 + 0.5)/3 = 2/3; u1 all 1 (empty set vs {A} or {C}); u2 (0.5 + 1 + 1)/3
    assert B.intra_list_diversity_categories(TOPK, CATS) == pytest.approx((2 / 3 + 1 + 5 / 6) / 3)
    assert B.intra_list_diversity_categories(TOPK, sp.csr_matrix(CATS)) == pytest.approx(15 / 18)
    # two uncategorised items share the empty set: distance 0
    assert B.intra_list_diversity_categories(np.array([[4, 5]]), np.array([-1, -1, -1, -1, -1, -1])) == 0.0
    # cosine distances: u0 (1 + 2(1 - 1/sqrt2))/3; u1 (2 + 1 + 1)/3 (zero vector: cos 0); u2 (1 + 2 + 1)/3
    u0 = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert B.intra_list_diversity_embeddings(TOPK, EMB) == pytest.approx((u0 + 4 / 3 + 4 / 3) / 3)
    with pytest.raises(ValueError, match="2-D"):
        B.intra_list_diversity_embeddings(TOPK, np.ones(6))


def test_calibration_kl() -> None:
    # p(g|u) from history, q(g|u) from the list, q~ = 0.99 q + 0.01 p:
    # u0: p = (.5, 0, .5), q = (.5, .5, 0) -> q~ = (.5, .495, .005) -> KL = .5 ln(.5/.005) = .5 ln 100
    # u1: p = (.5, .5, 0), q = (.5, 0, .5) -> q~ = (.5, .005, .495) -> KL = .5 ln 100
    # u2: p = (0, 1, 0) (item 4 has no category), q = (.5, 1/6, 1/3) -> q~_B = .165 + .01 = .175 -> ln(1/.175)
    expected = (0.5 * math.log(100) * 2 + math.log(1 / 0.175)) / 3
    assert B.calibration_kl(TOPK, CATS, HISTORY) == pytest.approx(expected)
    assert expected == pytest.approx(2.116046, abs=1e-6)
    # a list with the history's exact distribution is calibrated
    assert B.calibration_kl(np.array([[0, 2]]), CATS, _csr([[5, 2]], N_ITEMS)) == pytest.approx(0.0)
    # a history without categorised items is undefined
    assert math.isnan(B.calibration_kl(np.array([[0]]), CATS, _csr([[4]], N_ITEMS)))
    with pytest.raises(ValueError, match="alpha"):
        B.calibration_kl(TOPK, CATS, HISTORY, alpha=1.0)


def test_serendipity() -> None:
    # popularity order 0 > 1 > 2 > 3 > 4 > 5; the baseline recommends the top 3 unseen:
    # u0 (seen {3,5}) {0,1,2}: hit 1 expected -> 0
    # u1 (seen {1})   {0,2,3}: hit 4 unexpected -> 1/3
    # u2 (seen {2,4}) {0,1,3}: hit 3 expected -> 0
    assert B.serendipity(TOPK, POP, RELEVANT, HISTORY) == pytest.approx(1 / 9)
    # without history the baseline is {0,1,2} for everyone: u1 and u2 hits are unexpected
    assert B.serendipity(TOPK, POP, RELEVANT) == pytest.approx(2 / 9)
    # users without a relevant item are skipped, not counted as 0
    rel = _csr([[1, 4], [4], []], N_ITEMS)
    assert B.serendipity(TOPK, POP, rel, HISTORY) == pytest.approx(1 / 6)


def test_beyond_accuracy_and_per_user_agree() -> None:
    kw = dict(n_users=N_USERS, item_categories=CATS, item_embeddings=EMB, history=HISTORY, relevant=RELEVANT)
    out = C.beyond_accuracy(TOPK, POP, **kw)
    assert set(out) == {
        "catalog_coverage",
        "distributional_coverage",
        "gini_index",
        "personalization",
        "arp",
        "aplt",
        "novelty",
        "ild_categories",
        "calibration_kl",
        "ild_embeddings",
        "serendipity",
        "pop_rsp",
        "pop_reo",
    }
    assert out["arp"] == pytest.approx(6.0)
    assert out["pop_rsp"] == pytest.approx(5 / 19)
    assert out["serendipity"] == pytest.approx(1 / 9)
    per_user = C.per_user_beyond(TOPK, POP, users=np.array([7, 8, 9]), **kw)
    assert per_user["u"].tolist() == [7, 8, 9]
    assert per_user["arp"].tolist() == pytest.approx([20 / 3, 5, 19 / 3])
    for col in per_user.columns.drop("u"):
        assert out[col] == pytest.approx(per_user[col].mean()), col
    minimal = C.beyond_accuracy(TOPK, POP, n_users=N_USERS)
    assert set(minimal) == {
        "catalog_coverage",
        "distributional_coverage",
        "gini_index",
        "personalization",
        "arp",
        "aplt",
        "novelty",
    }


def test_padding_is_ignored() -> None:
    topk = np.array([[0, 1, -1], [2, -1, -1]])
    assert B.exposure_counts(topk, N_ITEMS).tolist() == [1, 1, 1, 0, 0, 0]
    # ARP over real items only: (10 + 6)/2 = 8 and 4 -> 6
    assert B.average_recommendation_popularity(topk, POP) == pytest.approx(6.0)
    per_user = C.per_user_beyond(topk, POP, n_users=N_USERS, item_categories=CATS)
    # one real item: no pair, ILD undefined
    assert per_user["ild_categories"].iloc[0] == pytest.approx(0.5)
    assert math.isnan(per_user["ild_categories"].iloc[1])


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="repeated"):
        B.catalog_coverage(np.array([[1, 1]]), N_ITEMS)
    with pytest.raises(ValueError, match="item indices"):
        B.catalog_coverage(np.array([[0, 6]]), N_ITEMS)
    with pytest.raises(ValueError, match="integer"):
        B.catalog_coverage(np.array([[0.0, 1.0]]), N_ITEMS)
    with pytest.raises(ValueError, match="history must have shape"):
        B.pop_rsp(TOPK, POP, HISTORY[:2])
    with pytest.raises(ValueError, match="item_categories"):
        B.intra_list_diversity_categories(TOPK, CATS[:, :, None])


# --------------------------------------------------------------------------- PyG cross-checks


def test_matches_torch_geometric() -> None:
    from torch_geometric.metrics import (
        LinkPredAveragePopularity,
        LinkPredCoverage,
        LinkPredDiversity,
        LinkPredPersonalization,
    )

    rng = np.random.default_rng(0)
    n_users, n_items, k = 300, 80, 10
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    pred = torch.from_numpy(topk)
    pop = rng.integers(0, 50, n_items)
    category = rng.integers(0, 5, n_items)

    cov = LinkPredCoverage(k, n_items)
    cov.update(pred, None)
    assert B.catalog_coverage(topk, n_items) == pytest.approx(float(cov.compute()), abs=1e-6)

    # PyG: one category per item, div = 1 - sum_{i != j} same_cat / (k (k - 1)); equals the mean
    # Jaccard distance of singleton category sets.
    div = LinkPredDiversity(k, torch.from_numpy(category))
    div.update(pred, None)
    assert B.intra_list_diversity_categories(topk, category) == pytest.approx(float(div.compute()), abs=1e-6)

    # PyG enumerates pairs of the first 4096 users; ours is exact via exposure counts.
    per = LinkPredPersonalization(k)
    per.update(pred, None)
    assert B.personalization(topk, n_items) == pytest.approx(float(per.compute()), abs=1e-6)

    arp = LinkPredAveragePopularity(k, torch.from_numpy(pop))
    arp.update(pred, None)
    assert B.average_recommendation_popularity(topk, pop) == pytest.approx(float(arp.compute()), abs=1e-5)


def test_ml100k_scale_is_fast() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items, k = 943, 1682, 10
    history = sp.random(n_users, n_items, density=0.05, random_state=2, format="csr")
    relevant = sp.random(n_users, n_items, density=0.006, random_state=3, format="csr")
    pop = np.asarray((history != 0).sum(axis=0)).ravel()
    topk = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    kw = dict(
        n_users=n_users,
        item_categories=(rng.random((n_items, 19)) < 0.1).astype(float),
        item_embeddings=rng.normal(size=(n_items, 384)),
        history=history,
        relevant=relevant,
    )
    C.beyond_accuracy(topk, pop, **kw)  # warm-up
    t = time.perf_counter()
    out = C.beyond_accuracy(topk, pop, **kw)
    C.per_user_beyond(topk, pop, **kw)
    elapsed = time.perf_counter() - t
    assert elapsed < 1.0, f"full audit took {elapsed:.3f}s"
    # uniformly random lists cover nearly the whole catalog and barely overlap
    assert out["catalog_coverage"] > 0.95 and out["personalization"] > 0.99
