"""Full-graph embeddings with bounded memory: one layer at a time, in chunks of edges, no autograd.

Mini-batch training never runs the encoder on the whole graph, so its validation and its final
embeddings come from here; :mod:`engine.pipeline` uses it too when a stored version lacks them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from engine.data.graph import RecGraph
from engine.models.base import EmbeddingModel
from engine.models.gat import GraphRecommender

# Edges per chunk of the no-grad layer-wise forward: bounds its peak to roughly
# chunk_edges * (embedding_dim + 4 * heads) * 4 bytes (~150 MB at 64-d, 4 heads).
CHUNK_EDGES = 1 << 19


def supports_minibatch(model: nn.Module) -> bool:
    """True for models whose encoder can run on a subgraph with full-graph degrees (``subgraph_encoder``)."""
    return bool(getattr(model, "subgraph_encoder", False))


def runs_layerwise(model: nn.Module) -> bool:
    """True for the attention encoder, whose full-graph forward :class:`LayerwiseInference` chunks.

    Other models (ItemGAT's LightGCN taste part, GCN/SAGE) run whole under ``no_grad`` and
    validate on their own ``cache_embeddings``.
    """
    return isinstance(model, GraphRecommender) and model.encoder == "gat"


class LayerwiseInference:
    """Full-graph final embeddings of a :class:`GraphRecommender`, one layer at a time, no grad.

    Each layer is applied to chunks of destination nodes (all incoming edges of a node in the
    same chunk, so each softmax is complete), which bounds peak memory by ``chunk_edges``
    instead of the edge count. Results equal ``model(graph)`` up to float rounding. Models
    other than the attention encoder are simply run whole under ``no_grad``.

    Args:
        graph: the graph to encode (users, items; category nodes are ignored).
        chunk_edges: edges per chunk (default: 524,288).
    """

    def __init__(self, graph: RecGraph, *, chunk_edges: int = CHUNK_EDGES) -> None:
        if chunk_edges < 1:
            raise ValueError(f"chunk_edges must be >= 1 (got {chunk_edges!r})")
        self.graph = graph
        n_ui = graph.n_users + graph.n_items
        ei, attr = graph.edge_index, graph.edge_attr
        keep = (ei < n_ui).all(0)
        ei, attr = ei[:, keep], attr[keep]
        order = torch.sort(ei[1], stable=True).indices
        self.edge_index, self.edge_attr = ei[:, order], attr[order]
        self.degree = torch.bincount(self.edge_index[1], minlength=n_ui)
        rowptr = torch.cat([self.degree.new_zeros(1), torch.cumsum(self.degree, 0)])
        n_edges = int(rowptr[-1])
        bounds = [0, n_edges]
        if n_edges > chunk_edges:
            # Cut at node boundaries so that every node's incoming edges share a chunk.
            targets = torch.arange(chunk_edges, n_edges, chunk_edges, device=rowptr.device)
            bounds += rowptr[torch.searchsorted(rowptr, targets)].tolist()
        self.bounds = sorted(set(bounds))

    @torch.no_grad()
    def __call__(self, model: EmbeddingModel) -> tuple[Tensor, Tensor]:
        was_training = model.training
        model.eval()
        try:
            if not runs_layerwise(model):
                # GCNConv normalises by degrees it computes from the edges it is given, so it
                # cannot be chunked this way; these encoders are light enough to run whole.
                return model(self.graph)
            x = _layer0(model, self.degree)
            weights = model.layer_weights()
            total = x * weights[0]
            for layer, conv in enumerate(model.convs, start=1):
                out = torch.zeros_like(x)
                for start, end in zip(self.bounds[:-1], self.bounds[1:], strict=True):
                    part, _ = conv(x, self.edge_index[:, start:end], self.edge_attr[start:end], None, self.degree)
                    out += part
                total += out * weights[layer]
                x = out
            return total[: model.n_users], total[model.n_users :]
        finally:
            model.train(was_training)


def _layer0(model: Any, degree: Tensor) -> Tensor:
    # Mirrors GraphRecommender.encode: items without training edges keep only their content
    # features. tests/engine/test_minibatch.py checks this against model(graph).
    users, ids, text, cats = model.layer0_parts()
    has_edges = (degree[model.n_users :] > 0).unsqueeze(-1)
    return torch.cat([users, torch.where(has_edges, ids, torch.zeros_like(ids)) + text + cats])


def full_embeddings(model: EmbeddingModel, graph: RecGraph, *, chunk_edges: int = CHUNK_EDGES) -> tuple[Tensor, Tensor]:
    """Final ``(users, items)`` embeddings on ``graph`` with bounded memory (see :class:`LayerwiseInference`)."""
    return LayerwiseInference(graph, chunk_edges=chunk_edges)(model)
