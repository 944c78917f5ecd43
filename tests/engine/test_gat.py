"""The graph attention recommender: LightGCN at init, exact fast path, masks mean removal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from engine.data.graph import build_graph
from engine.data.schema import Dataset
from engine.data.split import I, U, split
from engine.models.gat import GraphRecommender, WeightedAttentionConv
from engine.models.spmm import csr_plan, head_sddmm, head_spmm


@pytest.fixture(scope="module")
def graph_and_split():
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{i}", float(rng.integers(1, 6)), 100 * u + t)
        for u in range(30)
        for t, i in enumerate(rng.choice(25, size=8, replace=False))
    ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(25)], "title": "t", "categories": [()] * 25, "text": ""})
    # 8 interactions a user: the random 8:1:1 split would hold out nothing, leave-one-out holds out 2.
    sp = split(Dataset("toy", inter, items, None, (1.0, 5.0)), method="leave_one_out", threshold=None, seed=0)
    return build_graph(sp), sp


def randomise(model: GraphRecommender, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.convs:
            for p in conv.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def lightgcn_reference(model: GraphRecommender, g) -> tuple[torch.Tensor, torch.Tensor]:
    n = model.n_users + model.n_items
    src, dst = g.edge_index
    deg = torch.bincount(dst, minlength=n).float()
    w = 1.0 / torch.sqrt(deg[src] * deg[dst])
    x = torch.cat([model.user_emb.weight, model.item_emb.weight])
    layers = [x]
    for _ in range(model.num_layers):
        x = torch.zeros_like(x).index_add_(0, dst, x[src] * w[:, None])
        layers.append(x)
    out = torch.stack(layers).mean(0)
    return out[: model.n_users], out[model.n_users :]


@pytest.mark.parametrize("attention", ["edge", "dot", "gat"])
def test_zero_attention_parameters_reproduce_lightgcn(graph_and_split, attention: str) -> None:
    g, sp = graph_and_split
    model = GraphRecommender(sp.n_users, sp.n_items, attention=attention).eval()
    u, i = model(g)
    ru, ri = lightgcn_reference(model, g)
    torch.testing.assert_close(u, ru, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(i, ri, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["edge", "dot", "gat"])
def test_fast_csr_path_equals_gather_path(graph_and_split, attention: str) -> None:
    g, sp = graph_and_split
    model = GraphRecommender(sp.n_users, sp.n_items, attention=attention).eval()
    randomise(model)
    fast_u, fast_i, _ = model.encode(g)
    deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes)
    slow_u, slow_i, _ = model.encode(g, node_degree=deg)  # node_degree forces gather/scatter
    torch.testing.assert_close(fast_u, slow_u, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast_i, slow_i, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(fast_u, lightgcn_reference(model, g)[0])  # attention really changed something


def test_head_spmm_gradients() -> None:
    pairs = torch.tensor([[0, 0, 1, 2], [3, 4, 4, 5]])
    ei = torch.cat([pairs, pairs.flip(0)], 1)
    plan = csr_plan(ei, 6)
    vals = torch.rand(ei.size(1), 2, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, xx: head_spmm(plan, v, xx), (vals, x))


def test_head_sddmm_values_and_gradients() -> None:
    pairs = torch.tensor([[0, 0, 1, 2], [3, 4, 4, 5]])
    ei = torch.cat([pairs, pairs.flip(0)], 1)
    plan = csr_plan(ei, 6)
    a = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = (a[plan.row] * b[plan.col]).sum(-1)  # <a[dst], b[src]> per edge and head
    torch.testing.assert_close(head_sddmm(plan, a, b), expected)
    assert torch.autograd.gradcheck(lambda x, y: head_sddmm(plan, x, y), (a, b))


def test_attention_is_a_softmax_per_destination(graph_and_split) -> None:
    g, sp = graph_and_split
    model = GraphRecommender(sp.n_users, sp.n_items, attention="gat").eval()
    randomise(model, 1)
    _, _, atts = model.encode(g, return_attention=True)
    assert len(atts) == model.num_layers
    for att in atts:
        sums = torch.zeros(g.num_nodes, model.heads).index_add_(0, att.edge_index[1], att.alpha)
        torch.testing.assert_close(sums[sums.sum(1) > 0], torch.ones_like(sums[sums.sum(1) > 0]))


def test_zero_edge_mask_equals_removing_the_edges(graph_and_split) -> None:
    g, sp = graph_and_split
    model = GraphRecommender(sp.n_users, sp.n_items, attention="dot").eval()
    randomise(model, 2)
    drop = torch.zeros(g.num_edges, dtype=torch.bool)
    drop[[0, 5, g.num_edges // 2]] = True
    mask = (~drop).float()
    mu, mi, _ = model.encode(g, edge_mask=mask)
    smaller = replace(g, edge_index=g.edge_index[:, ~drop], edge_attr=g.edge_attr[~drop], edge_type=g.edge_type[~drop])
    ru, ri, _ = model.encode(smaller)
    torch.testing.assert_close(mu, ru, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mi, ri, atol=1e-5, rtol=1e-4)


def test_edge_weight_changes_attention_only_when_enabled(graph_and_split) -> None:
    g, _sp = graph_and_split
    conv = WeightedAttentionConv(8, heads=2, attention="gat", edge_weight=True)
    with torch.no_grad():
        conv.lin_edge.weight.fill_(1.0)
    x = torch.randn(g.num_nodes, 8)
    _, a1 = conv(x, g.edge_index, g.edge_attr)
    _, a2 = conv(x, g.edge_index, g.edge_attr * 0)
    assert not torch.allclose(a1.alpha, a2.alpha)
    off = WeightedAttentionConv(8, heads=2, attention="gat", edge_weight=False)
    _, b1 = off(x, g.edge_index, g.edge_attr)
    _, b2 = off(x, g.edge_index, g.edge_attr * 0)
    torch.testing.assert_close(b1.alpha, b2.alpha)


def test_cold_items_are_placed_by_content_only() -> None:
    text = torch.randn(4, 6)
    model = GraphRecommender(2, 4, embedding_dim=8, heads=2, text_features=text).eval()
    ei = torch.tensor([[0, 2], [2, 0]])  # user 0 <-> item 0 only; items 1..3 are cold
    from engine.data.graph import RecGraph

    g = RecGraph(ei, torch.ones(2, 2), torch.tensor([0, 1]), n_users=2, n_items=4)
    _, items, _ = model.encode(g)
    # No id embedding and no neighbours: layers 1..L of an isolated node are zero,
    # so its final embedding is its content projection / (L + 1).
    expected = model.text_proj(text)[1:]
    torch.testing.assert_close(items[1:], expected / (model.num_layers + 1))
    assert "encoder='gat'" in repr(model) and "text=True" in repr(model)


def test_edge_attention_needs_edge_weights() -> None:
    with pytest.raises(ValueError, match="edge_weight=True"):
        GraphRecommender(3, 4, attention="edge", edge_weight=False)


def test_attention_parameters_train_at_the_scaled_learning_rate() -> None:
    model = GraphRecommender(3, 4, attention="dot", attention_lr=0.1)
    groups = model.param_groups(0.01)
    att = {id(p) for p in model.convs.parameters()}
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.001)]
    assert {id(p) for p in groups[1]["params"]} == att
    assert not att & {id(p) for p in groups[0]["params"]}
    frozen = GraphRecommender(3, 4, attention_lr=0.0).param_groups(0.01)
    assert len(frozen) == 1  # attention stays uniform: LightGCN propagation
    gcn = GraphRecommender(3, 4, encoder="gcn").param_groups(0.01)
    assert len(gcn) == 1  # GCN weights are ordinary transforms, trained at the full rate


def test_initial_weights_depend_only_on_the_training_seed(tmp_path) -> None:
    from engine.assembly import make_model, prepare
    from engine.config import RunConfig
    from engine.data.synthetic import generate_demo_world

    ds = generate_demo_world(seed=0, n_users=60, n_items=80).dataset
    cfg = RunConfig().with_overrides(model={"name": "uigat"}, features={"text": False})
    prep = prepare(cfg, dataset=ds, cache_dir=tmp_path)
    first = make_model(prep).state_dict()
    torch.rand(1000)  # whatever ran before must not matter
    again = make_model(prep).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first if first[k] is not None)
    other = make_model(prepare(cfg.with_overrides(train={"seed": 1}), dataset=ds, cache_dir=tmp_path)).state_dict()
    assert not torch.equal(first["user_emb.weight"], other["user_emb.weight"])


# -- the item-item term -------------------------------------------------------------------------


def test_item_item_term_is_the_attention_weighted_context_similarity(graph_and_split) -> None:
    g, sp = graph_and_split
    degree = torch.bincount(torch.as_tensor(sp.train[I].to_numpy()), minlength=sp.n_items)
    model = GraphRecommender(
        sp.n_users, sp.n_items, embedding_dim=8, heads=2, item_item_dim=4, item_degree=degree
    ).eval()
    randomise(model)
    u, i, atts = model.encode(g, return_attention=True)
    plain = GraphRecommender(sp.n_users, sp.n_items, embedding_dim=8, heads=2).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k not in ("item_ctx.weight", "item_degree")})
    pu, pi = plain(g)
    # By hand: sum over u's history j of c_uj <s_j p_j, s_i p_i>, per head, with c from layer 1
    # and s = sqrt(training degree).
    nu = sp.n_users
    src, dst = atts[0].edge_index
    coef = atts[0].coef
    p = (model.item_ctx.weight * degree.float().sqrt().unsqueeze(-1)).view(sp.n_items, 2, 2)
    user, item = 3, 7
    into = torch.nonzero(dst == user).squeeze(1)
    want = sum((coef[e] * (p[src[e] - nu] * p[item]).sum(-1)).sum() for e in into.tolist())
    got = (u[user] @ i[item]) - (pu[user] @ pi[item])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The fast CSR path carries the context channels too.
    deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes)
    su, si, _ = model.encode(g, node_degree=deg)
    torch.testing.assert_close(u, su, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(i, si, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("path", ["csr", "gather"])  # edges arrive sorted, or in the graph's own order
def test_item_item_training_loss_leaves_the_positive_out_of_its_own_history(graph_and_split, path: str) -> None:
    g, sp = graph_and_split
    model = GraphRecommender(sp.n_users, sp.n_items, embedding_dim=8, heads=2, item_item_dim=4)
    randomise(model)
    model.train()
    if path == "csr":
        u_emb, i_emb = model(g)
    else:
        u_emb, i_emb, _ = model.encode(g, node_degree=torch.bincount(g.edge_index[1], minlength=g.num_nodes))
    users, pos = torch.tensor(sp.train[U].to_numpy()[:6]), torch.tensor(sp.train[I].to_numpy()[:6])
    neg = torch.tensor([(int(x) + 1) % sp.n_items for x in pos])
    got = model.loss(u_emb, i_emb, users, pos, neg, weight_decay=0.0)
    # Reference: the positive's score minus its own term c_ui <p_i, p_i> in the user's
    # item-item sum (found here by scanning the layer-1 edges, not by the model's lookup).
    atts = model.encode(g, return_attention=True)[2]
    src, dst = atts[0].edge_index
    c = atts[0].coef
    ctx = model.item_ctx.weight.view(sp.n_items, 2, 2)
    diffs = []
    for uu, pp, nn_ in zip(users.tolist(), pos.tolist(), neg.tolist(), strict=True):
        own = torch.nonzero((dst == uu) & (src == sp.n_users + pp)).squeeze(1)
        assert own.numel() == 1
        own_term = (c[own[0]] * (ctx[pp] * ctx[pp]).sum(-1)).sum()
        diffs.append(u_emb[uu] @ i_emb[pp] - own_term - u_emb[uu] @ i_emb[nn_])
    want = torch.nn.functional.softplus(-torch.stack(diffs)).mean()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_item_item_needs_the_attention_encoder_and_divisible_width() -> None:
    with pytest.raises(ValueError, match="item_item_dim"):
        GraphRecommender(3, 4, heads=4, item_item_dim=6)
    with pytest.raises(ValueError, match="attention encoder"):
        GraphRecommender(3, 4, encoder="gcn", item_item_dim=8)
