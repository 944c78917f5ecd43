"""What every recommender model offers the shared training and evaluation harness.

Two shapes, both scored the same way by :mod:`engine.evaluation`:

* closed-form models (MostPop, ItemKNN, EASE) implement :class:`FittedModel`:
  ``fit(split)`` then ``score(users)``;
* trained models (BPR-MF, LightGCN, the graph recommender) subclass
  :class:`EmbeddingModel`: ``forward(graph)`` returns final user and item
  embeddings, ``loss(...)`` the BPR objective; the loop lives in
  :mod:`engine.training`, never in the model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from engine.data.graph import RecGraph
from engine.data.split import SplitData
from engine.models.losses import bpr_loss


@runtime_checkable
class ScoreModel(Protocol):
    """Anything that ranks items for users."""

    def score(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]`` (higher is better) for internal user indices."""
        ...


@runtime_checkable
class FittedModel(ScoreModel, Protocol):
    """A closed-form model fitted on the training matrix of a split."""

    def fit(self, split: SplitData) -> FittedModel: ...


class EmbeddingModel(nn.Module):
    """Base for models trained with BPR on (user, positive, negative) triples.

    Subclasses implement :meth:`forward` and set ``n_users`` / ``n_items``.
    ``score`` uses embeddings cached by :meth:`cache_embeddings` (called by the
    harness after training and after every weight change).
    """

    n_users: int
    n_items: int
    # True where ``encode(subgraph, node_degree=...)`` runs the encoder on a sampled subgraph with
    # the full graph's degrees: what mini-batch and data-parallel sampled training need.
    subgraph_encoder: bool = False

    def forward(self, graph: RecGraph) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """Final embeddings ``(users [U, d], items [I, d])`` computed on ``graph``."""
        raise NotImplementedError

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups (default: one group at ``lr``)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def ego_embeddings(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """Layer-0 parameters touched by a batch, for the L2 term of BPR (default: none)."""
        return []

    def loss(
        self,
        user_emb: Tensor,
        item_emb: Tensor,
        users: Tensor,
        pos: Tensor,
        neg: Tensor,
        *,
        weight_decay: float = 1e-4,
    ) -> Tensor:
        """BPR loss on a batch plus L2 on the batch's ego embeddings (LightGCN's recipe)."""
        reg = self.ego_embeddings(users, torch.cat([pos, neg]))
        return bpr_loss(user_emb[users], item_emb[pos], item_emb[neg], reg, weight_decay=weight_decay)

    @torch.no_grad()
    def cache_embeddings(self, graph: RecGraph) -> None:
        """Compute and keep final embeddings for fast scoring (eval mode, no grad)."""
        was_training = self.training
        self.eval()
        u, i = self(graph)
        self._cached = (u.detach().float(), i.detach().float())
        self.train(was_training)

    def cached_embeddings(self) -> dict[str, Tensor]:
        """The cached final embeddings, for storing beside the weights."""
        if getattr(self, "_cached", None) is None:
            raise RuntimeError("no cached embeddings: call cache_embeddings(graph) first")
        return {"users": self._cached[0], "items": self._cached[1]}

    def set_cached_embeddings(self, users: Tensor, items: Tensor) -> None:
        """Install stored final embeddings (loading skips a full-graph forward)."""
        if users.shape[0] != self.n_users or items.shape[0] != self.n_items:
            raise ValueError(
                f"stored embeddings {tuple(users.shape)}/{tuple(items.shape)} do not match "
                f"{self.n_users} users / {self.n_items} items"
            )
        self._cached = (users.float(), items.float())

    def score(self, users: Tensor) -> Tensor:
        if getattr(self, "_cached", None) is None:
            raise RuntimeError("call cache_embeddings(graph) before score()")
        u, i = self._cached
        return u[users.to(u.device)] @ i.T
