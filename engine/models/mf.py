"""BPR-MF: matrix factorisation trained with BPR (Rendle et al., 2009)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from engine.models.base import EmbeddingModel

if TYPE_CHECKING:  # importing torch_geometric costs ~2.5 s; commands that never train should not pay it
    from torch_geometric.data import Data

INITS = ("xavier", "normal")


def init_embeddings(weights: list[Tensor], init: str) -> None:
    """Initialise embedding tables in place.

    Args:
        weights: the tables ``[n, d]``.
        init: ``"xavier"`` (Xavier-uniform, PyG's LightGCN and the LightGCN
            paper's TensorFlow code) or ``"normal"`` (N(0, 0.1^2), the LightGCN
            PyTorch reference code).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS} (got {init!r})")
    for w in weights:
        if init == "xavier":
            nn.init.xavier_uniform_(w)
        else:
            nn.init.normal_(w, std=0.1)


class BPRMF(EmbeddingModel):
    """Plain matrix factorisation: ``score(u, i) = <e_u, e_i>``.

    The graph is accepted for interface parity with the graph models and
    ignored: MF sees interactions only through the BPR training triples.

    Args:
        n_users: number of users.
        n_items: number of items.
        embedding_dim: embedding size (default: 64, RecBole's benchmark setting).
        init: ``"xavier"`` or ``"normal"`` (std 0.1) initialisation (default: ``"xavier"``).
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, init: str = "xavier") -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items), ("embedding_dim", embedding_dim)):
            if value < 1:
                raise ValueError(f"{name} must be positive (got {value!r})")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS} (got {init!r})")
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.embedding_dim = int(embedding_dim)
        self.init = init
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_dim)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw both embedding tables."""
        init_embeddings([self.user_embedding.weight, self.item_embedding.weight], self.init)

    def forward(self, graph: Data | None = None) -> tuple[Tensor, Tensor]:
        """The embedding tables themselves, ``(users [U, d], items [I, d])``."""
        return self.user_embedding.weight, self.item_embedding.weight

    def ego_embeddings(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """The rows of the batch's users and items, regularised by the BPR loss."""
        return [self.user_embedding(users), self.item_embedding(items)]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.n_users}, {self.n_items}, "
            f"embedding_dim={self.embedding_dim}, init={self.init!r})"
        )
