"""LightGCN (He et al., SIGIR 2020): linear propagation on the user-item graph."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from engine.data.graph import EDGE_IU, EDGE_UI
from engine.models.base import EmbeddingModel
from engine.models.mf import INITS, init_embeddings

if TYPE_CHECKING:  # importing torch_geometric costs ~2.5 s: done where a model is built, not at import
    from torch_geometric.data import Data


class LightGCN(EmbeddingModel):
    r"""LightGCN over the user-item part of :func:`engine.data.graph.build_graph`'s graph.

    .. math::
        \mathbf{e}^{(l+1)} = \tilde{A}\,\mathbf{e}^{(l)}, \quad
        \tilde{A} = D^{-1/2} A D^{-1/2}, \quad
        \mathbf{e} = \frac{1}{L+1} \sum_{l=0}^{L} \mathbf{e}^{(l)}

    Only user->item and item->user edges propagate (``edge_type`` 0/1); the
    optional category nodes and edges are ignored, as in the paper. Edges are
    unweighted. The normalised adjacency is computed once per graph and cached
    (keyed on the identity and version of ``graph.edge_index``), so repeated
    full-batch forwards only pay for the sparse products.

    Args:
        n_users: number of users.
        n_items: number of items.
        embedding_dim: embedding size (default: 64).
        num_layers: propagation layers ``L``; 0 reduces to MF (default: 3).
        init: ``"xavier"`` or ``"normal"`` (std 0.1) initialisation (default: ``"xavier"``).
    """

    def __init__(
        self, n_users: int, n_items: int, embedding_dim: int = 64, num_layers: int = 3, init: str = "xavier"
    ) -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items), ("embedding_dim", embedding_dim)):
            if value < 1:
                raise ValueError(f"{name} must be positive (got {value!r})")
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0 (got {num_layers!r})")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS} (got {init!r})")
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.embedding_dim = int(embedding_dim)
        self.num_layers = int(num_layers)
        self.init = init
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_dim)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_dim)
        # normalize=False: the symmetric normalisation is computed once in normalised_adjacency().
        from torch_geometric.nn.conv import LGConv

        self.convs = nn.ModuleList([LGConv(normalize=False) for _ in range(self.num_layers)])
        self._adj_key: tuple | None = None
        self._adj: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw both embedding tables."""
        init_embeddings([self.user_embedding.weight, self.item_embedding.weight], self.init)

    def forward(self, graph: Data) -> tuple[Tensor, Tensor]:
        """Layer-averaged embeddings ``(users [U, d], items [I, d])``."""
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = x
        if self.num_layers:
            adj_t = self.normalised_adjacency(graph)
            for conv in self.convs:
                x = conv(x, adj_t)
                out = out + x
            out = out / (self.num_layers + 1)
        return out[: self.n_users], out[self.n_users :]

    def ego_embeddings(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """Layer-0 rows of the batch's users and items, regularised by the BPR loss."""
        return [self.user_embedding(users), self.item_embedding(items)]

    def normalised_adjacency(self, graph: Data, dtype: torch.dtype | None = None) -> Tensor:
        r"""``D^{-1/2} A D^{-1/2}`` of the user-item edges as a sparse CSR ``adj_t`` (cached).

        Args:
            graph: node layout users ``0..U-1`` then items ``U..U+I-1``; extra
                nodes (categories) after them are ignored.
            dtype: value dtype (default: the embeddings' dtype).

        Returns:
            ``[U+I, U+I]`` sparse CSR tensor, rows = targets, on ``edge_index``'s device.
        """
        edge_index = graph.edge_index
        edge_type = getattr(graph, "edge_type", None)
        dtype = self.user_embedding.weight.dtype if dtype is None else dtype
        key = (
            edge_index,
            edge_index._version,
            edge_type,
            None if edge_type is None else edge_type._version,
            edge_index.device,
            dtype,
        )
        if self._adj is not None and self._adj_key is not None and _same_key(self._adj_key, key):
            return self._adj
        for name, expected in (("n_users", self.n_users), ("n_items", self.n_items)):
            got = getattr(graph, name, expected)
            if int(got) != expected:
                raise ValueError(f"graph.{name} does not match the model's {name}={expected} (got {got!r})")
        n = self.n_users + self.n_items
        keep = (edge_index < n).all(dim=0)  # a graph without edge types: edges among user/item nodes
        if edge_type is not None:
            keep = (edge_type == EDGE_UI) | (edge_type == EDGE_IU)
        ei = edge_index[:, keep]
        from torch_geometric.nn.conv.gcn_conv import gcn_norm
        from torch_geometric.utils import to_torch_csr_tensor

        ei, w = gcn_norm(ei, None, n, add_self_loops=False, dtype=dtype)
        # adj_t[target, source]: LGConv's spmm multiplies the transposed adjacency with x.
        # Cached + fused CSR product: ~8x faster per BPR step than LGConv(normalize=True) on an
        # edge_index (per-call gcn_norm, gather/scatter) on ml-100k, CPU.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
            adj_t = to_torch_csr_tensor(ei.flip(0), w, size=(n, n))
        self._adj_key, self._adj = key, adj_t
        return adj_t

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.n_users}, {self.n_items}, "
            f"embedding_dim={self.embedding_dim}, num_layers={self.num_layers}, init={self.init!r})"
        )


def _same_key(a: tuple, b: tuple) -> bool:
    # Tensors compare by identity (holding the reference keeps its id from being reused).
    return all(x is y if isinstance(x, Tensor) else x == y for x, y in zip(a, b, strict=True))
