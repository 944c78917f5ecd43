"""Full-batch BPR training: every step runs the encoder on the whole training graph.

The epoch loop itself is :func:`engine.training.trainer.train_epochs` (shared with mini-batch and
data-parallel training); this module picks its full-graph step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.config import TrainConfig
from engine.data.graph import RecGraph
from engine.data.split import SplitData
from engine.models.base import EmbeddingModel
from engine.training.callbacks import Callback
from engine.training.device import resolve_device, seed_everything
from engine.training.result import TrainResult as TrainResult  # re-exported: callers import it from here
from engine.training.trainer import Encode, FullGraphStep, train_epochs, training_pairs
from engine.training.trainer import ValidFn as ValidFn  # re-exported for callers' annotations


def fit(
    model: EmbeddingModel,
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    valid_fn: ValidFn,
    callbacks: Sequence[Callback] = (),
    pairs: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` in place with BPR and early stopping; returns the curve.

    Args:
        model: an :class:`EmbeddingModel` (BPR-MF, LightGCN, GraphRecommender, ...).
        graph: the training graph (built from ``split.train`` only).
        split: supplies training pairs and the negative-sampling CSR.
        cfg: optimiser, batch, early stopping and device settings.
        valid_fn: model -> validation NDCG@10, e.g.
            :func:`engine.evaluation.validation.default_valid_fn` (full ranking on ``split.valid``).
        callbacks: progress / logging hooks (default: none).
        pairs: training (user, item) pairs [P, 2] (default: ``split.train``).

    Returns:
        A :class:`TrainResult`; the model holds the best weights and cached embeddings.
    """
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    model.to(device)
    graph = graph.to(device)
    result = train_epochs(
        model,
        split,
        cfg,
        FullGraphStep(graph),
        forward=Encode(model),
        valid_fn=valid_fn,
        device=device,
        generator=gen,
        pairs=training_pairs(split, pairs),
        callbacks=callbacks,
    )
    model.cache_embeddings(graph)
    return result
