"""The computation subgraph of one score, and a batched forward restricted to it.

For an L-layer model the final embedding is the mean of layers ``0..L``, and layer ``l``
at node ``v`` reads every edge *into* ``v`` (softmax over ``v``'s neighbours) plus layer
``l-1`` at both ends of those edges. So ``score(u, i) = <e_u, e_i>`` depends exactly on

* the edges whose destination lies within ``L-1`` hops of ``u`` or ``i`` (layer 1 uses
  all of them; layer ``l`` only those whose destination lies within ``L-l`` hops), and
* the layer-0 inputs of the nodes within ``L`` hops.

Degrees enter through the full-graph in-degrees (``node_degree``), corrected for any
edges a mask removes, so a forward on the subgraph reproduces the full-graph score
exactly. Restricting to it, and batching many masks into one block-diagonal forward,
is what makes Integrated Gradients interactive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.data.graph import RecGraph
from engine.models.gat import LayerAttention

# Column order of the feature-group scales accepted by :meth:`SubgraphScorer.forward`.
FEATURE_GROUPS = ("categories", "text", "id", "edge_weight")


@dataclass
class GraphIndex:
    """Full-graph adjacency by destination, built once per recommender.

    Attributes:
        edge_index: [2, E] user-item edges of the training graph (category edges dropped).
        edge_attr: [E, 2] interaction weights.
        order: edge ids sorted by destination.
        indptr: [N + 1] CSR pointer into ``order``.
        degree: [N] in-degrees.
        n_users / n_items: node counts.
    """

    edge_index: np.ndarray
    edge_attr: Tensor
    order: np.ndarray
    indptr: np.ndarray
    degree: np.ndarray
    n_users: int
    n_items: int

    @classmethod
    def build(cls, graph: RecGraph) -> GraphIndex:
        n = graph.n_users + graph.n_items
        ei = graph.edge_index.cpu()
        keep = (ei < n).all(0)
        ei_np = ei[:, keep].numpy().astype(np.int64)
        attr = graph.edge_attr.cpu()[keep].float()
        order = np.argsort(ei_np[1], kind="stable")
        degree = np.bincount(ei_np[1], minlength=n)
        indptr = np.concatenate([[0], np.cumsum(degree)])
        return cls(ei_np, attr, order, indptr, degree, graph.n_users, graph.n_items)

    @property
    def num_nodes(self) -> int:
        return self.n_users + self.n_items

    def edges_into(self, nodes: np.ndarray) -> np.ndarray:
        """Ids of every edge whose destination is in ``nodes`` (vectorised CSR gather)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        starts, ends = self.indptr[nodes], self.indptr[nodes + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        return self.order[np.arange(total) + offsets]

    def hops(self, seeds: np.ndarray, max_hops: int) -> np.ndarray:
        """Hop distance [N] from ``seeds`` (``-1`` beyond ``max_hops``); the graph is symmetric."""
        dist = np.full(self.num_nodes, -1, dtype=np.int64)
        frontier = np.unique(np.asarray(seeds, dtype=np.int64))
        dist[frontier] = 0
        for h in range(1, max_hops + 1):
            if frontier.size == 0:
                break
            nbrs = np.unique(self.edge_index[0, self.edges_into(frontier)])
            frontier = nbrs[dist[nbrs] < 0]
            dist[frontier] = h
        return dist


def graph_index(rec: Any) -> GraphIndex:
    """The recommender's :class:`GraphIndex`, memoised on it."""
    cache = rec.__dict__.setdefault("_explain_cache_state", {})
    if "index" not in cache:
        cache["index"] = GraphIndex.build(rec.prep.graph)
    return cache["index"]


@dataclass
class ComputationSubgraph:
    """The nodes and edges ``score(u, i)`` depends on, relabelled to local indices.

    Attributes:
        user / item: internal user index and internal item index of the pair.
        nodes: [n] global node ids (users ``< n_users``, then items).
        hop: [n] distance to the nearer of ``u`` and ``i``; ``hop_user`` / ``hop_item``
            the distance to each (``-1`` beyond ``L`` hops).
        edge_ids: [E] global edge ids.
        edge_index: [2, E] local indices.
        edge_attr: [E, 2].
        layer_edges: per layer ``l = 1..L``, positions into the ``E`` edges it reads.
        full_degree: [n] full-graph in-degrees.
        pair: [E] interaction id of each directed edge (both directions share it).
        interactions: [P, 2] global (user node, item node) of each interaction.
        num_layers: L.
    """

    user: int
    item: int
    n_users: int
    nodes: np.ndarray
    hop: np.ndarray
    hop_user: np.ndarray
    hop_item: np.ndarray
    edge_ids: np.ndarray
    edge_index: Tensor
    edge_attr: Tensor
    layer_edges: list[Tensor]
    full_degree: Tensor
    pair: Tensor
    interactions: np.ndarray
    num_layers: int

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.size)

    @property
    def num_edges(self) -> int:
        return int(self.edge_ids.size)

    @property
    def num_interactions(self) -> int:
        return int(self.interactions.shape[0])

    @cached_property
    def local_user(self) -> int:
        return int(np.searchsorted(self.nodes, self.user))

    @cached_property
    def local_item(self) -> int:
        return int(np.searchsorted(self.nodes, self.n_users + self.item))

    def interaction_mask(self, removed: np.ndarray) -> Tensor:
        """Directed-edge mask [E] with the given interaction ids removed (set to 0)."""
        keep = np.ones(self.num_interactions, dtype=np.float32)
        keep[np.asarray(removed, dtype=np.int64)] = 0.0
        return torch.from_numpy(keep)[self.pair]


def extract_subgraph(index: GraphIndex, user: int, item: int, num_layers: int) -> ComputationSubgraph:
    """The computation subgraph of ``score(user, item)`` for an ``num_layers``-layer model.

    Args:
        index: the full graph's :class:`GraphIndex`.
        user: internal user index.
        item: internal item index.
        num_layers: message-passing layers L of the model.

    Returns:
        A :class:`ComputationSubgraph` (a cold-start pair may have no edges at all).
    """
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0 (got {num_layers!r})")
    nu = index.n_users
    un, inode = user, nu + item
    hop_u = index.hops(np.array([un]), num_layers)
    hop_i = index.hops(np.array([inode]), num_layers)
    hop = np.where(hop_u < 0, hop_i, np.where(hop_i < 0, hop_u, np.minimum(hop_u, hop_i)))
    if num_layers == 0:
        eids = np.zeros(0, dtype=np.int64)
    else:
        eids = index.edges_into(np.flatnonzero((hop >= 0) & (hop <= num_layers - 1)))
    nodes = np.unique(np.concatenate([[un, inode], index.edge_index[:, eids].ravel()]))
    local = np.searchsorted(nodes, index.edge_index[:, eids])
    dst_hop = hop[index.edge_index[1, eids]]
    layer_edges = [torch.from_numpy(np.flatnonzero(dst_hop <= num_layers - layer)) for layer in range(1, num_layers + 1)]
    # One interaction per (user, item): both directed copies share its id.
    ends = index.edge_index[:, eids]
    users_end = np.minimum(ends[0], ends[1])
    items_end = np.maximum(ends[0], ends[1])
    keys = users_end * index.num_nodes + items_end
    uniq, pair = np.unique(keys, return_inverse=True)
    interactions = np.stack([uniq // index.num_nodes, uniq % index.num_nodes], axis=1)
    return ComputationSubgraph(
        user=user,
        item=item,
        n_users=nu,
        nodes=nodes,
        hop=hop[nodes],
        hop_user=hop_u[nodes],
        hop_item=hop_i[nodes],
        edge_ids=eids,
        edge_index=torch.from_numpy(local.astype(np.int64)),
        edge_attr=index.edge_attr[torch.from_numpy(eids)],
        layer_edges=layer_edges,
        full_degree=torch.from_numpy(index.degree[nodes].astype(np.float32)),
        pair=torch.from_numpy(pair.astype(np.int64)),
        interactions=interactions,
        num_layers=num_layers,
    )


@dataclass
class InputParts:
    """Layer-0 inputs split into interpretable parts, for every node of the full graph.

    ``item_id`` already has the cold-start rule applied (items without training edges
    carry no id embedding), so ``users`` / ``item_id + item_text + item_cat`` equals the
    model's own layer 0.
    """

    users: Tensor
    item_id: Tensor
    item_text: Tensor
    item_cat: Tensor


@torch.no_grad()
def input_parts(rec: Any) -> InputParts:
    """The model's layer-0 parts (memoised on the recommender)."""
    cache = rec.__dict__.setdefault("_explain_cache_state", {})
    if "parts" not in cache:
        model = rec.model
        index = graph_index(rec)
        warm = torch.from_numpy(index.degree[index.n_users :] > 0).unsqueeze(-1)
        item_id = model.item_emb.weight.detach() * warm
        zeros = torch.zeros_like(item_id)
        text = model.text_proj(model.text).detach() if model.text_proj is not None else zeros
        cat = model.cat_proj(model.cats).detach() if model.cat_proj is not None else zeros
        cache["parts"] = InputParts(model.user_emb.weight.detach().clone(), item_id, text, cat)
    return cache["parts"]


class SubgraphScorer:
    """Batched ``score(u, i)`` on a computation subgraph, as a function of edge masks and input scales.

    Args:
        model: the fitted :class:`~engine.models.gat.GraphRecommender` (``encoder="gat"``).
        sub: the pair's :class:`ComputationSubgraph`.
        parts: the model's :class:`InputParts`.
    """

    def __init__(self, model: Any, sub: ComputationSubgraph, parts: InputParts) -> None:
        self.model, self.sub = model, sub
        nodes = torch.from_numpy(sub.nodes)
        is_user = nodes < sub.n_users
        d = parts.users.size(1)
        self._x_user = torch.zeros(sub.num_nodes, d)
        self._x_user[is_user] = parts.users[nodes[is_user]]
        items = nodes[~is_user] - sub.n_users
        self._x_id = torch.zeros(sub.num_nodes, d)
        self._x_text = torch.zeros(sub.num_nodes, d)
        self._x_cat = torch.zeros(sub.num_nodes, d)
        self._x_id[~is_user] = parts.item_id[items]
        self._x_text[~is_user] = parts.item_text[items]
        self._x_cat[~is_user] = parts.item_cat[items]
        self._x0 = self._x_user + self._x_id + self._x_text + self._x_cat

    @property
    def num_edges(self) -> int:
        return self.sub.num_edges

    def layer0(self, scales: Tensor | None) -> Tensor:
        """Layer-0 inputs [B, n, d]; ``scales`` [B, 4] follow :data:`FEATURE_GROUPS`."""
        if scales is None:
            return self._x0.unsqueeze(0)
        s = scales.unsqueeze(-1).unsqueeze(-1)  # [B, 4, 1, 1]
        return (
            self._x_cat * s[:, 0]
            + self._x_text * s[:, 1]
            + (self._x_user + self._x_id) * s[:, 2]
        )

    def forward(
        self,
        mask: Tensor | None = None,
        scales: Tensor | None = None,
        *,
        gate: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, list[LayerAttention]]:
        """Scores [B] for a batch of edge masks, message gates and/or feature-group scales.

        ``mask`` is the model's own removal semantics: at 0 an edge leaves the softmax and
        the degrees, so the remaining attention renormalises. That makes the score
        discontinuous at 0 (a node whose in-edges all shrink together keeps the same
        softmax until they vanish), so gradients along a mask path cannot account for
        removal. ``gate`` is PyG's explanation semantics instead: attention is computed
        with the edge present and the edge's *message* is multiplied by the gate. It is
        smooth, and at gate 0 for every edge it gives the same score as removing every
        edge (no messages reach the pair), so Integrated Gradients over gates is complete
        with respect to "all subgraph edges removed".

        Args:
            mask: [B, E] edge mask in [0, 1], 0 = edge removed (default: None, all present).
            scales: [B, 4] feature-group scales in [0, 1] (default: None, all 1).
            gate: [B, E] message gates in [0, 1] (default: None, all 1).
            return_attention: also return each layer's attention, for ``B == 1``
                (default: False).

        Returns:
            Scores [B] (and per-layer :class:`LayerAttention` on the layer's edges).
        """
        sub = self.sub
        b = 1
        for t in (mask, scales, gate):
            if t is not None:
                b = max(b, t.size(0))
        n, e = sub.num_nodes, sub.num_edges
        x0 = self.layer0(scales)
        if x0.size(0) != b:
            x0 = x0.expand(b, -1, -1)
        offsets = (torch.arange(b) * n).view(b, 1)
        attr = sub.edge_attr.unsqueeze(0)
        if scales is not None:
            attr = attr * scales[:, 3].view(-1, 1, 1)
        if attr.size(0) != b:
            attr = attr.expand(b, -1, -1)
        deg = sub.full_degree.unsqueeze(0).expand(b, -1)
        dst = sub.edge_index[1]
        if mask is not None:
            if mask.size(0) != b:
                mask = mask.expand(b, -1)
            # The removed mass lowers the destinations' degrees (as a full-graph forward would).
            removed = torch.zeros(b, n, dtype=mask.dtype).index_add_(1, dst, 1.0 - mask)
            deg_eff = deg - removed
        x = x0.reshape(b * n, -1)
        layers = [x]
        atts: list[LayerAttention] = []
        for layer, conv in enumerate(self.model.convs):
            idx = sub.layer_edges[layer]
            ei = sub.edge_index[:, idx]
            ei_b = (ei.unsqueeze(0) + offsets.unsqueeze(-1)).permute(1, 0, 2).reshape(2, -1)
            attr_b = attr[:, idx].reshape(-1, attr.size(-1))
            m_b = None
            node_degree = deg
            if mask is not None:
                m_l = mask[:, idx]
                m_b = m_l.reshape(-1)
                if idx.numel() == e:
                    node_degree = deg
                else:
                    # The conv counts (masked) degrees over the edges it is given; add back the
                    # part of each node's effective degree that lives outside this layer's edges.
                    d_l = ei[1]
                    count = torch.zeros(n).index_add_(0, d_l, torch.ones(d_l.numel()))
                    kept = torch.zeros(b, n, dtype=mask.dtype).index_add_(1, d_l, m_l)
                    node_degree = deg_eff + count - kept
            x_new, att = conv(x, ei_b, attr_b, m_b, node_degree.reshape(-1))
            if gate is not None:
                # Re-aggregate the conv's own messages (its coef, i.e. attention x degree
                # correction, stays the model's single code path) with each one gated.
                g = (gate if gate.size(0) == b else gate.expand(b, -1))[:, idx].reshape(-1, 1)
                heads = att.coef.size(1)
                h_src = x.view(b * n, heads, -1).index_select(0, ei_b[0])
                x_new = (
                    torch.zeros(b * n, heads, h_src.size(-1), dtype=x.dtype)
                    .index_add_(0, ei_b[1], h_src * (att.coef * g).unsqueeze(-1))
                    .view(b * n, -1)
                )
            x = x_new
            layers.append(x)
            if return_attention:
                atts.append(att)
        final = torch.stack(layers).mean(0).view(b, n, -1)
        scores = (final[:, sub.local_user] * final[:, sub.local_item]).sum(-1)
        if return_attention:
            return scores, atts
        return scores

    __call__ = forward

    @torch.no_grad()
    def scores_batched(self, masks: Tensor, batch_size: int | None = None) -> Tensor:
        """Scores for many masks [M, E] without gradients, chunked to bound memory."""
        bs = batch_size or edge_batch_size(self.num_edges)
        out = [self.forward(masks[k : k + bs]) for k in range(0, masks.size(0), bs)]
        return torch.cat(out) if out else torch.zeros(0)


def edge_batch_size(num_edges: int, budget: int = 1_500_000) -> int:
    """Masks per batched forward so that one forward touches about ``budget`` edges."""
    return int(max(1, min(64, budget // max(num_edges, 1))))
