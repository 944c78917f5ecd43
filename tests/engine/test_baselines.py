"""Baseline recommenders: hand-computed values on tiny matrices and graphs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from engine.data.graph import build_graph
from engine.data.idmap import IdMap
from engine.data.schema import TIMESTAMP
from engine.data.split import W_RATING, W_RECENCY, I, SplitData, U
from engine.models import itemknn as itemknn_module
from engine.models.base import FittedModel
from engine.models.ease import EASE
from engine.models.itemknn import ItemKNN, topk_cosine
from engine.models.lightgcn import LightGCN
from engine.models.mf import BPRMF
from engine.models.pop import MostPop


def make_split(X: np.ndarray) -> SplitData:
    """A SplitData whose training matrix is the binary ``X`` (empty valid / test)."""
    n_users, n_items = X.shape
    u, i = np.nonzero(X)
    train = pd.DataFrame(
        {
            U: u.astype(np.int64),
            I: i.astype(np.int64),
            W_RATING: np.float32(1.0),
            W_RECENCY: np.float32(1.0),
            TIMESTAMP: np.zeros(len(u), dtype=np.int64),
        }
    )
    empty = train.iloc[:0].copy()
    idmap = IdMap.build([f"u{k}" for k in range(n_users)], [f"i{k}" for k in range(n_items)])
    return SplitData(idmap, train, empty, empty.copy())


ALL_USERS = torch.arange(4)

# The ItemKNN hand example. Item user sets: i0={u0,u1,u2}, i1={u1,u3}, i2={u0},
# i3={u0,u3}, i4={u1,u2,u3}; norms sqrt(3), sqrt(2), 1, sqrt(2), sqrt(3).
KNN_X = np.array(
    [
        [1, 0, 1, 1, 0],
        [1, 1, 0, 0, 1],
        [1, 0, 0, 0, 1],
        [0, 1, 0, 1, 1],
    ],
    dtype=np.float32,
)
R2, R3, R6 = math.sqrt(2), math.sqrt(3), math.sqrt(6)
# cos(i, j) = |U_i ∩ U_j| / (|U_i|^.5 |U_j|^.5):
KNN_SIM = np.array(
    [
        [0, 1 / R6, 1 / R3, 1 / R6, 2 / 3],  # i0: i1 {u1}, i2 {u0}, i3 {u0}, i4 {u1,u2}
        [1 / R6, 0, 0, 1 / 2, 2 / R6],  # i1: i3 {u3}, i4 {u1,u3}
        [1 / R3, 0, 0, 1 / R2, 0],  # i2: i3 {u0}
        [1 / R6, 1 / 2, 1 / R2, 0, 1 / R6],  # i3: i4 {u3}
        [2 / 3, 2 / R6, 0, 1 / R6, 0],
    ]
)


# -- MostPop ---------------------------------------------------------------------------------


def test_mostpop_scores_are_training_counts_and_rank_by_popularity() -> None:
    X = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32)  # counts 3, 1, 2, 0
    model = MostPop().fit(make_split(X))
    scores = model.score(torch.tensor([0, 2]))
    assert scores.dtype == torch.float32 and scores.shape == (2, 4)
    assert scores[0].tolist() == [3.0, 1.0, 2.0, 0.0] == scores[1].tolist()
    assert torch.argsort(scores[0], descending=True).tolist() == [0, 2, 1, 3]
    scores[0, 0] = -1.0  # a real copy: masking one row must not leak into the model
    assert model.score(torch.tensor([1]))[0, 0].item() == 3.0
    assert isinstance(model, FittedModel) and repr(model) == "MostPop()"


def test_score_before_fit_raises() -> None:
    for model in (MostPop(), ItemKNN(), EASE()):
        with pytest.raises(RuntimeError, match="fit"):
            model.score(torch.tensor([0]))


# -- ItemKNN ---------------------------------------------------------------------------------


def test_itemknn_full_neighbourhood_is_sum_of_cosines() -> None:
    model = ItemKNN(k=100).fit(make_split(KNN_X))
    np.testing.assert_allclose(model.similarity.toarray(), KNN_SIM, rtol=1e-6)
    scores = model.score(ALL_USERS).numpy()
    # u0 holds i0, i2, i3: the sum of those similarity rows.
    expected_u0 = [1 / R3 + 1 / R6, 1 / R6 + 1 / 2, 1 / R3 + 1 / R2, 1 / R6 + 1 / R2, 2 / 3 + 1 / R6]
    np.testing.assert_allclose(scores[0], expected_u0, rtol=1e-6)
    np.testing.assert_allclose(scores, KNN_X @ KNN_SIM, rtol=1e-6)


def test_itemknn_keeps_top_k_neighbours_per_target_item() -> None:
    model = ItemKNN(k=1).fit(make_split(KNN_X))
    # Best neighbour of each target j: j0<-i4 (2/3), j1<-i4 (2/sqrt6), j2<-i3 (1/sqrt2),
    # j3<-i2 (1/sqrt2), j4<-i1 (2/sqrt6).
    W = model.similarity.toarray()
    expected = np.zeros((5, 5))
    for j, i in {0: 4, 1: 4, 2: 3, 3: 2, 4: 1}.items():
        expected[i, j] = KNN_SIM[i, j]
    np.testing.assert_allclose(W, expected, rtol=1e-6)
    scores = model.score(torch.tensor([0, 2])).numpy()
    np.testing.assert_allclose(scores[0], [0, 0, 1 / R2, 1 / R2, 0], rtol=1e-6)  # u0 has i2, i3
    np.testing.assert_allclose(scores[1], [2 / 3, 2 / R6, 0, 0, 0], rtol=1e-6)  # u2 has i0, i4


def test_itemknn_shrink_damps_the_denominator() -> None:
    W = ItemKNN(k=100, shrink=1.0).fit(make_split(KNN_X)).similarity.toarray()
    assert W[0, 4] == pytest.approx(2 / (3 + 1))  # 2 co-users / (sqrt3 * sqrt3 + 1)
    assert W[1, 3] == pytest.approx(1 / (2 + 1))


def test_itemknn_blocks_match_dense_topk(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    X = sp.random(30, 23, density=0.3, random_state=rng, format="csr")
    X.data[:] = 1.0
    monkeypatch.setattr(itemknn_module, "_BLOCK_CELLS", 23 * 4)  # 4 rows per block, 6 blocks
    W = topk_cosine(X, k=3).toarray()
    dense = X.toarray()
    norms = np.sqrt(dense.sum(0))
    S = dense.T @ dense / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(S, 0)
    assert (W > 0).sum(axis=0).max() <= 3
    for j in range(23):
        kth = np.sort(S[:, j])[-3]
        kept = W[:, j] > 0
        np.testing.assert_allclose(W[kept, j], S[kept, j], rtol=1e-5)
        assert (S[kept, j] >= kth - 1e-6).all()  # only top-3 values (ties may go either way)
        assert kept.sum() == min(3, (S[:, j] > 0).sum())


def test_itemknn_ties_go_to_the_smaller_item_and_sparse_catalogs_stay_fast() -> None:
    # one user with five items: every item's cosine to each other is 1, a five-way tie
    X = sp.csr_matrix(np.ones((1, 5), dtype=np.float32))
    W = topk_cosine(X, k=2).toarray()
    expected_sources = {0: [1, 2], 1: [0, 2], 2: [0, 1], 3: [0, 1], 4: [0, 1]}
    assert {j: np.flatnonzero(W[:, j]).tolist() for j in range(5)} == expected_sources
    # a long-tail catalog of 60,000 items whose rows are nearly all zero (a dense argpartition
    # over them took minutes): only co-occurring items are kept
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 2000, 20000), rng.integers(0, 60000, 20000)
    X = sp.csr_matrix((np.ones(20000, np.float32), (users, items)), shape=(2000, 60000))
    X.data[:] = 1.0
    W = topk_cosine(X, k=5)
    co = (X.T @ X).tocsc()
    co.setdiag(0)
    co.eliminate_zeros()
    kept = W.tocoo()
    assert (np.asarray(co[kept.row, kept.col]).ravel() > 0).all()  # never a pair that does not co-occur
    assert np.array_equal(np.diff(W.tocsc().indptr), np.minimum(np.diff(co.indptr), 5))


def test_itemknn_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="got 0"):
        ItemKNN(k=0)
    with pytest.raises(ValueError, match=r"got -1\.0"):
        ItemKNN(shrink=-1.0)
    assert repr(ItemKNN(k=5, shrink=2.0)) == "ItemKNN(k=5, shrink=2.0)"


# -- EASE ------------------------------------------------------------------------------------


def test_ease_two_item_closed_form_by_hand() -> None:
    # G = X^T X + I = [[3, 1], [1, 3]], P = [[3, -1], [-1, 3]] / 8, B_01 = -P_01 / P_11 = 1/3.
    X = np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float32)
    model = EASE(l2=1.0, dtype="float64").fit(make_split(X))
    np.testing.assert_allclose(model.weights.numpy(), [[0, 1 / 3], [1 / 3, 0]], rtol=1e-6)
    np.testing.assert_allclose(model.score(torch.tensor([0, 1])).numpy(), [[1 / 3, 1 / 3], [0, 1 / 3]], rtol=1e-6)


def test_ease_refuses_an_inverse_that_cannot_fit_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.models import ease as ease_module

    # 2 matrices of 50,000^2 float32 = 18.6 GiB; float64 doubles it
    with pytest.raises(MemoryError, match=r"50,000 active items needs about 18\.6 GiB and 8\.0 GiB is available"):
        ease_module.check_inverse_fits(50_000, available=8 << 30)
    with pytest.raises(MemoryError, match=r"37\.3 GiB"):
        ease_module.check_inverse_fits(50_000, torch.float64, available=32 << 30)
    ease_module.check_inverse_fits(50_000, available=20 << 30)  # fits
    # the fit checks before it builds anything: 3 items need 72 bytes, 64 are available
    monkeypatch.setattr(ease_module, "_available_bytes", lambda: 64)
    monkeypatch.setattr(ease_module, "ease_weights", lambda *a, **k: pytest.fail("the inverse was attempted"))
    X = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
    with pytest.raises(MemoryError, match="use itemknn, or gat"):
        EASE(l2=1.0).fit(make_split(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ease_matches_numpy_inverse_and_zero_scores_cold_items(dtype: str) -> None:
    rng = np.random.default_rng(3)
    X = (rng.random((12, 7)) < 0.4).astype(np.float64)
    X[:, 5] = 0.0  # a cold item: no training interaction
    X[0, :] = [1, 1, 0, 1, 0, 0, 1]
    l2 = 0.5
    # Steck (2019), Algorithm 1, on the full catalog with numpy.
    G = X.T @ X + l2 * np.eye(7)
    P = np.linalg.inv(G)
    B = P / (-np.diag(P))
    np.fill_diagonal(B, 0.0)
    model = EASE(l2=l2, dtype=dtype).fit(make_split(X.astype(np.float32)))
    assert model.active.tolist() == [0, 1, 2, 3, 4, 6]
    assert torch.all(model.weights.diagonal() == 0)
    np.testing.assert_allclose(model.weights.numpy(), np.delete(np.delete(B, 5, 0), 5, 1), atol=1e-5)
    scores = model.score(torch.arange(12))
    assert scores.shape == (12, 7) and scores.dtype == torch.float32
    np.testing.assert_allclose(scores.numpy(), X @ B, atol=1e-5)
    assert torch.all(scores[:, 5] == 0)


def test_ease_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"got 0\.0"):
        EASE(l2=0.0)
    with pytest.raises(ValueError, match="got 'float16'"):
        EASE(dtype="float16")
    assert repr(EASE()) == "EASE(l2=500.0, dtype='float32')"


# -- BPR-MF and LightGCN ---------------------------------------------------------------------

# 2 users, 3 items: u0-i0, u0-i1, u1-i1, u1-i2; one category "c" on i1.
TINY_X = np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32)


def tiny_graph() -> Data:
    return build_graph(make_split(TINY_X), item_categories=[(), ("c",), ()], with_category_nodes=True)


def test_bprmf_forward_returns_the_tables() -> None:
    model = BPRMF(5, 7, embedding_dim=4)
    users, items = model(tiny_graph())
    assert users.shape == (5, 4) and items.shape == (7, 4)
    assert users is model.user_embedding.weight and items is model.item_embedding.weight
    ego = model.ego_embeddings(torch.tensor([1, 1]), torch.tensor([0, 6, 2]))
    assert [t.shape for t in ego] == [(2, 4), (3, 4)]
    torch.testing.assert_close(ego[1][1], model.item_embedding.weight[6])
    assert repr(model) == "BPRMF(5, 7, embedding_dim=4, init='xavier')"


def test_init_schemes() -> None:
    torch.manual_seed(0)
    xavier = BPRMF(1000, 1000, embedding_dim=64).item_embedding.weight
    bound = math.sqrt(6 / (1000 + 64))  # Xavier-uniform on a [1000, 64] table
    assert xavier.abs().max().item() <= bound and xavier.abs().max().item() > 0.9 * bound
    normal = LightGCN(1000, 1000, embedding_dim=64, init="normal").user_embedding.weight
    assert normal.std().item() == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="got 'he'"):
        BPRMF(2, 2, init="he")


def test_lightgcn_zero_layers_is_the_embedding_table() -> None:
    model = LightGCN(2, 3, embedding_dim=4, num_layers=0)
    users, items = model(tiny_graph())
    torch.testing.assert_close(users, model.user_embedding.weight)
    torch.testing.assert_close(items, model.item_embedding.weight)


def test_lightgcn_one_layer_matches_hand_propagation() -> None:
    graph = tiny_graph()
    assert graph.num_nodes == 6  # the category node and its edges are present, and must be ignored
    model = LightGCN(2, 3, embedding_dim=1, num_layers=1)
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.tensor([[1.0], [2.0]]))
        model.item_embedding.weight.copy_(torch.tensor([[3.0], [4.0], [5.0]]))
    users, items = model(graph)
    # Degrees: u0 2, u1 2, i0 1, i1 2, i2 1; edge weight 1/sqrt(d_s d_t).
    layer1_users = [3 / R2 + 4 / 2, 4 / 2 + 5 / R2]  # u0 <- i0, i1; u1 <- i1, i2
    layer1_items = [1 / R2, 1 / 2 + 2 / 2, 2 / R2]  # i0 <- u0; i1 <- u0, u1; i2 <- u1
    expected_users = [(1 + layer1_users[0]) / 2, (2 + layer1_users[1]) / 2]
    expected_items = [(3 + layer1_items[0]) / 2, (4 + layer1_items[1]) / 2, (5 + layer1_items[2]) / 2]
    np.testing.assert_allclose(users.detach().squeeze(1).numpy(), expected_users, rtol=1e-6)
    np.testing.assert_allclose(items.detach().squeeze(1).numpy(), expected_items, rtol=1e-6)
    assert repr(model) == "LightGCN(2, 3, embedding_dim=1, num_layers=1, init='xavier')"


def test_lightgcn_caches_adjacency_per_graph_and_checks_sizes() -> None:
    model = LightGCN(2, 3, embedding_dim=4, num_layers=2)
    graph = tiny_graph()
    adj = model.normalised_adjacency(graph)
    assert model.normalised_adjacency(graph) is adj
    assert adj.shape == (5, 5) and adj._nnz() == 8  # 4 user-item pairs, both directions
    other = tiny_graph()
    assert model.normalised_adjacency(other) is not adj
    with pytest.raises(ValueError, match="n_users"):
        LightGCN(3, 3, embedding_dim=4).normalised_adjacency(graph)


def test_lightgcn_without_edge_type_uses_user_item_nodes_only() -> None:
    graph = tiny_graph()
    plain = Data(edge_index=graph.edge_index, num_nodes=graph.num_nodes, n_users=2, n_items=3)
    model = LightGCN(2, 3, embedding_dim=3, num_layers=2)
    for a, b in zip(model(graph), model(plain), strict=True):
        torch.testing.assert_close(a, b)


def planted_split() -> tuple[SplitData, list[int]]:
    """Two 4x4 blocks of users x items; each user's diagonal item is held out of training."""
    X = np.zeros((8, 8), dtype=np.float32)
    X[:4, :4] = 1
    X[4:, 4:] = 1
    held_out = list(range(8))
    X[np.arange(8), held_out] = 0
    return make_split(X), held_out


@pytest.mark.parametrize("model_cls", [BPRMF, LightGCN])
def test_bpr_training_learns_the_planted_blocks(model_cls: type) -> None:
    torch.manual_seed(0)
    split, held_out = planted_split()
    graph = build_graph(split)
    model = model_cls(8, 8, embedding_dim=8)
    users = torch.as_tensor(split.train[U].to_numpy())
    pos = torch.as_tensor(split.train[I].to_numpy())
    neg = (pos + 4) % 8  # an item of the other block: never a positive
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        user_emb, item_emb = model(graph)
        loss = model.loss(user_emb, item_emb, users, pos, neg, weight_decay=1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.cache_embeddings(graph)
    scores = model.score(torch.arange(8))
    for u, item in enumerate(held_out):
        other_block = [j for j in range(8) if (j < 4) != (u < 4)]
        assert scores[u, item] > scores[u, other_block].max()
