"""Neighbour sampler: hand-checked subgraphs, distinct uniform draws, exactness against the model."""

from __future__ import annotations

import pytest
import torch

from engine.assembly import prepare
from engine.config import RunConfig
from engine.data.graph import RecGraph
from engine.data.synthetic import generate_demo_world
from engine.models.gat import GraphRecommender
from engine.training.sampler import CSRNeighborSampler, exact_seeds, full_degrees, make_sampler


def _bipartite(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> RecGraph:
    """Users 0..U-1, items U..; edge ids 0..P-1 user->item, P..2P-1 item->user."""
    u = torch.tensor([p[0] for p in pairs])
    i = torch.tensor([p[1] for p in pairs]) + n_users
    ei = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
    return RecGraph(ei, torch.ones(ei.size(1), 2), torch.zeros(ei.size(1), dtype=torch.long), n_users, n_items)


# u0-i0, u0-i1, u1-i1, u1-i2 (items are nodes 2, 3, 4)
TINY = _bipartite([(0, 0), (0, 1), (1, 1), (1, 2)], 2, 3)


def test_two_hop_subgraph_of_a_user_is_exactly_its_computation_tree() -> None:
    out = CSRNeighborSampler(TINY, (-1, -1)).sample(torch.tensor([0, 0]))
    edges = {tuple(e) for e in TINY.edge_index[:, out.edge_ids].t().tolist()}
    # hop 1: i0 -> u0, i1 -> u0; hop 2: u0 -> i0, u0 -> i1, u1 -> i1 (u1 is reached, not expanded)
    assert edges == {(2, 0), (3, 0), (0, 2), (0, 3), (1, 3)}
    assert out.num_edges == 5
    assert out.seeds.tolist() == [0]
    assert out.nodes.tolist() == [0, 1, 2, 3]
    assert out.edges_per_hop == [2, 3]
    assert out.exact.tolist() == [True]


def test_a_third_layer_would_need_the_unexpanded_user() -> None:
    # With 3 layers u0's embedding depends on u1's layer-1 output, whose in-edges were not kept.
    out = CSRNeighborSampler(TINY, (-1, -1), num_layers=3).sample(torch.tensor([0]))
    assert out.exact.tolist() == [False]


def test_exact_seeds_by_hand() -> None:
    # Path 2 -> 1 -> 0; node 1 misses an in-edge, so 0 is exact for one layer only.
    src, dst = torch.tensor([2, 1]), torch.tensor([1, 0])
    complete = torch.tensor([True, False, True])
    assert exact_seeds(torch.tensor([0, 1, 2]), src, dst, complete, 1).tolist() == [True, False, True]
    assert exact_seeds(torch.tensor([0, 1, 2]), src, dst, complete, 2).tolist() == [False, False, True]


def _star(degree: int) -> RecGraph:
    # One user (node 0) with `degree` items pointing at it.
    src = torch.arange(1, degree + 1)
    ei = torch.stack([src, torch.zeros(degree, dtype=torch.long)])
    return RecGraph(ei, torch.ones(degree, 2), torch.zeros(degree, dtype=torch.long), 1, degree)


def test_fanout_draws_distinct_edges_each_equally_likely() -> None:
    sampler = CSRNeighborSampler(_star(10), (3,))
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(10)
    draws = 3000
    for _ in range(draws):
        out = sampler.sample(torch.tensor([0]), generator=gen)
        assert out.num_edges == 3 and out.edge_ids.unique().numel() == 3
        assert out.exact.tolist() == [False]
        counts[out.edge_ids] += 1
    # Inclusion probability 3/10 for every edge; binomial sd 0.0084 at 3000 draws.
    assert torch.allclose(counts / draws, torch.full((10,), 0.3), atol=0.03)


def test_low_degree_nodes_keep_every_edge() -> None:
    out = CSRNeighborSampler(_star(2), (3,)).sample(torch.tensor([0]))
    assert sorted(out.edge_ids.tolist()) == [0, 1]
    assert out.exact.tolist() == [True]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="fanout"):
        CSRNeighborSampler(TINY, (0, 5))
    with pytest.raises(ValueError, match="backend"):
        make_sampler(TINY, (5,), backend="dgl")
    assert isinstance(make_sampler(TINY, (5,), backend="torch"), CSRNeighborSampler)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[GraphRecommender, RecGraph]:
    world = generate_demo_world(seed=0, n_users=150, n_items=200)
    cfg = RunConfig().with_overrides(features={"text": False})
    prep = prepare(cfg, dataset=world.dataset, cache_dir=tmp_path_factory.mktemp("cache"))
    torch.manual_seed(0)
    model = GraphRecommender(prep.split.n_users, prep.split.n_items, attention="dot", category_features=prep.categories)
    with torch.no_grad():  # non-uniform, node-dependent attention, so the softmax over the kept edges matters
        for conv in model.convs:
            conv.beta.fill_(2.0)
            conv.lin_edge.weight.normal_()
    return model.eval(), prep.graph


def test_exact_seeds_get_their_full_graph_embedding(small: tuple[GraphRecommender, RecGraph]) -> None:
    model, graph = small
    with torch.no_grad():
        full_u, full_i = model(graph)
        full = torch.cat([full_u, full_i])
        sampler = CSRNeighborSampler(graph, (-1, -1))
        seeds = torch.tensor([0, 7, 150 + 3, 150 + 42])
        out = sampler.sample(seeds)
        assert out.exact.all()
        assert out.num_edges < graph.num_edges
        sub_u, sub_i, _ = model.encode(out.subgraph(graph), node_degree=full_degrees(graph))
        sub = torch.cat([sub_u, sub_i])
        assert torch.allclose(sub[out.seeds], full[out.seeds], atol=1e-5)
        # With a small fanout most seeds are approximate, and exact ones still match.
        out = CSRNeighborSampler(graph, (3, 2)).sample(seeds, generator=torch.Generator().manual_seed(1))
        sub_u, sub_i, _ = model.encode(out.subgraph(graph), node_degree=full_degrees(graph))
        sub = torch.cat([sub_u, sub_i])
        inexact = out.seeds[~out.exact]
        assert len(inexact) > 0
        assert not torch.allclose(sub[inexact], full[inexact], atol=1e-4)
        exact = out.seeds[out.exact]
        assert torch.allclose(sub[exact], full[exact], atol=1e-5)
