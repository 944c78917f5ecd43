"""Training interactions -> a PyG graph with weighted edges in both directions.

Node layout (homogeneous, so every encoder in ``engine.models`` can share it):
users ``0 .. U-1``, items ``U .. U+I-1`` and, when requested, category nodes
after the items. Only the *training* part of a split ever enters the graph:
validation and test edges would leak the answer into message passing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from engine.data.split import I, U, W_RATING, W_RECENCY, SplitData

EDGE_FEATURES = (W_RATING, W_RECENCY)
EDGE_UI, EDGE_IU, EDGE_IC, EDGE_CI = 0, 1, 2, 3  # edge_type codes


def build_graph(
    split: SplitData,
    *,
    item_categories: list[tuple[str, ...]] | None = None,
    with_category_nodes: bool = False,
    interactions: pd.DataFrame | None = None,
) -> Data:
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
        ``Data`` with ``edge_index`` [2, E] (user->item and item->user),
        ``edge_attr`` [E, 2] (``w_rating``, ``w_recency``), ``edge_type`` [E],
        ``num_nodes``, ``n_users``, ``n_items``, ``n_categories`` and
        ``categories`` (names of category nodes).
    """
    df = split.train if interactions is None else interactions
    n_users, n_items = split.n_users, split.n_items
    u = torch.as_tensor(df[U].to_numpy(), dtype=torch.long)
    i = torch.as_tensor(df[I].to_numpy(), dtype=torch.long) + n_users
    attr = torch.as_tensor(df[list(EDGE_FEATURES)].to_numpy(np.float32))
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
    return Data(
        edge_index=torch.stack([torch.cat(src), torch.cat(dst)]),
        edge_attr=torch.cat(attrs),
        edge_type=torch.cat(types),
        num_nodes=n_users + n_items + len(names),
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
