"""Model names -> constructed models; the one place that knows every model class."""

from __future__ import annotations

import torch

from engine.config import ModelConfig
from engine.models.base import EmbeddingModel, FittedModel

TRAINED = ("gat", "gcn", "sage", "lightgcn", "bprmf")
CLOSED_FORM = ("ease", "itemknn", "pop")


def build_model(
    cfg: ModelConfig,
    n_users: int,
    n_items: int,
    *,
    text_features: torch.Tensor | None = None,
    category_features: torch.Tensor | None = None,
    item_degree: torch.Tensor | None = None,
) -> EmbeddingModel | FittedModel:
    """Construct the model named by ``cfg.name`` (untrained / unfitted).

    Content features (text, categories) feed the graph recommender and its GCN /
    GraphSAGE ablations; the classic baselines use ids only, as published. ``item_degree``
    (training interactions per item) scales the graph recommender's item-item term.
    """
    if cfg.name in ("gat", "gcn", "sage"):
        from engine.models.gat import GraphRecommender

        return GraphRecommender(
            n_users,
            n_items,
            embedding_dim=cfg.embedding_dim,
            num_layers=cfg.num_layers,
            encoder=cfg.name,
            heads=cfg.heads,
            attention=cfg.attention,
            edge_weight=cfg.edge_weight,
            text_features=text_features,
            text_dim=cfg.text_dim,
            category_features=category_features,
            edge_dropout=cfg.edge_dropout,
            init=cfg.init,
            attention_lr=cfg.attention_lr,
            # Like ``attention``, a knob of the gat model that its GCN/SAGE ablations ignore.
            item_item_dim=cfg.item_item_dim if cfg.name == "gat" else 0,
            item_degree=item_degree,
        )
    if cfg.name == "lightgcn":
        from engine.models.lightgcn import LightGCN

        return LightGCN(n_users, n_items, embedding_dim=cfg.embedding_dim, num_layers=cfg.num_layers)
    if cfg.name == "bprmf":
        from engine.models.mf import BPRMF

        return BPRMF(n_users, n_items, embedding_dim=cfg.embedding_dim)
    if cfg.name == "ease":
        from engine.models.ease import EASE

        return EASE(l2=cfg.ease_l2)
    if cfg.name == "itemknn":
        from engine.models.itemknn import ItemKNN

        return ItemKNN(k=cfg.knn_k)
    if cfg.name == "pop":
        from engine.models.pop import MostPop

        return MostPop()
    raise ValueError(f"unknown model {cfg.name!r}; expected one of {', '.join(TRAINED + CLOSED_FORM)}")
