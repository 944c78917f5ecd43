"""ItemGAT: exact per-interaction decomposition, closed-form start, cold items by text, staged fit, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.config import TrainConfig
from engine.data.graph import build_graph
from engine.data.schema import Dataset
from engine.data.split import split
from engine.evaluation.validation import default_valid_fn
from engine.models.ease import ease_weights
from engine.models.itemgat import ItemGAT
from engine.training.callbacks import Callback
from engine.training.staged import fit_staged
from engine.training.trainer import ValidScore

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


def make(graph, sp, seed: int = 0, lowpass: int = 0, **kw) -> ItemGAT:
    """A model with its relation fitted (and a rank-``lowpass`` low-pass part, weight 0 until set)."""
    torch.manual_seed(seed)
    text = torch.randn(sp.n_items, 16, generator=torch.Generator().manual_seed(1))
    model = ItemGAT(sp.n_users, sp.n_items, embedding_dim=8, attention_dim=4, text_features=text, **kw)
    model.fit_relation(graph, l2=5.0)
    return model.fit_lowpass(graph, lowpass) if lowpass else model


def randomise(model: ItemGAT) -> None:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in (
            model.att_query.weight,
            model.item_bias,
            model.edge_theta,
            model.text_query.weight,
            model.text_taste.weight,
        ):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        model.taste_scale.fill_(0.7)
        model.lowpass_scale.fill_(0.4)  # no effect without a low-pass part (rank 0)


PATHS = [
    {},
    {"sources": 5},
    {"sources": 5, "max_dense_items": 1},
    {"relation": "gfcf"},
    {"lowpass": 4},
    {"sources": 5, "lowpass": 4},
]
IDS = ["ease-dense", "ease-top5", "ease-top5-large", "gfcf", "ease-dense-lowpass", "ease-top5-lowpass"]


def built(kw: dict) -> dict:
    """The constructor's part of a path (its ``lowpass`` is fitted after construction)."""
    return {k: v for k, v in kw.items() if k != "lowpass"}


@pytest.mark.parametrize("kw", PATHS, ids=IDS)
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
        assert total == pytest.approx(float(scores[u, i]), rel=1e-5, abs=1e-5)
        assert c["score"] == pytest.approx(float(scores[u, i]), rel=1e-6, abs=1e-5)
        assert c["taste scale"] == pytest.approx(0.7)
        assert len(c["history"]) == len(c["contribution"]) == int((sp.train["u"] == u).sum())
    many = model.contributions_many(3, torch.arange(sp.n_items))
    total = many["contribution"].sum(1) + many["taste profile"] + many["popularity"]
    assert torch.allclose(total, scores[3], atol=1e-5)


@pytest.mark.parametrize("kw", PATHS, ids=IDS)
def test_training_path_matches_scoring_path(graph_and_split, kw):
    graph, sp = graph_and_split
    model = make(graph, sp, **kw)
    randomise(model)
    model.cache_embeddings(graph)
    model.eval()  # eval: the full relation, not the out-of-fold training ones
    users = torch.arange(sp.n_users).repeat_interleave(sp.n_items)
    items = torch.arange(sp.n_items).repeat(sp.n_users)
    with torch.no_grad():
        p, q = model(graph)
        hist = model.history_scores(users, items)
        full = hist + model.taste_scale * (p[users] * q[items]).sum(-1) + model.item_bias[items]
    warm = model.warm[items]
    expected = model.score(torch.arange(sp.n_users)).reshape(-1)
    assert torch.allclose(full[warm], expected[warm], atol=1e-5)


def test_initial_history_term_is_the_closed_form_relation(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    model.cache_embeddings(graph)
    X = sp.matrix("train")
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    expected = torch.from_numpy(X[:, active].toarray()) @ ease_weights(X[:, active].tocsc(), 5.0)
    # a(j, i) = 1, w = 1, gamma = 0, b = 0 at the start: the score is EASE's
    s = model.score(torch.arange(sp.n_users))[:, torch.as_tensor(active)]
    assert torch.allclose(s, expected, atol=1e-5)


def test_cold_items_scored_from_text(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    randomise(model)
    model.cache_embeddings(graph)
    cold = [sp.idmap.item_index(f"i{i}") for i in COLD]
    assert not model.warm[cold].any()
    s = model.score(torch.arange(sp.n_users))[:, cold]
    assert torch.isfinite(s).all()
    assert s.std() > 0 and not torch.allclose(s[:, 0], s[:, 1])


@pytest.mark.parametrize("kw", PATHS, ids=IDS)
def test_finetune_loss_backpropagates_to_attention_only(graph_and_split, kw):
    graph, sp = graph_and_split
    model = make(graph, sp, **kw)
    model.prepare_finetune(graph, folds=2)
    model.train()
    u, i = model(graph)
    users = torch.as_tensor(sp.train["u"].to_numpy()[:32])
    pos = torch.as_tensor(sp.train["i"].to_numpy()[:32])
    neg = torch.randint(0, sp.n_items, (32,))
    model.loss(u, i, users, pos, neg).backward()
    assert model.att_bias.grad is not None and model.att_bias.grad.abs() > 0
    assert model.user_embedding.weight.grad is None  # frozen in this stage
    trained = {id(p) for g in model.param_groups(1e-3) for p in g["params"]}
    assert id(model.user_embedding.weight) not in trained and id(model.edge_theta) in trained


@pytest.mark.parametrize("kw", PATHS, ids=IDS)
def test_save_load_scores_equal(graph_and_split, kw, tmp_path):
    graph, sp = graph_and_split
    model = make(graph, sp, **kw)
    randomise(model)
    model.cache_embeddings(graph)
    emb = model.cached_embeddings()
    torch.save({"model": model.state_dict(), "embeddings": emb}, tmp_path / "m.pt")
    stored = torch.load(tmp_path / "m.pt", weights_only=True)
    text = model.text.clone()
    fresh = ItemGAT(sp.n_users, sp.n_items, embedding_dim=8, attention_dim=4, text_features=text, **built(kw))
    fresh.load_state_dict(stored["model"])  # as engine.pipeline.recommender_from_artifact does
    fresh.set_cached_embeddings(stored["embeddings"]["users"], stored["embeddings"]["items"])
    users = torch.arange(sp.n_users)
    assert torch.equal(fresh.score(users), model.score(users))
    assert fresh.contributions(2, 5)["contribution"].tolist() == model.contributions(2, 5)["contribution"].tolist()


class Recorder(Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        assert logs["epoch"] == epoch
        self.epochs.append(epoch)


def test_staged_fit_picks_the_validation_best_gamma(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    valid = default_valid_fn(sp, graph)
    grid = (0.0, 0.5, 1.0, 3.0)
    cfg = TrainConfig(epochs=3, patience=2, batch_size=128, seed=0)
    seen = Recorder()
    result = fit_staged(
        model, graph, sp, cfg, valid_fn=valid, l2_grid=(1.0, 5.0), gamma_grid=grid, finetune_epochs=2, callbacks=[seen]
    )
    # One epoch count over both BPR stages: a pruner never hears of the same step twice.
    taste = model.fit_report["taste"]["epochs"]
    assert seen.epochs == list(range(1, result.epochs + 1)) and len(seen.epochs) > taste
    assert [c["stage"] for c in result.curve] == ["taste"] * taste + ["attention"] * (result.epochs - taste)
    rep = model.fit_report
    assert rep["relation"]["l2"] == max(rep["relation"]["valid"], key=rep["relation"]["valid"].get)
    g_valid = rep["gamma"]["valid"]
    assert 0.0 in g_valid and set(g_valid) <= set(grid)
    assert g_valid[rep["gamma"]["weight"]] == max(g_valid.values())
    relation_only = rep["relation"]["valid"][rep["relation"]["l2"]]
    assert result.best_valid >= relation_only  # never below the relation alone
    assert float(model.taste_scale) == pytest.approx(rep["gamma"]["weight"] * rep["gamma"]["unit"])
    assert result.best_valid == pytest.approx(valid(model))  # the final model validates at what is reported
    assert result.best_valid >= rep["finetune"]["epoch0"]  # fine-tuning never ends below stage 3


def test_repr_and_bad_arguments():
    assert "neighbours=5" in repr(ItemGAT(3, 6, neighbours=5))
    with pytest.raises(ValueError, match="relation"):
        ItemGAT(3, 6, relation="svd")


def test_pipeline_trains_stores_and_reloads_the_same_scores(tmp_path):
    from engine.config import RunConfig
    from engine.data.synthetic import generate_demo_world
    from engine.pipeline import load_latest, train_or_load

    ds = generate_demo_world(seed=0, n_users=80, n_items=60).dataset
    cfg = RunConfig().with_overrides(
        model={"name": "gat", "embedding_dim": 8},
        train={"device": "cpu", "epochs": 3, "patience": 2},
        features={"text": False},
    )
    rec = train_or_load(cfg, dataset=ds, cache_dir=tmp_path)  # through the registry's staged fit
    assert rec.model.fit_report["gamma"]["weight"] in rec.model.fit_report["gamma"]["valid"]
    again = load_latest(cfg, dataset=ds, cache_dir=tmp_path)  # load_state_dict + set_cached_embeddings
    users = torch.arange(rec.model.n_users)
    assert torch.equal(again.model.score(users), rec.model.score(users))
    assert float(again.model.taste_scale) == float(rec.model.taste_scale)
    # the model card records the fit's choices, and the stored model is in the form it names
    assert again.meta["training"]["choices"]["relation"]["sources"] == int(again.model.relation_sources)


def test_climb_finds_the_grid_best_of_a_unimodal_curve():
    from engine.training.staged import climb

    grid = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
    for peak in grid:
        seen = climb(grid, lambda x, p=peak: -abs(np.log(x / p)), start=2)
        assert max(seen, key=seen.get) == peak and len(seen) <= 5
    assert list(climb([0.0, 1.0, 2.0], lambda x: -x)) == [0.0, 1.0]


def test_taste_weight_finds_a_taste_led_mix_beyond_a_dip_and_costs_one_score_otherwise():
    from types import SimpleNamespace

    from engine.training.staged import GAMMA_GRID, _choose_gamma

    grid = sorted(GAMMA_GRID)

    def choose(curve):  # curve: weight -> validation; returns (weight chosen, weights scored)
        model = SimpleNamespace(n_users=10, taste_unit=lambda users: 2.0, taste_scale=torch.zeros(()))
        scored = []

        def valid_fn(m):
            scored.append(float(m.taste_scale) / 2.0)
            return curve(scored[-1])

        weight, unit, score, _ = _choose_gamma(model, valid_fn, grid, curve(0.0), seed=0)
        assert unit == 2.0 and float(model.taste_scale) == weight * unit and score == curve(weight)
        return weight, scored

    # a relation that the taste term beats alone: a dip at small weights, then a rise
    weight, scored = choose(lambda g: 0.075 - 0.001 * g if g < 1 else 0.070 + 0.002 * g)
    assert weight == max(grid) and len(scored) == len(set(scored))  # never one weight twice
    # the usual single peak (1.0): the climb from 0 finds it, plus one score at the grid's top
    weight, scored = choose(lambda g: -abs(g - 1.0))
    assert weight == 1.0 and scored == pytest.approx([0.1, 0.25, 0.5, 0.75, 1.0, 1.5, max(grid)])


def test_refitted_relation_keeps_k_sources_and_all_of_them_is_ease(graph_and_split):
    from engine.models.relation import ease_refit, nearest_sources, train_matrix

    def ease_top_k(Xa, k: int, l2: float):  # the refit relation_buffers builds: sources, then weights
        nb = nearest_sources(Xa, k)
        return nb.index, ease_refit(nb, l2)

    graph, _ = graph_and_split
    X = train_matrix(graph)
    Xa = X[:, np.flatnonzero(X.getnnz(axis=0) > 0)].tocsc()
    n = Xa.shape[1]
    # every other item as a source: EASE's column i is the ridge regression of X_i on the others
    idx, val = ease_top_k(Xa, n - 1, 7.0)
    B = ease_weights(Xa, 7.0, dtype=torch.float64)
    dense = torch.zeros(n, n)
    dense[idx, torch.arange(n)[:, None]] = val
    assert torch.allclose(dense, B, atol=1e-5)
    # k sources: the k largest co-occurrence cosines, never the item itself
    idx, val = ease_top_k(Xa, 4, 7.0)
    G = (Xa.T @ Xa).toarray().astype(np.float64)
    cos = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    np.fill_diagonal(cos, -1.0)
    for i in range(n):
        assert i not in idx[i].tolist() and idx[i].tolist() == sorted(idx[i].tolist())
        assert cos[idx[i].numpy(), i].min() >= np.sort(cos[:, i])[-4] - 1e-9
    with pytest.raises(ValueError, match="k must be"):
        ease_top_k(Xa, n, 7.0)


def test_refitted_relation_rests_each_item_on_k_sources(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp, sources=5)
    assert not model.dense and model.nbr_index.shape[1] == 5 and int(model.relation_sources) == 5
    model.cache_embeddings(graph)
    for user in range(5):
        terms = model.contributions(user, 3)
        assert int((terms["contribution"] != 0).sum()) <= 5
    # refitting without sources keeps the form; sources=0 gives the dense relation back
    assert not model.fit_relation(graph, l2=5.0).dense
    assert model.fit_relation(graph, l2=5.0, sources=0).dense
    with pytest.raises(ValueError, match="sources"):
        ItemGAT(3, 6, sources=-1)


def test_a_large_catalog_refits_from_the_sparse_cooccurrence_exactly(graph_and_split):
    from engine.models.relation import ease_refit, nearest_sources, relation_buffers, train_matrix

    graph, _ = graph_and_split
    X = train_matrix(graph)
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    Xa = X[:, active].tocsc()
    small, large = nearest_sources(Xa, 6), nearest_sources(Xa, 6, dense_gram=False)
    assert small.gram is not None and large.gram is None and large.matrix is not None
    assert torch.equal(small.index, large.index)
    # the systems built block by block from the interactions are the dense G's, to float round-off
    assert torch.allclose(ease_refit(large, 3.0), ease_refit(small, 3.0), atol=1e-6)
    # a form's prefix of a wider ranked search: the k largest co-occurrence cosines, never the item
    G = (Xa.T @ Xa).toarray().astype(np.float64)
    cos = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    np.fill_diagonal(cos, -1.0)
    for k in (1, 3, 6):
        idx = large.take(k).index
        for i in range(Xa.shape[1]):
            assert i not in idx[i].tolist() and idx[i].tolist() == sorted(idx[i].tolist())
            assert cos[idx[i].numpy(), i].min() >= np.sort(cos[:, i])[-k] - 1e-9
    with pytest.raises(ValueError, match="can take"):
        large.take(7)
    # no dense relation where no A x A matrix may be built
    with pytest.raises(ValueError, match="too many for a dense relation"):
        relation_buffers(X, active, n_items=X.shape[1], dense=True, l2=3.0, neighbours=5, dense_gram=False)


def test_above_max_dense_items_the_model_keeps_a_refitted_form(graph_and_split):
    from dataclasses import replace

    from engine.models.relation import ease_refit, nearest_sources, train_matrix

    graph, sp = graph_and_split
    n_active = int(sp.item_counts().astype(bool).sum())
    big = make(graph, sp, max_dense_items=10)  # sources 0 asked: no dense form there
    assert not big.dense and int(big.relation_sources) == min(128, n_active - 2)
    # the weights are the dense-G refit's on the same sources
    X = train_matrix(graph)
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    at = torch.as_tensor(active)
    nb = nearest_sources(X[:, active].tocsc(), int(big.relation_sources))
    local = torch.searchsorted(at, big.nbr_index[at])
    assert torch.allclose(big.nbr_value[at], ease_refit(replace(nb, index=local), 5.0), atol=1e-5)
    # a form's sources are the same in a ridge search (one ranked search, its prefixes) and alone
    alone = {k: make(graph, sp, max_dense_items=10, sources=k) for k in (3, 8)}
    with big.reusing_neighbourhoods():
        for k in (3, 8):
            big.fit_relation(graph, l2=5.0, sources=k)
            assert torch.equal(big.nbr_index, alone[k].nbr_index)
            assert torch.equal(big.nbr_value, alone[k].nbr_value)
        assert len(big._reuse) == 1


def test_staged_fit_leaves_out_the_dense_form_above_max_dense_items(graph_and_split):
    graph, sp = graph_and_split
    torch.manual_seed(0)
    model = ItemGAT(sp.n_users, sp.n_items, embedding_dim=8, attention_dim=4, max_dense_items=10)
    cfg = TrainConfig(epochs=2, patience=2, batch_size=256, seed=0)
    fit_staged(model, graph, sp, cfg, valid_fn=default_valid_fn(sp, graph), sources_grid=(0, 8, 4), l2_grid=(1.0, 5.0))
    report = model.fit_report["relation"]
    assert set(report["sources_valid"]) == {8, 4} and report["sources"] in (8, 4) and not report["dense"]
    only_dense = ItemGAT(sp.n_users, sp.n_items, embedding_dim=8, attention_dim=4, max_dense_items=10)
    fit_staged(only_dense, graph, sp, cfg, valid_fn=default_valid_fn(sp, graph), sources=0, l2_grid=(5.0,))
    assert only_dense.fit_report["relation"]["sources"] == min(128, int(sp.item_counts().astype(bool).sum()) - 2)


def test_a_ridge_search_finds_each_forms_sources_once(graph_and_split, monkeypatch):
    import engine.models.relation as relation_module

    graph, sp = graph_and_split
    plain = [make(graph, sp, sources=5).fit_relation(graph, l2=lam) for lam in (2.0, 9.0)]
    model = make(graph, sp, sources=5)  # fitted outside the context: relation_buffers finds its own sources
    calls = []
    real = relation_module.nearest_sources
    monkeypatch.setattr(relation_module, "nearest_sources", lambda *a, **kw: calls.append(a[1]) or real(*a, **kw))
    with model.reusing_neighbourhoods():
        for lam, ref in zip((2.0, 9.0), plain, strict=True):
            model.fit_relation(graph, l2=lam)
            assert torch.equal(model.nbr_index, ref.nbr_index) and torch.equal(model.nbr_value, ref.nbr_value)
        assert calls == [5]  # once for both ridges
        model.fit_relation(graph, l2=2.0, sources=3)
        assert calls == [5, 3] and model._reuse is not None and len(model._reuse) == 1
        model.fit_relation(graph, l2=2.0, sources=0)  # a dense fit drops the kept A x A matrix
        assert model._reuse == {}
    assert model._reuse is None


def _score(values) -> ValidScore:
    """A validation mean with its per-user sample, as the staged fit's validation returns it."""
    values = np.asarray(values, dtype=float)
    return ValidScore(float(values.mean()), values)


def test_one_standard_error_takes_the_sparsest_form_within_the_error_bar():
    from engine.training.staged import one_standard_error

    rng = np.random.default_rng(0)
    best = rng.uniform(0, 1, 400)
    noise = rng.normal(0, 0.1, 400)
    judged = {
        0: _score(best),  # all sources: the best mean
        64: _score(best + noise - 0.002),  # 0.002 below, error bar 0.005: within
        16: _score(best + noise - 0.05),  # 0.05 below: outside
    }
    assert one_standard_error(judged) == 64
    judged[16] = _score(best + noise - 0.003)
    assert one_standard_error(judged) == 16
    # a form equal to the best user by user has a zero error bar: only exact ties pass
    assert one_standard_error({0: _score(best), 32: _score(best - 1e-6)}) == 0
    # plain floats (no per-user sample): the best, ties to the sparser form
    assert one_standard_error({0: 0.30, 64: 0.31, 16: 0.31}) == 16
    assert one_standard_error({0: 0.32, 64: 0.31}) == 0


def test_staged_fit_chooses_the_sources_on_validation(graph_and_split):
    graph, sp = graph_and_split
    model = make(graph, sp)
    valid = default_valid_fn(sp, graph)
    cfg = TrainConfig(epochs=2, patience=1, batch_size=128, seed=0)
    fit_staged(model, graph, sp, cfg, valid_fn=valid, l2_grid=(1.0, 5.0), gamma_grid=(0.0, 1.0), sources_grid=(0, 8, 4))
    rep = model.fit_report["relation"]
    assert set(rep["sources_valid"]) == {0, 8, 4} and rep["sources"] == int(model.relation_sources)
    assert model.dense == (rep["sources"] == 0)
    # the sparsest form within its error bar of the best (every sparser one falls outside its own)
    forms, bars = rep["sources_valid"], rep["sources_error_bar"]
    top = max(forms.values())
    assert forms[rep["sources"]] >= top - bars[rep["sources"]]
    sparser = [k for k in forms if k != 0 and (rep["sources"] == 0 or k < rep["sources"])]
    assert all(forms[k] < top - bars[k] for k in sparser)
    fixed = make(graph, sp)
    fit_staged(fixed, graph, sp, cfg, valid_fn=valid, l2_grid=(1.0, 5.0), gamma_grid=(0.0, 1.0), sources=4)
    assert fixed.fit_report["relation"]["sources"] == 4 and fixed.fit_report["relation"]["sources_valid"] == {}
    assert fixed.nbr_index.shape[1] == 4
    # more sources than other items: the dense relation, fitted once
    wide = make(graph, sp)
    fit_staged(wide, graph, sp, cfg, valid_fn=valid, l2_grid=(5.0,), gamma_grid=(0.0,), sources_grid=(0, 500))
    assert wide.fit_report["relation"]["sources"] == 0 and wide.dense


def test_lowpass_factors_are_gfcfs_ideal_low_pass_filter(graph_and_split):
    from engine.models.lowpass import lowpass_factors

    _, sp = graph_and_split
    X = sp.matrix("train")
    Xa = X[:, np.flatnonzero(X.getnnz(axis=0) > 0)].tocsr()
    left, right = lowpass_factors(Xa, 6)
    # GF-CF: D^-1/2 V V^T D^1/2, V the top right singular vectors of D_U^-1/2 R D_I^-1/2 (dense SVD here)
    du, di = np.asarray(Xa.sum(1)).ravel(), np.asarray(Xa.sum(0)).ravel()
    R = Xa.toarray() / np.sqrt(du)[:, None] / np.sqrt(di)[None, :]
    V = np.linalg.svd(R)[2][:6].T
    expected = V @ V.T / np.sqrt(di)[:, None] * np.sqrt(di)[None, :]
    assert np.allclose((left @ right.T).numpy(), expected, atol=1e-5)
    again = lowpass_factors(Xa, 6)
    assert torch.equal(again[0], left) and torch.equal(again[1], right)  # seeded: same data, same factors
    three = lowpass_factors(Xa, 3)  # columns by singular value: a lower rank is a prefix
    assert np.allclose((three[0] @ three[1].T).numpy(), (left[:, :3] @ right[:, :3].T).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="rank must be in"):
        lowpass_factors(Xa, min(Xa.shape))


def test_staged_fit_chooses_the_low_pass_part_on_validation_and_an_update_keeps_it(graph_and_split):
    graph, sp = graph_and_split
    valid = default_valid_fn(sp, graph)
    cfg = TrainConfig(epochs=2, patience=2, batch_size=128, seed=0)
    model = make(graph, sp)
    betas = (0.0, 0.3, 1.0, 3.0)
    result = fit_staged(
        model, graph, sp, cfg, valid_fn=valid, l2_grid=(5.0,), gamma_grid=(0.0,), lowpass_ranks=(2, 4), beta_grid=betas
    )
    rep = model.fit_report["lowpass"]
    assert set(rep["valid"]) == {f"{r}@{b:g}" for r in (2, 4) for b in betas}  # the whole grid
    best = max(rep["valid"].values())
    assert result.best_valid == pytest.approx(best) and valid(model) == pytest.approx(best)
    assert result.best_valid >= rep["valid"]["2@0"]  # weight 0 is the model without it
    assert rep["beta"] > 0  # on this world the part validates higher (rank 4, weight 3): it is installed
    assert int(model.lowpass_rank) == rep["rank"] and float(model.lowpass_scale) == pytest.approx(rep["scale"])
    assert rep["valid"][f"{rep['rank']}@{rep['beta']:g}"] == best
    # forced on: an update's fit_relation refits the part at the chosen rank, from the graph
    model.fit_lowpass(graph, 4)
    model.lowpass_scale.fill_(0.5)
    left = model.lowpass_left.clone()
    model.lowpass_left.zero_()
    model.fit_relation(graph, l2=5.0)
    assert int(model.lowpass_rank) == 4 and torch.equal(model.lowpass_left, left)
    without = make(graph, sp)
    fit_staged(without, graph, sp, cfg, valid_fn=valid, l2_grid=(5.0,), gamma_grid=(0.0,), lowpass_ranks=())
    assert "lowpass" not in without.fit_report and int(without.lowpass_rank) == 0
