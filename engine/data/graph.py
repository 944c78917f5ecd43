"""Training interactions -> a PyG graph with weighted edges in both directions.

Node layout (homogeneous, so every encoder in ``engine.models`` can share it):
users ``0 .. U-1``, items ``U .. U+I-1`` and, when requested, category nodes
after the items. Only the *training* part of a split ever enters the graph:
validation and test edges would leak the answer into message passing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.split import W_RATING, W_RECENCY, I, SplitData, U

EDGE_FEATURES = (W_RATING, W_RECENCY)
EDGE_UI, EDGE_IU, EDGE_IC, EDGE_CI = 0, 1, 2, 3  # edge_type codes


@dataclass
class RecGraph:
    """The message-passing graph; attribute names follow PyG's ``Data``.

    A plain dataclass rather than ``torch_geometric.data.Data`` so that loading a
    cached model does not pay PyG's import (~1.5 s here); :meth:`to_pyg` converts.

    Attributes:
        edge_index: [2, E] source -> destination node indices.
        edge_attr: [E, 2] (``w_rating``, ``w_recency``).
        edge_type: [E] codes ``EDGE_UI``, ``EDGE_IU``, ``EDGE_IC``, ``EDGE_CI``.
        n_users / n_items / n_categories: node counts per type (users first).
        categories: names of the category nodes.
    """

    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    edge_type: torch.Tensor
    n_users: int
    n_items: int
    n_categories: int = 0
    categories: list[str] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return self.n_users + self.n_items + self.n_categories

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    def to(self, device: Any) -> RecGraph:
        return replace(
            self,
            edge_index=self.edge_index.to(device),
            edge_attr=self.edge_attr.to(device),
            edge_type=self.edge_type.to(device),
        )

    def cpu(self) -> RecGraph:
        return self.to("cpu")

    def to_pyg(self) -> Any:
        """The same graph as a ``torch_geometric.data.Data``."""
        from torch_geometric.data import Data

        return Data(
            edge_index=self.edge_index,
            edge_attr=self.edge_attr,
            edge_type=self.edge_type,
            num_nodes=self.num_nodes,
            n_users=self.n_users,
            n_items=self.n_items,
            n_categories=self.n_categories,
        )


def build_graph(
    split: SplitData,
    *,
    item_categories: list[tuple[str, ...]] | None = None,
    with_category_nodes: bool = False,
    interactions: pd.DataFrame | None = None,
) -> RecGraph:
    """Build the message-passing graph from training interactions.

    Args:
        split: the split; only ``split.train`` is used unless ``interactions`` is given.
        item_categories: categories per internal item index; needed for
            ``with_category_nodes`` (default: None).
        with_category_nodes: add one node per category and item<->category edges
            (weights 1.0), a small knowledge graph (default: False).
        interactions: override the training frame (used by incremental updates;
            default: ``split.train``).

    Returns:
        A :class:`RecGraph` (user->item and item->user edges, plus item<->category
        edges when asked for).
    """
    df = split.train if interactions is None else interactions
    n_users, n_items = split.n_users, split.n_items
    u = torch.tensor(df[U].to_numpy(), dtype=torch.long)
    i = torch.tensor(df[I].to_numpy(), dtype=torch.long) + n_users
    attr = torch.tensor(df[list(EDGE_FEATURES)].to_numpy(np.float32))
    src = [u, i]
    dst = [i, u]
    attrs = [attr, attr]
    types = [torch.full_like(u, EDGE_UI), torch.full_like(u, EDGE_IU)]
    names: list[str] = []
    if with_category_nodes:
        if item_categories is None or len(item_categories) != n_items:
            raise ValueError("with_category_nodes needs item_categories for every item")
        names = sorted({c for cats in item_categories for c in cats})
        index = {c: k for k, c in enumerate(names)}
        pairs = [(it, index[c]) for it, cats in enumerate(item_categories) for c in cats]
        if pairs:
            it_t = torch.tensor([p[0] for p in pairs], dtype=torch.long) + n_users
            c_t = torch.tensor([p[1] for p in pairs], dtype=torch.long) + n_users + n_items
            ones = torch.ones(len(pairs), len(EDGE_FEATURES))
            src += [it_t, c_t]
            dst += [c_t, it_t]
            attrs += [ones, ones]
            types += [torch.full_like(it_t, EDGE_IC), torch.full_like(it_t, EDGE_CI)]
    return RecGraph(
        edge_index=torch.stack([torch.cat(src), torch.cat(dst)]),
        edge_attr=torch.cat(attrs),
        edge_type=torch.cat(types),
        n_users=n_users,
        n_items=n_items,
        n_categories=len(names),
        categories=names,
    )


def category_matrix(item_categories: list[tuple[str, ...]]) -> tuple[torch.Tensor, list[str]]:
    """Multi-hot [I, C] category matrix and the category names (sorted)."""
    names = sorted({c for cats in item_categories for c in cats})
    index = {c: k for k, c in enumerate(names)}
    m = torch.zeros(len(item_categories), max(len(names), 1))
    for it, cats in enumerate(item_categories):
        for c in cats:
            m[it, index[c]] = 1.0
    return m, names


def category_distributions(categories: np.ndarray) -> np.ndarray:
    """Each item's category distribution: its multi-hot row scaled to sum 1 (all-zero rows stay 0).

    One definition for the calibration re-ranker and a user's history distribution (Steck 2018).
    """
    total = categories.sum(axis=1, keepdims=True)
    return categories / np.where(total > 0, total, 1.0)
