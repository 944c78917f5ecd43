"""Neighbour sampling for mini-batch training: which edges a batch's seed nodes need.

An ``L``-layer encoder computes a node's final embedding from its ``L``-hop in-neighbourhood.
For a batch of seed nodes (the users, positive and negative items of a BPR batch) the sampler
keeps, hop by hop, at most ``fanout[l]`` incoming edges of every node first reached at hop ``l``
(PyG ``NeighborLoader`` semantics: each node is expanded once; the batch's subgraph is the
union of the sampled edges). The encoder then runs on that subgraph with the *full-graph*
in-degrees (``GraphRecommender.encode(subgraph, node_degree=...)``), so a seed whose whole
computation tree was kept gets exactly its full-graph embedding; the others get an estimate.

Two backends with one interface (:meth:`sample` -> :class:`SampledSubgraph`):

* :class:`CSRNeighborSampler`, plain torch over a CSR of incoming edges, always available.
  Per node with in-degree ``d > k`` it draws ``k`` *distinct* edges by stratified sampling:
  the node's edges (in a random order fixed at construction, rotated by a fresh random offset
  per draw) are cut into ``k`` near-equal strata and one edge is taken from each. That is
  vectorised in ``O(k)`` per node, never repeats an edge, and gives every edge the same
  inclusion probability ``k / d``.
* :class:`PygNeighborSampler`, PyG's ``NeighborSampler`` (the sampler behind
  ``NeighborLoader`` / ``LinkNeighborLoader``), used when ``pyg-lib`` or ``torch-sparse`` is
  importable. We call the sampler rather than ``LinkNeighborLoader`` itself because BPR's
  negatives must be items the user has no *training* interaction with, which the loader's
  uniform negative sampling over all nodes cannot express.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from engine.data.graph import RecGraph

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "pyg")


@dataclass
class SampledSubgraph:
    """The edges a batch of seed nodes needs, and which seeds are computed exactly.

    Attributes:
        seeds: unique seed nodes [S] (sorted).
        edge_ids: ids of the sampled edges in the full graph's ``edge_index`` [E'].
        nodes: every node the subgraph touches (seeds and sampled sources), sorted [N'].
        exact: [S] True where the seed's final embedding on the subgraph equals its
            full-graph embedding (its whole ``num_layers``-hop computation tree was kept).
        edges_per_hop: sampled edges per hop.
    """

    seeds: Tensor
    edge_ids: Tensor
    nodes: Tensor
    exact: Tensor
    edges_per_hop: list[int]

    @property
    def num_edges(self) -> int:
        return int(self.edge_ids.numel())

    def subgraph(self, graph: RecGraph) -> RecGraph:
        """``graph`` restricted to the sampled edges (node numbering unchanged)."""
        device = graph.edge_index.device
        eids = self.edge_ids
        if device.type == "cuda":
            # Pinned memory makes the copy asynchronous: no host sync in a training step.
            eids = eids.pin_memory().to(device, non_blocking=True)
        return replace(
            graph,
            edge_index=graph.edge_index.index_select(1, eids),
            edge_attr=graph.edge_attr.index_select(0, eids),
            edge_type=graph.edge_type.index_select(0, eids),
        )


def full_degrees(graph: RecGraph) -> Tensor:
    """In-degree of every node in the full graph: the ``node_degree`` a subgraph forward needs."""
    return torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)


def exact_seeds(seeds: Tensor, src: Tensor, dst: Tensor, complete: Tensor, num_layers: int) -> Tensor:
    """Which seeds get their full-graph embedding when an encoder runs on a subgraph.

    A node's layer-``l`` output is exact when all of its incoming edges are in the subgraph
    (``complete``) and the layer-``l-1`` outputs of those neighbours are exact; layer 0 is
    always exact. The final embedding (a mean over layers ``0..L``) is exact when every
    layer's output is.

    Args:
        seeds: seed nodes [S].
        src / dst: the subgraph's edges [E'].
        complete: [N] True for nodes whose every incoming edge is in the subgraph.
        num_layers: message-passing layers ``L``.

    Returns:
        [S] bool.
    """
    n = complete.numel()
    exact_prev = torch.ones(n, dtype=torch.bool)
    exact_all = torch.ones(n, dtype=torch.bool)
    for _ in range(num_layers):
        bad_in = torch.bincount(dst[~exact_prev[src]], minlength=n) > 0
        exact_prev = complete & ~bad_in
        exact_all &= exact_prev
    return exact_all[seeds]


class CSRNeighborSampler:
    """Plain-torch neighbour sampler over a CSR of incoming edges (see the module docstring).

    Args:
        graph: the training graph (its ``edge_index`` is read on the CPU).
        fanout: incoming edges kept per node, per hop (e.g. ``(15, 10)``); ``-1`` keeps all.
        num_layers: encoder layers, for :attr:`SampledSubgraph.exact` (default: ``len(fanout)``).
        seed: shuffles each node's edge order once (default: 0).
    """

    def __init__(self, graph: RecGraph, fanout: Sequence[int], *, num_layers: int | None = None, seed: int = 0) -> None:
        self.fanout = _check_fanout(fanout)
        self.num_layers = len(self.fanout) if num_layers is None else int(num_layers)
        self.num_nodes = graph.num_nodes
        src, dst = graph.edge_index.cpu()
        # Shuffle first, then a stable sort by destination: each node's edges end up in a
        # random order, so stratified draws carry no pattern of the input's edge order.
        shuffle = torch.randperm(src.numel(), generator=torch.Generator().manual_seed(seed))
        order = shuffle[torch.sort(dst[shuffle], stable=True).indices]
        self.eid = order
        self.src = src[order]
        self.deg = torch.bincount(dst, minlength=self.num_nodes)
        self.rowptr = torch.zeros(self.num_nodes + 1, dtype=torch.long)
        torch.cumsum(self.deg, 0, out=self.rowptr[1:])

    def sample(self, seeds: Tensor, *, generator: torch.Generator | None = None) -> SampledSubgraph:
        """Sample the subgraph of ``seeds`` (node ids, duplicates allowed, on any device)."""
        # Bitmaps over the nodes instead of torch.unique: O(E' + N), no sort of the sampled edges.
        visited = torch.zeros(self.num_nodes, dtype=torch.bool)
        visited[seeds.cpu()] = True
        seeds = torch.nonzero(visited).flatten()
        complete = self.deg == 0  # nothing to miss
        frontier = seeds
        edge_parts, src_parts, dst_parts, per_hop = [], [], [], []
        for k in self.fanout:
            if frontier.numel() == 0:
                per_hop.append(0)
                continue
            pos, owner = self._draw(frontier, k, generator)
            complete[frontier] = (self.deg[frontier] <= k) if k >= 0 else True
            edge_parts.append(self.eid[pos])
            src_parts.append(self.src[pos])
            dst_parts.append(owner)
            per_hop.append(int(pos.numel()))
            reached = torch.zeros(self.num_nodes, dtype=torch.bool)
            reached[src_parts[-1]] = True
            frontier = torch.nonzero(reached & ~visited).flatten()
            visited |= reached
        empty = torch.empty(0, dtype=torch.long)
        edge_ids, src, dst = (torch.cat(p) if p else empty for p in (edge_parts, src_parts, dst_parts))
        exact = exact_seeds(seeds, src, dst, complete, self.num_layers)
        return SampledSubgraph(seeds, edge_ids, torch.nonzero(visited).flatten(), exact, per_hop)

    def _draw(self, nodes: Tensor, k: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """CSR positions of the edges kept for ``nodes`` and the node each belongs to."""
        deg, start = self.deg[nodes], self.rowptr[nodes]
        take_all = deg <= k if k >= 0 else torch.ones_like(deg, dtype=torch.bool)
        # Nodes with few edges: every edge.
        counts = deg[take_all]
        owners_all = nodes[take_all].repeat_interleave(counts)
        offsets = torch.arange(int(counts.sum())) - (torch.cumsum(counts, 0) - counts).repeat_interleave(counts)
        pos_all = start[take_all].repeat_interleave(counts) + offsets
        if k < 0 or bool(take_all.all()):
            return pos_all, owners_all
        # Nodes with many edges: one edge from each of k strata [floor(j d / k), floor((j+1) d / k)),
        # rotated by a random offset so every edge is equally likely to be kept.
        d = deg[~take_all].unsqueeze(1)
        j = torch.arange(k + 1).unsqueeze(0)
        bounds = (j * d) // k
        width = bounds[:, 1:] - bounds[:, :-1]
        u = torch.rand(width.shape, generator=generator)
        pick = bounds[:, :-1] + (u * width).long().clamp_max(width - 1)
        rotate = (torch.rand(d.shape, generator=generator) * d).long()
        pick = (pick + rotate) % d
        pos_big = (start[~take_all].unsqueeze(1) + pick).flatten()
        owners_big = nodes[~take_all].repeat_interleave(k)
        return torch.cat([pos_all, pos_big]), torch.cat([owners_all, owners_big])


class PygNeighborSampler:
    """PyG's compiled ``NeighborSampler`` (needs ``pyg-lib`` or ``torch-sparse``), same interface.

    Args:
        graph: the training graph.
        fanout: incoming edges kept per node, per hop.
        num_layers: encoder layers, for :attr:`SampledSubgraph.exact` (default: ``len(fanout)``).
    """

    def __init__(self, graph: RecGraph, fanout: Sequence[int], *, num_layers: int | None = None) -> None:
        from torch_geometric.data import Data
        from torch_geometric.sampler import NeighborSampler

        self.fanout = _check_fanout(fanout)
        self.num_layers = len(self.fanout) if num_layers is None else int(num_layers)
        self.num_nodes = graph.num_nodes
        self.edge_index = graph.edge_index.cpu()
        self.deg = torch.bincount(self.edge_index[1], minlength=self.num_nodes)
        data = Data(edge_index=self.edge_index, num_nodes=self.num_nodes)
        self._sampler = NeighborSampler(data, num_neighbors=list(self.fanout))

    def sample(self, seeds: Tensor, *, generator: torch.Generator | None = None) -> SampledSubgraph:
        """Sample the subgraph of ``seeds``; PyG draws from torch's global generator."""
        from torch_geometric.sampler import NodeSamplerInput

        seeds = torch.unique(seeds.cpu())
        out = self._sampler.sample_from_nodes(NodeSamplerInput(input_id=None, node=seeds))
        perm = self._sampler.edge_permutation
        # The sampler reports positions in its own (CSC) edge order.
        edge_ids = out.edge if perm is None else perm[out.edge]
        src, dst = self.edge_index[:, edge_ids]
        # A node is complete when the sampler kept as many of its edges as it has.
        kept = torch.bincount(dst, minlength=self.num_nodes)
        complete = kept == self.deg
        exact = exact_seeds(seeds, src, dst, complete, self.num_layers)
        per_hop = list(out.num_sampled_edges) if out.num_sampled_edges is not None else [int(edge_ids.numel())]
        return SampledSubgraph(seeds, edge_ids, torch.unique(out.node), exact, [int(e) for e in per_hop])


def pyg_sampling_available() -> bool:
    """True when PyG's compiled neighbour sampling (``pyg-lib`` or ``torch-sparse``) is importable."""
    import importlib.util

    # find_spec first: importing torch_geometric costs ~1.5 s, worth paying only when a
    # compiled sampler is installed; PyG then says whether it actually loads.
    if not any(importlib.util.find_spec(name) is not None for name in ("pyg_lib", "torch_sparse")):
        return False
    import torch_geometric.typing as pyg_typing

    return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)


def make_sampler(
    graph: RecGraph,
    fanout: Sequence[int],
    *,
    backend: str = "auto",
    num_layers: int | None = None,
    seed: int = 0,
) -> CSRNeighborSampler | PygNeighborSampler:
    """The neighbour sampler for ``graph``.

    Args:
        graph: the training graph.
        fanout: incoming edges kept per node, per hop.
        backend: ``"auto"`` (PyG's when its compiled sampler is importable, else plain torch),
            ``"torch"`` or ``"pyg"`` (default: ``"auto"``).
        num_layers: encoder layers (default: ``len(fanout)``).
        seed: edge-order shuffle of the torch backend (default: 0).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} (got {backend!r})")
    if backend == "pyg" or (backend == "auto" and pyg_sampling_available()):
        log.info("neighbour sampling with PyG's NeighborSampler")
        return PygNeighborSampler(graph, fanout, num_layers=num_layers)
    return CSRNeighborSampler(graph, fanout, num_layers=num_layers, seed=seed)


def _check_fanout(fanout: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(k) for k in fanout)
    if not values or any(k == 0 or k < -1 for k in values):
        raise ValueError(f"fanout must be a non-empty sequence of positive ints or -1 (got {fanout!r})")
    return values
