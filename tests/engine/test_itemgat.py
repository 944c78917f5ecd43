"""ItemGAT: exact per-interaction decomposition, closed-form start, cold items placed by text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.data.graph import build_graph
from engine.data.schema import Dataset
from engine.data.split import split
from engine.models.ease import ease_weights
from engine.models.itemgat import ItemGAT

N_ITEMS, COLD = 30, (27, 28, 29)  # the last three items never occur: cold


@pytest.fixture(scope="module")
def graph_and_split():
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{i}", float(rng.integers(1, 6)), 100 * u + t)
        for u in range(40)
        for t, i in enumerate(rng.choice(N_ITEMS - len(COLD), size=12, replace=False))
    ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(
        {"item_id": [f"i{i}" for i in range(N_ITEMS)], "title": "t", "categories": [()] * N_ITEMS, "text": ""}
    )
    sp = split(Dataset("toy", inter, items, None, (1.0, 5.0)), threshold=None, seed=0)
    return build_graph(sp), sp


def make(graph, sp, seed: int = 0, **kw) -> ItemGAT:
    torch.manual_seed(seed)
    text = torch.randn(sp.n_items, 16, generator=torch.Generator().manual_seed(1))
    model = ItemGAT(sp.n_users, sp.n_items, embedding_dim=8, attention_dim=4, text_features=text, **kw)
    return model.fit_relation(graph, l2=5.0, folds=2)


def randomise(model: ItemGAT) -> None:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in (model.att_query.weight, model.item_bias, model.edge_theta, model.text_query.weight):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


@pytest.mark.parametrize("kw", [{}, {"neighbours": 5}, {"max_dense_items": 1}], ids=["ease", "top5", "gfcf"])
def test_contributions_sum_to_score(graph_and_split, kw):
    graph, sp = graph_and_split
    model = make(graph, sp, **kw)
    randomise(model)
    model.cache_embeddings(graph)
    scores = model.score(torch.arange(sp.n_users))
    rng = np.random.default_rng(0)
    for u, i in zip(rng.integers(0, sp.n_users, 25), rng.integers(0, sp.n_items, 25), strict=True):
        c = model.contributions(int(u), int(i))
        total = float(c["contribution"].sum()) + c["taste profile"] + c["popularity"]
        assert total == pytest.approx(float(scores[u, i]), rel=1e-6, abs=1e-5)
        assert c["score"] == pytest.approx(float(scores[u, i]), rel=1e-6, abs=1e-5)
        assert len(c["history"]) == len(c["contribution"]) == int((sp.train["u"] == u).sum())


def test_training_path_matches_scoring_path(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    randomise(model)
    model.cache_embeddings(graph)
    model.eval()  # eval: the full relation, not the out-of-fold training ones
    users = torch.arange(sp.n_users).repeat_interleave(sp.n_items)
    items = torch.arange(sp.n_items).repeat(sp.n_users)
    with torch.no_grad():
        p, q = model(graph)
        hist = model.history_scores(users, items)
        full = hist + (p[users] * q[items]).sum(-1) + model.item_bias[items]
    warm = model.warm[items]
    expected = model.score(torch.arange(sp.n_users)).reshape(-1)
    assert torch.allclose(full[warm], expected[warm], atol=1e-5)


def test_initial_history_term_is_the_closed_form_relation(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    model.cache_embeddings(graph)
    X = sp.matrix("train")
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    B = ease_weights(X[:, active].tocsc(), 5.0)
    expected = torch.from_numpy(X[:, active].toarray()) @ B
    hist = torch.zeros(sp.n_users, len(active))
    for u in range(sp.n_users):
        for i_pos, i in enumerate(active):
            hist[u, i_pos] = model.contributions(u, int(i))["contribution"].sum()
    # a(j, i) = exp(c) for every pair at the start: the relation's scores times one constant
    assert torch.allclose(hist, expected * float(torch.exp(model.att_bias)), atol=1e-4)
    # the learned residuals start small next to the history term
    s = model.score(torch.arange(sp.n_users))[:, torch.as_tensor(active)]
    assert (s - hist).abs().mean() < 0.1 * hist.abs().mean()


def test_cold_items_scored_from_text(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    model.cache_embeddings(graph)
    cold = [sp.idmap.item_index(f"i{i}") for i in COLD]
    assert not model.warm[cold].any()
    s = model.score(torch.arange(sp.n_users))[:, cold]
    assert torch.isfinite(s).all()
    assert s.std() > 0 and not torch.allclose(s[:, 0], s[:, 1])


def test_loss_backpropagates_to_attention(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    model.train()
    u, i = model(graph)
    users = torch.as_tensor(sp.train["u"].to_numpy()[:32])
    pos = torch.as_tensor(sp.train["i"].to_numpy()[:32])
    neg = torch.randint(0, sp.n_items, (32,))
    model.loss(u, i, users, pos, neg).backward()
    assert model.att_query.weight.grad.abs().sum() > 0
    assert model.user_embedding.weight.grad.abs().sum() > 0


def test_repr_and_bad_arguments():
    assert "neighbours=5" in repr(ItemGAT(3, 6, neighbours=5))
    with pytest.raises(ValueError, match="relation"):
        ItemGAT(3, 6, relation="svd")
