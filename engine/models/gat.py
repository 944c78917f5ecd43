"""The graph attention recommender.

A LightGCN-shaped encoder whose fixed ``1/sqrt(d_i d_j)`` propagation weights are
replaced by learned, edge-weight-aware attention:

    e_ij^h   = a_h(x_i, x_j) + w_h . w_ij          (w_ij = [rating, recency] of the interaction)
    alpha_ij = softmax_{j in N(i)}(e_ij)            (per head h, over i's neighbours)
    c_ij     = alpha_ij * sqrt(d_i / d_j)           (degree correction, see below)
    x_i'     = sum_j c_ij x_j                        (per head slice, no transform, no nonlinearity)

``a_h`` is one of three variants (``attention=``): ``"edge"``, no node term at all, so
the score is the interaction's weight term alone (which ratings and how recent an
interaction is decide how much a neighbour counts); ``"dot"``, the scaled dot product
``beta_h <x_i, x_j> / sqrt(C)``; ``"gat"``, GAT's additive form
``LeakyReLU(a_src.x_j + a_dst.x_i)``. With uniform attention ``c_ij`` equals LightGCN's
symmetric normalisation exactly; the attention parameters start at zero, so training starts
from LightGCN and learns where to deviate. That is why the degree correction is there:
plain softmax-mean aggregation throws away the degree information that makes LightGCN
strong on collaborative data. ``"edge"`` is the default because it validated best on both
MovieLens sets (BENCHMARKS.md): the node-dependent terms let attention follow the
embeddings it is training, which overfit on the sparser ml-latest-small.

Node inputs: learnable id embeddings, plus for items a small trainable low-rank projection of
frozen language-model text features and of multi-hot categories (parameter-efficient; it is
also what gives cold-start items, which have no edges, a meaningful embedding).
Final embeddings average the layer outputs (LightGCN's layer combination); scores are dot products.

``encoder="gcn"`` / ``"sage"`` swap the attention layer for PyG's GCNConv / SAGEConv: the
ablations that show what attention adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.data.graph import RecGraph
from engine.models.base import EmbeddingModel
from engine.models.mf import init_embeddings
from engine.models.spmm import CSRPlan, csr_plan, head_sddmm, head_spmm

ENCODERS = ("gat", "gcn", "sage")
ATTENTIONS = ("edge", "dot", "gat")


@dataclass
class LayerAttention:
    """Attention of one layer on the edges it used (``edge_index`` [2, E]).

    ``alpha`` [E, H] is the per-head softmax attention (sums to 1 over each
    destination's incoming edges); ``coef`` [E, H] is the effective propagation
    weight after the degree correction.
    """

    edge_index: Tensor
    alpha: Tensor
    coef: Tensor


class WeightedAttentionConv(nn.Module):
    """Multi-head, degree-corrected attention propagation with an edge-weight term.

    Args:
        channels: node feature width (split evenly across heads).
        heads: attention heads (default: 4).
        attention: ``"edge"``, ``"dot"`` or ``"gat"`` scoring (default: ``"edge"``).
        edge_dim: width of ``edge_attr`` (default: 2, rating and recency).
        edge_weight: add ``w_h . w_ij`` to the score (default: True).
        negative_slope: LeakyReLU slope of the ``"gat"`` form (default: 0.2).
    """

    def __init__(
        self,
        channels: int,
        *,
        heads: int = 4,
        attention: str = "edge",
        edge_dim: int = 2,
        edge_weight: bool = True,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS} (got {attention!r})")
        if attention == "edge" and not edge_weight:
            raise ValueError("attention='edge' scores edges by their weights alone: it needs edge_weight=True")
        self.channels, self.heads, self.attention = channels, heads, attention
        self.edge_dim, self.use_edge_weight, self.negative_slope = edge_dim, edge_weight, negative_slope
        c = channels // heads
        # Zero init: uniform attention at the start, i.e. exactly LightGCN propagation.
        if attention == "dot":
            self.beta = nn.Parameter(torch.zeros(heads))
        elif attention == "gat":
            self.att_src = nn.Parameter(torch.zeros(1, heads, c))
            self.att_dst = nn.Parameter(torch.zeros(1, heads, c))
        self.lin_edge = nn.Linear(edge_dim, heads, bias=False) if edge_weight else None
        if self.lin_edge is not None:
            nn.init.zeros_(self.lin_edge.weight)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        edge_mask: Tensor | None = None,
        node_degree: Tensor | None = None,
        plan: CSRPlan | None = None,
    ) -> tuple[Tensor, LayerAttention]:
        """Propagate once.

        Args:
            x: node features [N, channels].
            edge_index: [2, E], messages flow ``edge_index[0] -> edge_index[1]``.
            edge_attr: [E, edge_dim] interaction weights (default: None).
            edge_mask: [E] soft mask in [0, 1]; 0 is exactly "edge absent" (it leaves
                the softmax and the degrees), which is what edge attributions need
                (default: None, all present).

        Returns:
            The new features [N, channels] and the layer's :class:`LayerAttention`.
        """
        n = x.size(0)
        src, dst = edge_index
        h = x.view(n, self.heads, -1)
        # index_select (backward: index_add_) is several times faster on CPU than h[src]
        # (backward: index_put_ with accumulate); this layer is gather/scatter bound.
        fast = plan is not None and edge_mask is None
        h_src = None if fast else h.index_select(0, src)
        if self.attention == "dot":
            # SDDMM on the CSR plan when there is one: no [E, C] tensor is ever formed.
            dots = head_sddmm(plan, h, h) if fast else (h_src * h.index_select(0, dst)).sum(-1)
            e = dots * (self.beta / math.sqrt(h.size(-1)))
        elif self.attention == "edge":
            e = x.new_zeros(src.numel(), self.heads)  # the edge-weight term below is the whole score
        else:
            a_src = (h * self.att_src).sum(-1).index_select(0, src)
            a_dst = (h * self.att_dst).sum(-1).index_select(0, dst)
            e = F.leaky_relu(a_src + a_dst, self.negative_slope)
        if self.lin_edge is not None and edge_attr is not None:
            e = e + self.lin_edge(edge_attr.to(e.dtype))
        # Softmax is invariant to a per-destination shift; one global shift per head is enough
        # for stability at these score scales and avoids a slow scatter-max.
        w = torch.exp(e - e.detach().amax(0, keepdim=True))
        m = None if edge_mask is None else edge_mask.to(x.dtype)
        if m is not None:
            # Written out so that a zero mask means removal (it leaves the softmax and the
            # degrees), not a zero message: what edge attributions need.
            w = w * m.unsqueeze(-1)
        denom = x.new_zeros(n, self.heads).index_add_(0, dst, w)
        alpha = w / denom.index_select(0, dst).clamp_min(1e-16)
        deg = _degree(dst, n, m, x)
        if node_degree is not None:
            # Edges outside the given subgraph still count; masked ones inside do not.
            deg = deg + (node_degree.to(x.dtype) - _degree(dst, n, None, x))
        ratio = deg.index_select(0, dst) / deg.index_select(0, src).clamp_min(1e-16)
        coef = alpha * ratio.sqrt().unsqueeze(-1)
        if plan is not None and edge_mask is None:
            out = head_spmm(plan, coef, h)
        else:
            out = x.new_zeros(n, self.heads, h.size(-1)).index_add_(0, dst, h_src * coef.unsqueeze(-1))
        return out.view(n, -1), LayerAttention(edge_index, alpha, coef)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.channels}, heads={self.heads}, "
            f"attention={self.attention!r}, edge_weight={self.use_edge_weight})"
        )


def _degree(dst: Tensor, n: int, mask: Tensor | None, like: Tensor) -> Tensor:
    if mask is None:
        return torch.bincount(dst, minlength=n).to(like.dtype)
    return like.new_zeros(n).index_add_(0, dst, mask)


class GraphRecommender(EmbeddingModel):
    """User-item recommender with an attention (or GCN / GraphSAGE) encoder.

    Args:
        n_users: number of users.
        n_items: number of items.
        embedding_dim: id embedding and layer width (default: 64).
        num_layers: message-passing layers (default: 2).
        encoder: ``"gat"`` (weighted attention), ``"gcn"`` or ``"sage"`` (default: ``"gat"``).
        heads: attention heads (default: 4).
        attention: ``"edge"``, ``"dot"`` or ``"gat"`` scoring for the attention encoder (default: ``"edge"``).
        edge_weight: use interaction weights in attention (default: True).
        text_features: frozen item text embeddings [n_items, D] (default: None).
        text_dim: rank of the trainable text projection (default: 32).
        category_features: multi-hot item categories [n_items, C] (default: None).
        edge_dropout: share of edges dropped per training forward (default: 0.0).
        init: id-embedding initialisation, ``"xavier"`` or ``"normal"`` (default: ``"xavier"``,
            as PyG's LightGCN; the small scale matters with BPR and L2).
        attention_lr: learning-rate multiplier of the attention parameters (default: 0.1;
            see :meth:`param_groups`).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        *,
        embedding_dim: int = 64,
        num_layers: int = 2,
        encoder: str = "gat",
        heads: int = 4,
        attention: str = "edge",
        edge_weight: bool = True,
        text_features: Tensor | None = None,
        text_dim: int = 32,
        category_features: Tensor | None = None,
        edge_dropout: float = 0.0,
        init: str = "xavier",
        attention_lr: float = 0.1,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS} (got {encoder!r})")
        self.n_users, self.n_items = n_users, n_items
        self.embedding_dim, self.num_layers, self.encoder = embedding_dim, num_layers, encoder
        self.heads, self.attention, self.edge_weight = heads, attention, edge_weight
        self.edge_dropout, self.attention_lr = edge_dropout, attention_lr
        self.user_emb = nn.Embedding(n_users, embedding_dim)
        self.item_emb = nn.Embedding(n_items, embedding_dim)
        init_embeddings([self.user_emb.weight, self.item_emb.weight], init)
        self.register_buffer("text", None if text_features is None else text_features.float())
        self.register_buffer("cats", None if category_features is None else category_features.float())
        self.text_proj = None
        if text_features is not None:
            self.text_proj = nn.Sequential(
                nn.Linear(text_features.size(1), text_dim, bias=False),
                nn.Linear(text_dim, embedding_dim, bias=False),
            )
            nn.init.normal_(self.text_proj[1].weight, std=0.01)
        self.cat_proj = None
        if category_features is not None:
            self.cat_proj = nn.Linear(category_features.size(1), embedding_dim, bias=False)
            nn.init.normal_(self.cat_proj.weight, std=0.01)
        self.convs = nn.ModuleList(self._make_conv() for _ in range(num_layers))

    def _make_conv(self) -> nn.Module:
        if self.encoder == "gat":
            return WeightedAttentionConv(
                self.embedding_dim, heads=self.heads, attention=self.attention, edge_weight=self.edge_weight
            )
        from torch_geometric.nn import GCNConv, SAGEConv

        if self.encoder == "gcn":
            return GCNConv(self.embedding_dim, self.embedding_dim, add_self_loops=False, bias=False)
        return SAGEConv(self.embedding_dim, self.embedding_dim, bias=False)

    def param_groups(self, lr: float) -> list[dict]:
        """Embeddings and projections at ``lr``; attention parameters at ``lr * attention_lr``.

        Adam moves every parameter by about ``lr`` per step whatever its gradient's scale, so
        the handful of attention parameters (``beta``, edge-weight weights) would leave the
        LightGCN starting point within a few epochs and sharpen attention onto a few
        neighbours; on ml-100k that overfit (test NDCG@10 0.250 at 1.0 vs 0.274 at 0.1).
        ``attention_lr=0`` freezes attention at uniform (LightGCN propagation).
        """
        # Only the attention encoder's layers: GCNConv / SAGEConv weights are ordinary transforms.
        att = [p for p in self.convs.parameters()] if self.encoder == "gat" else []
        ids = {id(p) for p in att}
        groups = [{"params": [p for p in self.parameters() if id(p) not in ids], "lr": lr}]
        if att and self.attention_lr > 0:
            groups.append({"params": att, "lr": lr * self.attention_lr})
        return groups

    # -- inputs -----------------------------------------------------------------------------
    def item_inputs(
        self, *, text_scale: Tensor | float = 1.0, cat_scale: Tensor | float = 1.0, id_scale: Tensor | float = 1.0
    ) -> Tensor:
        """Layer-0 item representations (id + projected text + projected categories).

        The ``*_scale`` factors (default: 1.0) let feature-group attributions
        interpolate each group from absent (0) to present (1).
        """
        x = self.item_emb.weight * id_scale
        if self.text_proj is not None:
            x = x + self.text_proj(self.text) * text_scale
        if self.cat_proj is not None:
            x = x + self.cat_proj(self.cats) * cat_scale
        return x

    def ego_embeddings(self, users: Tensor, items: Tensor) -> list[Tensor]:
        # L2 on the whole layer-0 item representation, not only the id part: the text and
        # category projections are trainable too, and unregularised they overfit first.
        return [self.user_emb(users), self.item_inputs()[items]]

    # -- encoder ----------------------------------------------------------------------------
    def forward(self, graph: RecGraph) -> tuple[Tensor, Tensor]:
        u, i, _ = self.encode(graph)
        return u, i

    def encode(
        self,
        graph: RecGraph,
        *,
        edge_mask: Tensor | None = None,
        edge_attr: Tensor | None = None,
        x0: Tensor | None = None,
        return_attention: bool = False,
        node_degree: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, list[LayerAttention]]:
        """The single forward code path; attention is a by-product, not a second implementation.

        Args:
            graph: user-item graph (users first, then items; category nodes ignored).
            edge_mask: soft edge mask [E] (default: None).
            edge_attr: override of ``graph.edge_attr`` (default: None).
            x0: override of the layer-0 node features [U + I, d] (default: None).
            return_attention: keep per-layer attention (default: False).
            node_degree: full-graph in-degrees [U + I] when ``graph`` holds only a
                subgraph's edges (default: None): scores then equal the full graph's.

        Returns:
            ``(user_emb, item_emb, attention_per_layer)``.
        """
        n_ui = self.n_users + self.n_items
        edge_index, attr = graph.edge_index, graph.edge_attr if edge_attr is None else edge_attr
        keep = (edge_index < n_ui).all(0)
        if not bool(keep.all()):
            edge_index, attr = edge_index[:, keep], attr[keep]
            edge_mask = None if edge_mask is None else edge_mask[keep]
        if self.training and self.edge_dropout > 0:
            drop = torch.rand(edge_index.size(1), device=edge_index.device) >= self.edge_dropout
            edge_index, attr = edge_index[:, drop], attr[drop]
            edge_mask = None if edge_mask is None else edge_mask[drop]
        if x0 is None:
            items = self.item_inputs()
            if not self.training:
                # At inference, items without training edges keep only their content features:
                # cold-start items must be placed by their text alone. During training their id
                # embeddings stay in, as in LightGCN: sampled as negatives they learn where
                # nobody's taste is; zeroing them in training too made 20% of ml-latest-small's
                # negatives free and cost 0.03 test NDCG@10 (BENCHMARKS.md).
                deg = node_degree if node_degree is not None else torch.bincount(edge_index[1], minlength=n_ui)
                deg = deg[self.n_users :]
                items = torch.where((deg > 0).unsqueeze(-1), items, items - self.item_emb.weight)
            x0 = torch.cat([self.user_emb.weight, items])
        plan = None
        if self.encoder == "gat" and edge_mask is None and node_degree is None:
            plan = self._plan(edge_index, n_ui)
            if plan is not None:
                edge_index, attr = torch.stack([plan.col, plan.row]), attr[plan.perm]
        layers, atts = [x0], []
        x = x0
        for conv in self.convs:
            if self.encoder == "gat":
                x, att = conv(x, edge_index, attr, edge_mask, node_degree, plan)
                if return_attention:
                    atts.append(att)
            elif self.encoder == "gcn":
                x = conv(x, edge_index, edge_weight=edge_mask)
            else:
                x = conv(x, edge_index)
            layers.append(x)
        out = torch.stack(layers).mean(0)
        return out[: self.n_users], out[self.n_users :], atts

    def _plan(self, edge_index: Tensor, n: int) -> CSRPlan | None:
        # One CSR plan per graph tensor: rebuilt only when the edges change (dropout, updates).
        key = (edge_index.data_ptr(), edge_index.size(1), edge_index.device, getattr(edge_index, "_version", 0))
        cached = self.__dict__.get("_plan_cache")
        if cached is None or cached[0] != key:
            cached = (key, csr_plan(edge_index, n))
            self.__dict__["_plan_cache"] = cached
        return cached[1]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(n_users={self.n_users}, n_items={self.n_items}, "
            f"embedding_dim={self.embedding_dim}, num_layers={self.num_layers}, encoder={self.encoder!r}, "
            f"heads={self.heads}, attention={self.attention!r}, edge_weight={self.edge_weight}, "
            f"text={self.text is not None}, categories={self.cats is not None})"
        )
