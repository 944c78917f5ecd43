"""The computation subgraph of one score (the batched forward on it: :mod:`engine.explain.scorer`).

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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from engine.data.graph import RecGraph
from engine.recommender import Recommender

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
            nbrs = unique_ids(self.edge_index[0, self.edges_into(frontier)], self.num_nodes)
            frontier = nbrs[dist[nbrs] < 0]
            dist[frontier] = h
        return dist


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch with one intra-op thread inside the block, then restore the setting.

    Explanations are many small gathers and scatters (tens of thousands of edges): OpenMP
    synchronisation outweighs the parallel work. Measured on ml-100k (2-core machine with
    other jobs running): median explanation 0.47 s with one thread, 6.5 s with two.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def unique_ids(values: np.ndarray, size: int) -> np.ndarray:
    """Sorted unique values of non-negative ints below ``size`` (a table: linear, unlike ``np.unique``)."""
    table = np.zeros(size, dtype=bool)
    table[values] = True
    return np.flatnonzero(table)


def graph_index(rec: Recommender) -> GraphIndex:
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

    @cached_property
    def interaction_ends(self) -> Tensor:
        """[P, 2] local (user, item) node of each interaction (both are always in the subgraph)."""
        return torch.from_numpy(np.searchsorted(self.nodes, self.interactions).astype(np.int64))

    def interaction_keep(self, removed: np.ndarray) -> Tensor:
        """Interaction mask [P]: 1 = kept, 0 = removed (the given interaction ids)."""
        keep = torch.ones(self.num_interactions)
        keep[torch.as_tensor(np.asarray(removed, dtype=np.int64))] = 0.0
        return keep

    def interaction_mask(self, removed: np.ndarray) -> Tensor:
        """Directed-edge mask [E] with the given interaction ids removed (set to 0)."""
        return self.interaction_keep(removed)[self.pair]


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
    nodes = unique_ids(np.concatenate([[un, inode], index.edge_index[:, eids].ravel()]), index.num_nodes)
    local = np.searchsorted(nodes, index.edge_index[:, eids])
    dst_hop = hop[index.edge_index[1, eids]]
    layer_edges = [
        torch.from_numpy(np.flatnonzero(dst_hop <= num_layers - layer)) for layer in range(1, num_layers + 1)
    ]
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

    All are in the model's node layout (``GraphRecommender.join``; the item-item context
    vectors are part of ``item_id``, the collaborative group). ``item_id`` already has the
    cold-start rule applied (items without training edges carry no id embedding), so
    ``users`` / ``item_id + item_text + item_cat`` equals the model's own layer 0.
    """

    users: Tensor
    item_id: Tensor
    item_text: Tensor
    item_cat: Tensor


@torch.no_grad()
def input_parts(rec: Recommender) -> InputParts:
    """The model's layer-0 parts (memoised on the recommender)."""
    cache = rec.__dict__.setdefault("_explain_cache_state", {})
    if "parts" not in cache:
        model = rec.model
        index = graph_index(rec)
        warm = torch.from_numpy(index.degree[index.n_users :] > 0).unsqueeze(-1)
        users, ids, text, cat = (t.detach().clone() for t in model.layer0_parts())
        cache["parts"] = InputParts(users, ids * warm, text, cat)
    return cache["parts"]
