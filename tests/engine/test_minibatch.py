"""Mini-batch training: mode choice, layer-wise inference, equivalence with fit, sampled training."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch

from engine.assembly import Prepared, make_model, prepare, train_model
from engine.config import RunConfig, TrainConfig
from engine.data.synthetic import generate_demo_world
from engine.evaluation.ranking import evaluate
from engine.evaluation.validation import default_valid_fn, layerwise_valid_fn, valid_fn_for
from engine.models.gat import GraphRecommender
from engine.models.itemgat import ItemGAT
from engine.models.lightgcn import LightGCN
from engine.training.loop import fit
from engine.training.minibatch import (
    MINIBATCH_EDGES,
    LayerwiseInference,
    choose_mode,
    fit_auto,
    fit_minibatch,
    full_embeddings,
)
from engine.training.sampler import full_degrees, make_sampler


@dataclass
class Small:
    prep: Prepared


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Small:
    world = generate_demo_world(seed=0, n_users=150, n_items=200)
    cfg = RunConfig().with_overrides(model={"name": "uigat"}, features={"text": False}, train={"epochs": 4})
    return Small(prepare(cfg, dataset=world.dataset, cache_dir=tmp_path_factory.mktemp("cache")))


def _model(prep: Prepared) -> GraphRecommender:
    torch.manual_seed(0)
    model = make_model(prep)
    assert isinstance(model, GraphRecommender)
    return model


def test_choose_mode_by_edge_count_and_override(small: Small) -> None:
    graph = small.prep.graph
    assert MINIBATCH_EDGES == 1_000_000
    assert choose_mode(graph) == "full"  # 8,008 directed edges
    assert choose_mode(graph, threshold=graph.num_edges - 1) == "minibatch"
    assert choose_mode(graph, threshold=graph.num_edges) == "full"
    assert choose_mode(graph, mode="minibatch") == "minibatch"
    assert choose_mode(graph, mode="full", threshold=1) == "full"
    lightgcn = LightGCN(small.prep.split.n_users, small.prep.split.n_items)
    assert choose_mode(graph, threshold=1, model=lightgcn) == "full"  # no subgraph encoder: stays full
    with pytest.raises(ValueError, match="graph recommender"):
        choose_mode(graph, mode="minibatch", model=lightgcn)
    with pytest.raises(ValueError, match="mode must be one of"):
        choose_mode(graph, mode="sampled")


def test_layerwise_inference_equals_the_full_forward(small: Small) -> None:
    prep = small.prep
    model = _model(prep)
    # Item 0 loses its edges: a cold-start item must take the content-only input in both paths.
    item0 = prep.split.n_users
    keep = (prep.graph.edge_index != item0).all(0)
    graph = replace(prep.graph, edge_index=prep.graph.edge_index[:, keep], edge_attr=prep.graph.edge_attr[keep])
    with torch.no_grad():
        for conv in model.convs:  # non-uniform attention, so the per-node softmax matters
            conv.lin_edge.weight.normal_()  # the default "edge" attention: scores from rating and recency
        model.eval()
        want_u, want_i = model(graph)
    infer = LayerwiseInference(graph, chunk_edges=1000)
    assert len(infer.bounds) - 1 >= 7  # ~7,960 edges in chunks of ~1,000
    got_u, got_i = infer(model)
    assert torch.allclose(got_u, want_u, atol=1e-5)
    assert torch.allclose(got_i, want_i, atol=1e-5)
    content_only = (model.item_inputs() - model.item_emb.weight)[0] / (model.num_layers + 1)
    assert torch.allclose(got_i[0], content_only.detach(), atol=1e-6)
    whole_u, _ = full_embeddings(model, graph)
    assert torch.allclose(whole_u, want_u, atol=1e-5)


def test_full_graph_mode_reproduces_fit_exactly(small: Small) -> None:
    prep = small.prep
    cfg = TrainConfig(epochs=2, seed=0)
    a, b = _model(prep), _model(prep)
    ra = fit(a, prep.graph, prep.split, cfg, valid_fn=default_valid_fn(prep.split, prep.graph))
    rb = fit_minibatch(b, prep.graph, prep.split, cfg, fanout=None, valid_fn=layerwise_valid_fn(prep.split, prep.graph))
    assert [c["loss"] for c in rb.curve] == pytest.approx([c["loss"] for c in ra.curve], rel=1e-6)
    assert [c["valid_ndcg@10"] for c in rb.curve] == pytest.approx([c["valid_ndcg@10"] for c in ra.curve], abs=1e-9)
    assert (rb.best_epoch, rb.epochs) == (ra.best_epoch, ra.epochs)


def test_sampled_training_learns_and_reports_its_subgraphs(small: Small) -> None:
    prep = small.prep
    model = _model(prep)
    model.cache_embeddings(prep.graph)
    untrained = evaluate(model, prep.split, "valid", ks=(10,)).overall["ndcg@10"]
    valid_fn = layerwise_valid_fn(prep.split, prep.graph)
    result = fit_minibatch(
        model, prep.graph, prep.split, TrainConfig(epochs=3, seed=0), fanout=(5, 3), valid_fn=valid_fn
    )
    assert result.epochs == 3 and len(result.curve) == 3
    assert result.best_valid > untrained + 0.05
    first = result.curve[0]
    # Each step keeps at most 5 + 5 * 3 in-edges per seed tree and never the whole graph.
    assert 0 < first["edges_per_step"] < prep.graph.num_edges
    assert 0.0 <= first["exact_seeds"] < 1.0
    # The model ends with the best weights and cached full-graph embeddings.
    ndcg = evaluate(model, prep.split, "valid", ks=(10,)).overall["ndcg@10"]
    assert ndcg == pytest.approx(result.best_valid, abs=1e-6)


def test_fanout_follows_the_model_depth(small: Small, caplog: pytest.LogCaptureFixture) -> None:
    prep = small.prep
    model = _model(prep)
    with caplog.at_level("INFO", logger="engine.training.minibatch"):
        fit_minibatch(model, prep.graph, prep.split, TrainConfig(epochs=1), fanout=(4,), valid_fn=lambda m: 0.5)
    assert "fanout (4,) adjusted to the model's 2 layers" in caplog.text
    with pytest.raises(ValueError, match="graph recommender"):
        fit_minibatch(
            LightGCN(10, 10), prep.graph, prep.split, TrainConfig(epochs=1), fanout=(4, 4), valid_fn=lambda m: 0.5
        )
    with pytest.raises(ValueError, match="needs a valid_fn"):
        fit_minibatch(model, prep.graph, prep.split, TrainConfig(epochs=1), valid_fn=None)


def test_fit_auto_dispatches(small: Small, caplog: pytest.LogCaptureFixture) -> None:
    prep = small.prep
    with caplog.at_level("INFO", logger="engine.training.minibatch"):
        fit_auto(_model(prep), prep.graph, prep.split, TrainConfig(epochs=1), valid_fn=lambda m: 0.5)
        fit_auto(_model(prep), prep.graph, prep.split, TrainConfig(epochs=1), mode="minibatch", valid_fn=lambda m: 0.5)
    assert "8008 directed edges: full" in caplog.text
    assert "8008 directed edges: minibatch" in caplog.text


def test_valid_fn_for_follows_the_training_mode(small: Small) -> None:
    """Full-batch validates on model(graph), mini-batch layer-wise: each mode keeps its historical numbers."""
    prep = small.prep
    model = _model(prep)
    lightgcn = LightGCN(prep.split.n_users, prep.split.n_items)
    full = valid_fn_for(model, prep.split, prep.graph, mode="full")
    sampled = valid_fn_for(model, prep.split, prep.graph, mode="minibatch")
    assert full.__qualname__.startswith("default_valid_fn")
    assert sampled.__qualname__.startswith("layerwise_valid_fn")
    assert valid_fn_for(lightgcn, prep.split, prep.graph, mode="minibatch").__qualname__.startswith("default_valid_fn")
    # Both score the same untrained model alike (layer-wise equals the full forward up to rounding).
    assert sampled(model) == pytest.approx(full(model), abs=1e-6)
    assert 0.0 < full(model) < 1.0


# -- the default gat (ItemGAT): its taste part trains on sampled subgraphs ------------------------
@pytest.fixture(scope="module")
def small_gat(tmp_path_factory: pytest.TempPathFactory) -> Small:
    world = generate_demo_world(seed=0, n_users=150, n_items=200)
    cfg = RunConfig().with_overrides(features={"text": False}, train={"epochs": 8})  # model: the default gat
    return Small(prepare(cfg, dataset=world.dataset, cache_dir=tmp_path_factory.mktemp("cache")))


def _itemgat(prep: Prepared) -> ItemGAT:
    model = make_model(prep)
    assert isinstance(model, ItemGAT) and model.subgraph_encoder
    model.use_graph(prep.graph)
    model.stage = "taste"
    return model


def test_itemgat_subgraph_encoder_is_exact_where_the_neighbourhood_is_complete(small_gat: Small) -> None:
    prep = small_gat.prep
    model = _itemgat(prep)
    p, q = model(prep.graph)
    whole_p, whole_q, _ = model.encode(prep.graph, node_degree=full_degrees(prep.graph))
    assert torch.allclose(whole_p, p, atol=1e-6) and torch.allclose(whole_q, q, atol=1e-6)
    # A sampled subgraph: seeds whose whole neighbourhood was drawn get their full-graph rows,
    # the others only an approximation (so the test would fail if it compared nothing).
    seeds = torch.tensor([0, 1, 2, prep.split.n_users + 5, prep.split.n_users + 9])
    sub = make_sampler(prep.graph, (4, 3), backend="torch", seed=0).sample(
        seeds, generator=torch.Generator().manual_seed(0)
    )
    sp_, sq_, _ = model.encode(sub.subgraph(prep.graph), node_degree=full_degrees(prep.graph))
    full_rows = torch.cat([p, q])[seeds]
    sampled_rows = torch.cat([sp_, sq_])[seeds]
    close = torch.isclose(sampled_rows, full_rows, atol=1e-6).all(1)
    assert torch.equal(close[sub.exact], torch.ones(int(sub.exact.sum()), dtype=torch.bool))
    assert not close.all()
    # Only the taste part learns in this stage (DistributedDataParallel reduces what requires grad).
    assert {n for n, w in model.named_parameters() if w.requires_grad} == {
        "user_embedding.weight",
        "item_embedding.weight",
    }
    model.stage = "attention"
    assert all(w.requires_grad for w in model.parameters())


def test_gat_trains_its_taste_part_on_sampled_minibatches(small_gat: Small) -> None:
    prep = small_gat.prep
    full_cfg = prep.config
    mini_cfg = full_cfg.with_overrides(train={"mode": "minibatch"})
    full_model, full = train_model(prep)
    mini_model, mini = train_model(replace(prep, config=mini_cfg))
    assert isinstance(mini_model, ItemGAT) and isinstance(full_model, ItemGAT)
    # Sampled steps: each saw part of the graph, and the curve says so; full-graph steps do not.
    assert all(0 < c["edges_per_step"] < prep.graph.num_edges for c in mini.curve)
    assert "edges_per_step" not in full.curve[0]
    untrained = _itemgat(prep)
    untrained.cache_embeddings(prep.graph)
    start = evaluate(untrained, prep.split, "valid", ks=(10,)).overall["ndcg@10"]
    taste_mini, taste_full = mini_model.fit_report["taste"]["valid"], full_model.fit_report["taste"]["valid"]
    # Close to full-graph training: without the d / c rescaling of sampled sums it reached 0.81 of it.
    assert taste_mini > start + 0.05 and taste_mini > 0.9 * taste_full
    # The closed-form stages ran after it: the served model is the whole recipe's, not the taste part.
    assert mini_model.stage == "attention" and "gamma" in mini_model.fit_report
    served = evaluate(mini_model, prep.split, "valid", ks=(10,)).overall["ndcg@10"]
    assert served == pytest.approx(mini.best_valid, abs=1e-6)


def test_gat_without_propagation_layers_trains_in_minibatch_mode(small_gat: Small) -> None:
    # Nothing to sample (its taste part is plain MF): the steps run on the graph, no empty-fanout error.
    cfg = small_gat.prep.config.with_overrides(model={"num_layers": 0}, train={"mode": "minibatch", "epochs": 2})
    model, result = train_model(replace(small_gat.prep, config=cfg))
    assert isinstance(model, ItemGAT) and model.num_layers == 0
    assert result.epochs == 2 and "edges_per_step" not in result.curve[0]
    assert model.fit_report["taste"]["valid"] > 0.0
