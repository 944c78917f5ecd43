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

Item-item term (``item_item_dim > 0``): low-rank embeddings learn *shared* taste, so a specific
"people who watched A then watch B" link is diluted by everything else the user watched. Each
item also gets a context vector ``p_j``, and the score adds

    sum_{j in N(u)} c_uj <p_j, p_i>                 (c_uj: layer-1 propagation weight of j -> u)

FISM's item-item similarity, weighted by the same rating- and recency-aware attention. The
context vectors enter as ``sqrt(d_j) p_j`` (``d_j``: the item's training degree, a fixed
buffer): that cancels the ``1/sqrt(d_j)`` of the propagation weight, so ``c_uj sqrt(d_j)`` is
``alpha_uj sqrt(d_u)``, FISM's normalisation. Discounting popular history items, as
LightGCN's weights do, hides specific "watched A, then B" links (the demo world's planted
triggers) behind the user's taste. The target side is ``sqrt(d_i) p_i`` likewise. The term is
off by default: it makes explanations find planted triggers far more often but costs ranking
accuracy on MovieLens (BENCHMARKS.md, "Item-item term"). It rides along as extra per-head
channels of layer 0 (``sqrt(d_j) p_j`` for items, zeros for users), so layer 1 computes
``z_u = sum_j c_uj sqrt(d_j) p_j`` on the very edges, attention and masks of the main
path, and every explanation, edit and attribution sees it with no second implementation;
:meth:`GraphRecommender.readout` reads those channels from layers 0 and 1 only (``p_i`` for
items, ``z_u`` for users), the rest as the layer mean. In training a positive's own edge is
taken out of ``z_u`` (see :meth:`GraphRecommender.loss`): otherwise ``<p_i, p_i>`` rewards
every training item for being in its own history, which never happens at recommendation time.

``encoder="gcn"`` / ``"sage"`` swap the attention layer for PyG's GCNConv / SAGEConv: the
ablations that show what attention adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import ATTENTIONS
from engine.data.graph import RecGraph
from engine.models.base import EmbeddingModel
from engine.models.losses import bpr_loss
from engine.models.mf import init_embeddings
from engine.models.spmm import CSRPlan, csr_plan, head_sddmm, head_spmm

ENCODERS = ("gat", "gcn", "sage")


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
        # ``channels`` is the width the node terms read; inputs may carry extra per-head
        # channels after them (the item-item context of GraphRecommender), propagated alike.
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
        gate: Tensor | None = None,
    ) -> tuple[Tensor, LayerAttention]:
        """Propagate once.

        Args:
            x: node features [N, channels].
            edge_index: [2, E], messages flow ``edge_index[0] -> edge_index[1]``.
            edge_attr: [E, edge_dim] interaction weights (default: None).
            edge_mask: [E] soft mask in [0, 1]; 0 is exactly "edge absent" (it leaves
                the softmax and the degrees), which is what edge attributions need
                (default: None, all present).
            node_degree: full-graph in-degrees [N] when ``edge_index`` holds only some of the
                graph's edges (default: None: the degrees of ``edge_index``).
            plan: the CSR plan of ``edge_index`` for the fast kernels (default: None).
            gate: [E] message gates in [0, 1]: each edge's *message* is scaled, its attention
                and the degrees are not (PyG's explanation semantics; smooth at 0, unlike
                ``edge_mask``) (default: None, all 1).

        Returns:
            The new features [N, channels] and the layer's :class:`LayerAttention`.
        """
        n = x.size(0)
        src, dst = edge_index
        h = x.view(n, self.heads, -1)
        c = self.channels // self.heads
        hb = h if h.size(-1) == c else h[..., :c].contiguous()  # what the node terms read
        # index_select (backward: index_add_) is several times faster on CPU than h[src]
        # (backward: index_put_ with accumulate); this layer is gather/scatter bound.
        fast = plan is not None and edge_mask is None and gate is None
        h_src = None if fast else h.index_select(0, src)
        if self.attention == "dot":
            # SDDMM on the CSR plan when there is one: no [E, C] tensor is ever formed.
            dots = head_sddmm(plan, hb, hb) if fast else (h_src[..., :c] * hb.index_select(0, dst)).sum(-1)
            e = dots * (self.beta / math.sqrt(c))
        elif self.attention == "edge":
            e = x.new_zeros(src.numel(), self.heads)  # the edge-weight term below is the whole score
        else:
            a_src = (hb * self.att_src).sum(-1).index_select(0, src)
            a_dst = (hb * self.att_dst).sum(-1).index_select(0, dst)
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
        if fast:
            out = head_spmm(plan, coef, h)
        else:
            weight = coef if gate is None else coef * gate.to(coef.dtype).unsqueeze(-1)
            out = x.new_zeros(n, self.heads, h.size(-1)).index_add_(0, dst, h_src * weight.unsqueeze(-1))
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
        item_item_dim: width of the item-item context vectors (module docstring), divisible
            by ``heads``; 0 turns the term off (default: 0).
        item_degree: training interactions per item [n_items], for the context scale
            ``sqrt(d_j)`` (default: None, all ones).
    """

    subgraph_encoder = True  # encode(subgraph, node_degree=...): mini-batch and data-parallel training

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
        item_item_dim: int = 0,
        item_degree: Tensor | None = None,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS} (got {encoder!r})")
        if item_item_dim < 0 or item_item_dim % heads:
            raise ValueError(f"item_item_dim must be >= 0 and divisible by heads {heads} (got {item_item_dim!r})")
        if item_item_dim and (encoder != "gat" or num_layers < 1):
            raise ValueError(
                f"the item-item term needs the attention encoder with >= 1 layer "
                f"(got encoder={encoder!r}, num_layers={num_layers!r})"
            )
        self.n_users, self.n_items = n_users, n_items
        self.embedding_dim, self.num_layers, self.encoder = embedding_dim, num_layers, encoder
        self.heads, self.attention, self.edge_weight = heads, attention, edge_weight
        self.edge_dropout, self.attention_lr = edge_dropout, attention_lr
        self.user_emb = nn.Embedding(n_users, embedding_dim)
        self.item_emb = nn.Embedding(n_items, embedding_dim)
        init_embeddings([self.user_emb.weight, self.item_emb.weight], init)
        self.item_item_dim = item_item_dim
        self.item_ctx = nn.Embedding(n_items, item_item_dim) if item_item_dim else None
        if self.item_ctx is not None:
            init_embeddings([self.item_ctx.weight], init)
        if item_degree is not None and item_degree.shape != (n_items,):
            raise ValueError(f"item_degree must have shape ({n_items},) (got {tuple(item_degree.shape)})")
        degree = torch.ones(n_items) if item_degree is None else item_degree.float()
        self.register_buffer("item_degree", degree if item_item_dim else None)
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
        # Layer 1's attention in the latest *training* forward with the item-item term (None
        # otherwise): loss() takes each positive's own edge out of z_u with it. The training loop
        # calls forward then loss on the same batch, so this is the forward the loss belongs to.
        self.train_attention: LayerAttention | None = None

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
        ego = [self.user_emb(users), self.item_inputs()[items]]
        if self.item_ctx is not None:
            ego.append(self.item_ctx(items))
        return ego

    # -- node layout ------------------------------------------------------------------------
    def join(self, base: Tensor, context: Tensor | None = None) -> Tensor:
        """Node states ``[n, embedding_dim + item_item_dim]`` from base and context parts.

        Per head, the base slice comes first and the context slice after it, so the
        convolution's per-head split keeps both with their head (default context: zeros).
        """
        if not self.item_item_dim:
            return base
        n, h = base.size(0), self.heads
        if context is None:
            context = base.new_zeros(n, self.item_item_dim)
        return torch.cat([base.view(n, h, -1), context.view(n, h, -1)], -1).view(n, -1)

    def layer0_parts(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Layer-0 node states by input group: ``(users, item_ids, item_text, item_categories)``.

        Each is in the node layout (:meth:`join`); the item-item context vectors belong to
        the collaborative (id) group. Items' layer-0 state is the sum of the last three.
        """
        zeros = self.item_emb.weight.new_zeros(self.n_items, self.embedding_dim)
        ctx = None if self.item_ctx is None else self.context()
        text = self.text_proj(self.text) if self.text_proj is not None else zeros
        cats = self.cat_proj(self.cats) if self.cat_proj is not None else zeros
        return self.join(self.user_emb.weight), self.join(self.item_emb.weight, ctx), self.join(text), self.join(cats)

    def context(self, items: Tensor | None = None) -> Tensor:
        """Scaled item-item context vectors ``sqrt(d_j) p_j`` of ``items`` (default: all) [*, item_item_dim]."""
        if self.item_ctx is None:
            raise ValueError("this model has no item-item term (item_item_dim=0)")
        w, scale = self.item_ctx.weight, self.item_degree.sqrt().unsqueeze(-1)
        return w * scale if items is None else w[items] * scale[items]

    def layer_weights(self) -> Tensor:
        """``[L + 1, embedding_dim + item_item_dim]`` weights of each layer's states in the final embedding."""
        n = self.num_layers + 1
        w = self.item_emb.weight.new_full((n, self.embedding_dim), 1.0 / n)
        if not self.item_item_dim:
            return w
        # Context channels: p_i at layer 0 (items) plus z_u at layer 1 (users); the other side
        # is zero there by construction, and later layers would mix z back into items.
        ctx = torch.zeros(n, self.item_item_dim, dtype=w.dtype, device=w.device)
        ctx[:2] = 1.0
        return torch.cat([w.view(n, self.heads, -1), ctx.view(n, self.heads, -1)], -1).view(n, -1)

    def readout(self, layers: list[Tensor]) -> Tensor:
        """Final node embeddings from the per-layer states ``x^0 .. x^L`` (node layout, :meth:`join`).

        The layer mean (LightGCN) without the item-item term; with it, the context channels
        come from layers 0 and 1 only (:meth:`layer_weights`).
        """
        if not self.item_item_dim:
            return torch.stack(layers).mean(0)
        w = self.layer_weights().to(layers[0].dtype)
        return sum(x * w[k] for k, x in enumerate(layers))

    def loss(
        self,
        user_emb: Tensor,
        item_emb: Tensor,
        users: Tensor,
        pos: Tensor,
        neg: Tensor,
        *,
        weight_decay: float = 1e-4,
    ) -> Tensor:
        """BPR as the base class, with each positive's own edge taken out of the item-item term.

        Without that, ``c_ui <p_i, p_i>`` (the positive in its own history) would be the
        easiest way to score training pairs, and it is never there when recommending.
        """
        if not self.item_item_dim or self.train_attention is None:
            return super().loss(user_emb, item_emb, users, pos, neg, weight_decay=weight_decay)
        coef = self._own_edge_coef(self.train_attention, users, pos)  # [B, heads]
        ctx = self.context(pos).view(len(pos), self.heads, -1) * coef.unsqueeze(-1)
        own = self.join(user_emb.new_zeros(len(pos), self.embedding_dim), ctx.reshape(len(pos), -1))
        reg = self.ego_embeddings(users, torch.cat([pos, neg]))
        u = user_emb[users]
        return bpr_loss(u, item_emb[pos], item_emb[neg], reg, weight_decay=weight_decay, pos_user=u - own)

    def _own_edge_coef(self, att: LayerAttention, users: Tensor, items: Tensor) -> Tensor:
        """Layer-1 weight ``c_ui`` of the edge item -> user per pair ``[B, heads]`` (0 where absent)."""
        edge_index, coef = att.edge_index, att.coef
        if edge_index.size(1) == 0:
            return coef.new_zeros(len(users), self.heads)
        n = self.n_users + self.n_items
        keys = edge_index[1] * n + edge_index[0]
        # The CSR fast path hands over edges sorted by (destination, source) already; only the
        # other paths (edge dropout, sampled subgraphs) need the sort.
        if keys.numel() > 1 and not bool((keys[1:] >= keys[:-1]).all()):
            order = torch.argsort(keys)
            keys, coef = keys[order], coef[order]
        want = users * n + (self.n_users + items)
        at = torch.searchsorted(keys, want).clamp_max(len(keys) - 1)
        found = (keys[at] == want).unsqueeze(-1)
        return torch.where(found, coef[at], torch.zeros_like(coef[:1]))

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
            users, ids, text, cats = self.layer0_parts()
            items = ids + text + cats
            if not self.training:
                # At inference, items without training edges keep only their content features:
                # cold-start items must be placed by their text alone. During training their id
                # embeddings stay in, as in LightGCN: sampled as negatives they learn where
                # nobody's taste is; zeroing them in training too made 20% of ml-latest-small's
                # negatives free and cost 0.03 test NDCG@10 (BENCHMARKS.md).
                deg = node_degree if node_degree is not None else torch.bincount(edge_index[1], minlength=n_ui)
                deg = deg[self.n_users :]
                items = torch.where((deg > 0).unsqueeze(-1), items, items - ids)
            x0 = torch.cat([users, items])
        plan = None
        if self.encoder == "gat" and edge_mask is None and node_degree is None:
            plan = self._plan(edge_index, n_ui)
            if plan is not None:
                edge_index, attr = torch.stack([plan.col, plan.row]), attr[plan.perm]
        layers, atts = [x0], []
        x = x0
        self.train_attention = None
        for k, conv in enumerate(self.convs):
            if self.encoder == "gat":
                x, att = conv(x, edge_index, edge_attr=attr, edge_mask=edge_mask, node_degree=node_degree, plan=plan)
                if return_attention:
                    atts.append(att)
                if k == 0 and self.item_item_dim and self.training:
                    self.train_attention = att  # for loss(): each positive's own edge
            elif self.encoder == "gcn":
                x = conv(x, edge_index, edge_weight=edge_mask)
            else:
                x = conv(x, edge_index)
            layers.append(x)
        out = self.readout(layers)
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
            f"text={self.text is not None}, categories={self.cats is not None}, "
            f"item_item_dim={self.item_item_dim})"
        )
