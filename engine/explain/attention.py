"""Attention on the computation subgraph, and its rollout into influences.

Given the attention of one forward, the model is linear in its layer-0 inputs: per head,
``x^l = C^l x^(l-1)`` with ``C^l`` the effective propagation weights (``coef``: softmax
attention times the degree correction) and the final embedding ``e = mean(x^0..x^L)``.
So the rollout is exact *for fixed attention*:

* node influence ``R[t, v] = d e_t / d x^0_v = 1/(L+1) sum_l (C^l ... C^1)[t, v]``,
  computed backwards as ``b^L = 1_t/(L+1)``, ``b^(l-1) = 1_t/(L+1) + (C^l)^T b^l``;
* edge flow (attention flow through edge ``s -> d`` at layer ``l`` towards target ``t``):
  ``b^l[d] * c^l_ds * a^(l-1)[s]`` with the forward mass ``a^0 = 1``, ``a^l = C^l a^(l-1)``,

averaged over heads. The model has no self-loop edges: a node's own input reaches its
embedding through the layer-0 term of the mean (and through return paths), reported as
the node's self influence ``R[t, t]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from engine.explain.subgraph import ComputationSubgraph
from engine.models.gat import LayerAttention


@dataclass
class AttentionResult:
    """Attention and rollout on one computation subgraph (numpy, aligned with its edges / nodes).

    Attributes:
        alpha: [L, E, H] softmax attention per layer and head; NaN where a layer does not
            read the edge for this score.
        coef: [L, E] effective propagation weight averaged over heads (NaN likewise).
        flow_user / flow_item: [E] attention flow through each directed edge towards the
            user's / the item's final embedding, summed over layers, as a share of that
            embedding's total mass (a path through two edges counts for both).
        node_user / node_item: [n] rollout influence of each node's layer-0 input on the
            user's / item's embedding, normalised to sum to 1.
    """

    alpha: np.ndarray
    coef: np.ndarray
    flow_user: np.ndarray
    flow_item: np.ndarray
    node_user: np.ndarray
    node_item: np.ndarray

    @property
    def mean_alpha(self) -> np.ndarray:
        """[E] attention averaged over the layers that read the edge and over heads."""
        with np.errstate(invalid="ignore"):
            return np.nanmean(self.alpha.mean(-1), axis=0)


def rollout(sub: ComputationSubgraph, atts: list[LayerAttention]) -> AttentionResult:
    """Turn per-layer attention (from :meth:`SubgraphScorer.forward`) into influences.

    Args:
        sub: the computation subgraph the attention was computed on.
        atts: one :class:`LayerAttention` per layer, on that layer's edges.

    Returns:
        An :class:`AttentionResult`.
    """
    n, e, n_layers = sub.num_nodes, sub.num_edges, sub.num_layers
    heads = atts[0].alpha.size(1) if atts else 1
    alpha = np.full((n_layers, e, heads), np.nan, dtype=np.float32)
    coef = np.full((n_layers, e), np.nan, dtype=np.float32)
    coefs: list[Tensor] = []
    for layer, att in enumerate(atts):
        idx = sub.layer_edges[layer].numpy()
        alpha[layer, idx] = att.alpha.detach().float().numpy()
        coef[layer, idx] = att.coef.detach().float().mean(-1).numpy()
        coefs.append(att.coef.detach().float())
    src, dst = sub.edge_index
    # Forward mass a^l [n, H]: how much layer-0 signal reaches each node by layer l.
    mass = [torch.ones(n, heads)]
    for layer, c in enumerate(coefs):
        idx = sub.layer_edges[layer]
        s, d = src[idx], dst[idx]
        mass.append(torch.zeros(n, heads).index_add_(0, d, c * mass[-1][s]))
    results = {}
    for name, target in (("user", sub.local_user), ("item", sub.local_item)):
        onehot = torch.zeros(n, heads)
        onehot[target] = 1.0 / (n_layers + 1)
        flow = torch.zeros(e, heads)
        back = onehot.clone()  # b^L
        for layer in range(n_layers - 1, -1, -1):
            idx = sub.layer_edges[layer]
            s, d, c = src[idx], dst[idx], coefs[layer]
            flow[idx] += back[d] * c * mass[layer][s]
            back = onehot + torch.zeros(n, heads).index_add_(0, s, c * back[d])
        total = sum(float(m[target].mean()) for m in mass) / (n_layers + 1)
        node = back.mean(-1).numpy()
        results[name] = (flow.mean(-1).numpy() / max(total, 1e-12), node / max(float(node.sum()), 1e-12))
    return AttentionResult(
        alpha=alpha,
        coef=coef,
        flow_user=results["user"][0],
        flow_item=results["item"][0],
        node_user=results["user"][1],
        node_item=results["item"][1],
    )


def interaction_sum(values: np.ndarray, sub: ComputationSubgraph) -> np.ndarray:
    """Sum a per-directed-edge array [E] into per-interaction values [P] (NaN counts as 0)."""
    return np.bincount(sub.pair.numpy(), weights=np.nan_to_num(values), minlength=sub.num_interactions)


def interaction_mean(values: np.ndarray, sub: ComputationSubgraph) -> np.ndarray:
    """Average a per-directed-edge array [E] over each interaction's edges, ignoring NaN."""
    ok = ~np.isnan(values)
    total = np.bincount(sub.pair.numpy()[ok], weights=values[ok], minlength=sub.num_interactions)
    count = np.bincount(sub.pair.numpy()[ok], minlength=sub.num_interactions)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def pair_attention(att: AttentionResult, sub: ComputationSubgraph) -> np.ndarray:
    """[P] raw attention of each interaction, read on its direction towards the pair.

    An interaction is two directed edges; the one whose destination is nearer to the
    user or the item is the one that carries information towards the score (for the
    user's own history: the attention the user pays to that item). Between nodes at the
    same distance both directions count.
    """
    src, dst = sub.edge_index.numpy()
    towards = sub.hop[dst] <= sub.hop[src]
    return interaction_mean(np.where(towards, att.mean_alpha, np.nan).astype(np.float64), sub)
