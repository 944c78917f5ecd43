"""A batched forward restricted to one score's computation subgraph.

:class:`SubgraphScorer` replays the model's propagation on the edges and nodes of a
:class:`~engine.explain.subgraph.ComputationSubgraph` (see that module for why this gives
the full-graph score exactly), for many edge masks and input scales at once: one
block-diagonal forward per batch is what makes Integrated Gradients interactive.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from engine.explain.subgraph import ComputationSubgraph, InputParts
from engine.models.gat import LayerAttention


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
        """Layer-0 inputs [B, n, d]; ``scales`` [B, 4] follow :data:`~engine.explain.subgraph.FEATURE_GROUPS`."""
        if scales is None:
            return self._x0.unsqueeze(0)
        s = scales.unsqueeze(-1).unsqueeze(-1)  # [B, 4, 1, 1]
        return self._x_cat * s[:, 0] + self._x_text * s[:, 1] + (self._x_user + self._x_id) * s[:, 2]

    def forward(
        self,
        mask: Tensor | None = None,
        scales: Tensor | None = None,
        *,
        keep: Tensor | None = None,
        gate: Tensor | None = None,
        return_attention: bool = False,
        return_embeddings: bool = False,
    ) -> Any:
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

        ``keep`` removes whole *interactions* (both directed copies), as deleting them from
        the data would: the degrees of both ends drop even where one copy lies outside the
        subgraph (an edge into a node ``L`` hops away), which a directed ``mask`` cannot say.
        Layer-0 inputs stay fixed (the model drops the id embedding of an item left with no
        edge at all; :func:`~engine.explain.counterfactual.rescore_user` models that).

        Args:
            mask: [B, E] directed edge mask in [0, 1], 0 = edge removed (default: None).
            scales: [B, 4] feature-group scales in [0, 1] (default: None, all 1).
            keep: [B, P] interaction mask, 0 = interaction removed (default: None).
            gate: [B, E] message gates in [0, 1] (default: None, all 1).
            return_attention: also return each layer's attention, for ``B == 1``
                (default: False).
            return_embeddings: return ``(scores, user_emb [B, d], item_emb [B, d])``
                instead (default: False).

        Returns:
            Scores [B] (and per-layer :class:`LayerAttention` on the layer's edges).
        """
        sub = self.sub
        b, x0, attr, mask, deg, deg_eff = self._batch(mask, scales, keep, gate)
        n = sub.num_nodes
        x = x0.reshape(b * n, -1)
        layers = [x]
        atts: list[LayerAttention] = []
        for layer in range(len(self.model.convs)):
            node_degree, m_b = deg, None
            if mask is not None:
                idx = sub.layer_edges[layer]
                m_b = mask[:, idx].reshape(-1)
                node_degree = self._degree_arg(sub.edge_index[1, idx], mask[:, idx], deg_eff)
            x, att = self._layer(layer, x, b, attr, m_b, node_degree, gate)
            layers.append(x)
            if return_attention:
                atts.append(att)
            if layer == 0 and b == 1 and mask is None and scales is None and gate is None:
                self.__dict__.setdefault("first_layer", (x.detach(), att.coef.detach()))
        final = self.model.readout(layers).view(b, n, -1)
        scores = (final[:, sub.local_user] * final[:, sub.local_item]).sum(-1)
        if return_embeddings:
            return scores, final[:, sub.local_user], final[:, sub.local_item]
        if return_attention:
            return scores, atts
        return scores

    __call__ = forward

    def _batch(
        self, mask: Tensor | None, scales: Tensor | None, keep: Tensor | None, gate: Tensor | None
    ) -> tuple[int, Tensor, Tensor, Tensor | None, Tensor, Tensor]:
        """:meth:`forward`'s inputs broadcast to one batch size ``b``.

        Returns ``(b, layer-0 inputs [b, n, d], edge attributes [b, E, a], directed mask [b, E]
        or None, full-graph degrees [b, n], degrees with the masked edges removed [b, n])``.
        """
        sub = self.sub
        b = 1
        for t in (mask, scales, gate, keep):
            if t is not None:
                b = max(b, t.size(0))
        n = sub.num_nodes
        x0 = self.layer0(scales)
        if x0.size(0) != b:
            x0 = x0.expand(b, -1, -1)
        attr = sub.edge_attr.unsqueeze(0)
        if scales is not None:
            attr = attr * scales[:, 3].view(-1, 1, 1)
        if attr.size(0) != b:
            attr = attr.expand(b, -1, -1)
        deg = sub.full_degree.unsqueeze(0).expand(b, -1)
        dst = sub.edge_index[1]
        deg_eff = deg
        if keep is not None:
            if mask is not None:
                raise ValueError("pass either mask or keep, not both")
            keep = keep if keep.size(0) == b else keep.expand(b, -1)
            mask = keep[:, sub.pair]
            deg_eff = deg - self._removed_degree(keep)
        elif mask is not None:
            if mask.size(0) != b:
                mask = mask.expand(b, -1)
            # The removed mass lowers the destinations' degrees (as a full-graph forward would).
            removed = torch.zeros(b, n, dtype=mask.dtype).index_add_(1, dst, 1.0 - mask)
            deg_eff = deg - removed
        return b, x0, attr, mask, deg, deg_eff

    def _layer(
        self,
        layer: int,
        x: Tensor,
        b: int,
        attr: Tensor,
        mask: Tensor | None,
        node_degree: Tensor,
        gate: Tensor | None,
    ) -> tuple[Tensor, LayerAttention]:
        """One conv on ``b`` block-diagonal copies of the layer's edges (``x`` is [b * n, d])."""
        sub = self.sub
        n = sub.num_nodes
        idx = sub.layer_edges[layer]
        if idx.numel() == 0:  # e.g. a cold-start pair: no edges, no messages
            heads = self.model.convs[layer].heads
            empty = torch.zeros(0, heads)
            return torch.zeros_like(x), LayerAttention(torch.zeros(2, 0, dtype=torch.long), empty, empty)
        ei = sub.edge_index[:, idx]
        offsets = (torch.arange(b) * n).view(b, 1, 1)
        ei_b = (ei.unsqueeze(0) + offsets).permute(1, 0, 2).reshape(2, -1)
        attr_b = attr[:, idx].reshape(-1, attr.size(-1))
        # Gates go through the model's own layer: its attention and degree correction stay the
        # single code path, and each message is scaled there (see WeightedAttentionConv.forward).
        g = None if gate is None else (gate if gate.size(0) == b else gate.expand(b, -1))[:, idx].reshape(-1)
        return self.model.convs[layer](
            x, ei_b, edge_attr=attr_b, edge_mask=mask, node_degree=node_degree.reshape(-1), gate=g
        )

    @cached_property
    def first_layer(self) -> tuple[Tensor, Tensor]:
        """``(x1 [n, d], coef [E, H])``: layer 1 with every edge present, and its propagation weights.

        Layer 1's attention reads only layer-0 inputs, which no edge gate changes, so with
        gates ``g`` layer 1 is *linear*: ``x1_d(g) = sum_e g_e coef_e x0_src(e)``. Edge
        attributions use this to run only layers ``2..L`` per integration step.
        """
        with torch.no_grad():
            attr = self.sub.edge_attr.unsqueeze(0)
            x1, att = self._layer(0, self._x0, 1, attr, None, self.sub.full_degree, None)
        return x1, att.coef

    def forward_upper(self, x1: Tensor, gate: Tensor) -> Tensor:
        """Scores [B] given layer-1 states ``x1`` [B, n, d] and gates [B, E] for layers ``2..L``.

        With ``x1 = alpha * first_layer[0]`` and ``gate = alpha`` this equals
        ``forward(gate=alpha)`` (layer 1 is linear in the gates, see :attr:`first_layer`).
        """
        sub = self.sub
        b, n = x1.size(0), sub.num_nodes
        attr = sub.edge_attr.unsqueeze(0).expand(b, -1, -1)
        deg = sub.full_degree.unsqueeze(0).expand(b, -1)
        x = x1.reshape(b * n, -1)
        layers = [self._x0.unsqueeze(0).expand(b, -1, -1).reshape(b * n, -1), x]
        for layer in range(1, len(self.model.convs)):
            x, _ = self._layer(layer, x, b, attr, None, deg, gate)
            layers.append(x)
        final = self.model.readout(layers).view(b, n, -1)
        return (final[:, sub.local_user] * final[:, sub.local_item]).sum(-1)

    def _removed_degree(self, keep: Tensor) -> Tensor:
        """[B, n] degree lost by each node when interactions are removed (both ends)."""
        ends = self.sub.interaction_ends
        lost = (1.0 - keep).repeat_interleave(2, dim=1)
        return torch.zeros(keep.size(0), self.sub.num_nodes, dtype=keep.dtype).index_add_(1, ends.reshape(-1), lost)

    def _degree_arg(self, dst: Tensor, mask: Tensor, deg_eff: Tensor) -> Tensor:
        """``node_degree`` for a conv given edges ``dst`` with ``mask`` [B, E'] so that its degrees equal ``deg_eff``.

        The conv adds the (masked) degree it sees over its own edges to ``node_degree``
        minus their unmasked count; pre-compensating makes it see ``deg_eff`` exactly.
        """
        n = self.sub.num_nodes
        count = torch.zeros(n).index_add_(0, dst, torch.ones(dst.numel()))
        kept = torch.zeros(mask.size(0), n, dtype=mask.dtype).index_add_(1, dst, mask)
        return deg_eff + count - kept

    @torch.no_grad()
    def kept_embeddings(self, keeps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(scores, user_emb, item_emb)`` when only a few interactions are kept (``keeps`` [M, P], 0/1).

        Equals ``forward(keep=keeps, return_embeddings=True)``: a removed edge contributes
        nothing to a softmax or a message, so each layer runs on the kept edges alone (all
        masks as one block-diagonal batch), with the degrees the removal leaves. The cost
        grows with the kept edges, which makes insertion curves cheap.
        """
        sub = self.sub
        n, m = sub.num_nodes, keeps.size(0)
        deg_new = (sub.full_degree.unsqueeze(0) - self._removed_degree(keeps)).reshape(-1)
        x = self._x0.unsqueeze(0).expand(m, -1, -1).reshape(m * n, -1)
        layers = [x]
        for layer, conv in enumerate(self.model.convs):
            idx = sub.layer_edges[layer]
            bb, pos = torch.nonzero(keeps[:, sub.pair[idx]] > 0, as_tuple=True)
            e_glob = idx[pos]
            if e_glob.numel() == 0:  # nothing kept at this layer: no messages
                x = torch.zeros_like(x)
            else:
                x, _ = conv(x, sub.edge_index[:, e_glob] + bb * n, edge_attr=sub.edge_attr[e_glob], node_degree=deg_new)
            layers.append(x)
        final = self.model.readout(layers).view(m, n, -1)
        eu, ei_ = final[:, sub.local_user], final[:, sub.local_item]
        return (eu * ei_).sum(-1), eu, ei_

    @torch.no_grad()
    def removal_embeddings(self, keeps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(scores, user_emb, item_emb)`` [M], [M, d], [M, d] with interactions removed (``keeps`` [M, P], 0/1).

        Equals ``forward(keep=keeps, return_embeddings=True)`` but recomputes only what a
        removal changes in layer 1: the removed interactions' ends (their softmax and
        degrees) from their in-edges, and, for every other node, the one coefficient of
        each kept edge coming from an end (``sqrt(deg_dst / deg_src)`` with the end's new
        degree; its softmax is unchanged). Layers ``2..L`` then run on their own, smaller
        edge sets. A handful of interactions costs their degrees, not the subgraph's size.
        """
        sub = self.sub
        if keeps.numel() and not bool(((keeps == 0) | (keeps == 1)).all()):
            raise ValueError("removal_embeddings takes 0/1 keeps; use forward(keep=...) for soft ones")
        n, m, n_layers = sub.num_nodes, keeps.size(0), len(self.model.convs)
        x1_full, coef1 = self.first_layer
        heads = coef1.size(1)
        x0 = self._x0
        x0_h = x0.view(n, heads, -1)
        src, dst = sub.edge_index
        hop = torch.from_numpy(sub.hop)
        full = sub.full_degree
        deg_new = full.unsqueeze(0) - self._removed_degree(keeps)
        x1 = x1_full.unsqueeze(0).repeat(m, 1, 1)
        attr_all = sub.edge_attr
        for b in range(m):
            changed = deg_new[b] < full
            if not bool(changed.any()):
                continue
            emask = keeps[b][sub.pair]
            ends = changed & (hop <= n_layers - 1)
            into = torch.nonzero(ends[dst]).squeeze(1)
            if into.numel():
                ei, mk = sub.edge_index[:, into], emask[into]
                nd = self._degree_arg(ei[1], mk.unsqueeze(0), deg_new[b : b + 1])[0]
                out, _ = self.model.convs[0](x0, ei, edge_attr=attr_all[into], edge_mask=mk, node_degree=nd)
                x1[b, ends] = out[ends]
            touched = torch.nonzero(changed[src] & ~ends[dst] & (emask > 0)).squeeze(1)
            if touched.numel():
                s_t, d_t = src[touched], dst[touched]
                factor = (full[s_t] / deg_new[b, s_t]).sqrt() - 1.0
                delta = x0_h.index_select(0, s_t) * (coef1[touched] * factor.unsqueeze(-1)).unsqueeze(-1)
                x1[b].view(n, heads, -1).index_add_(0, d_t, delta)
        layers = [x0.unsqueeze(0).expand(m, -1, -1).reshape(m * n, -1), x1.reshape(m * n, -1)]
        x = layers[-1]
        attr = attr_all.unsqueeze(0).expand(m, -1, -1)
        mask = keeps[:, sub.pair]
        for layer in range(1, n_layers):
            idx = sub.layer_edges[layer]
            nd = self._degree_arg(sub.edge_index[1, idx], mask[:, idx], deg_new)
            x, _ = self._layer(layer, x, m, attr, mask[:, idx].reshape(-1), nd, None)
            layers.append(x)
        final = self.model.readout(layers).view(m, n, -1)
        eu, ei_ = final[:, sub.local_user], final[:, sub.local_item]
        return (eu * ei_).sum(-1), eu, ei_


def edge_batch_size(num_edges: int, budget: int = 1_500_000) -> int:
    """Masks per batched forward so that one forward touches about ``budget`` edges."""
    return int(max(1, min(64, budget // max(num_edges, 1))))
