"""The BPR training loop with early stopping on validation NDCG@10.

Readable top to bottom: shuffle training pairs, for each batch run the encoder on
the training graph, sample one negative per pair from the user's *training*
non-interactions, take an Adam step; evaluate on validation every ``eval_every``
epochs with full ranking; keep the best weights; stop after ``patience``
evaluations without improvement; restore the best weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from engine.config import TrainConfig
from engine.data.graph import RecGraph
from engine.data.split import I, SplitData, U
from engine.models.base import EmbeddingModel
from engine.models.losses import sample_negatives
from engine.training.callbacks import Callback
from engine.training.device import resolve_device, seed_everything
from engine.training.result import TrainResult as TrainResult  # re-exported: callers import it from here
from engine.training.stopping import EarlyStopping

log = logging.getLogger(__name__)

ValidFn = Callable[[EmbeddingModel], float]


def default_valid_fn(split: SplitData, graph: RecGraph) -> ValidFn:
    """Validation NDCG@10 with full ranking (train items excluded)."""
    from engine.evaluation.ranking import evaluate

    def fn(model: EmbeddingModel) -> float:
        model.cache_embeddings(graph)
        return float(evaluate(model, split, "valid", ks=(10,)).overall["ndcg@10"])

    return fn


def fit(
    model: EmbeddingModel,
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    valid_fn: ValidFn | None = None,
    pairs: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` in place with BPR and early stopping; returns the curve.

    Args:
        model: an :class:`EmbeddingModel` (BPR-MF, LightGCN, GraphRecommender, ...).
        graph: the training graph (built from ``split.train`` only).
        split: supplies training pairs, the negative-sampling CSR and validation.
        cfg: optimiser, batch, early stopping and device settings.
        callbacks: progress / logging hooks (default: none).
        valid_fn: model -> validation NDCG@10 (default: full-ranking evaluation
            on ``split.valid``).
        pairs: training (user, item) pairs [P, 2] (default: ``split.train``).

    Returns:
        A :class:`TrainResult`; the model holds the best weights and cached embeddings.
    """
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    model.to(device)
    graph = graph.to(device)
    if pairs is None:
        pairs = torch.as_tensor(split.train[[U, I]].to_numpy(), dtype=torch.long)
    train_csr = split.matrix("train")
    train_csr.sort_indices()
    indptr = torch.as_tensor(train_csr.indptr, dtype=torch.long)
    indices = torch.as_tensor(train_csr.indices, dtype=torch.long)
    valid_fn = valid_fn or default_valid_fn(split, graph)
    opt = torch.optim.Adam(model.param_groups(cfg.lr), lr=cfg.lr)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext()
    result = TrainResult(device=str(device))
    for cb in callbacks:
        cb.on_train_begin(cfg.epochs)
    stopping = EarlyStopping(model, cfg, result, callbacks)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(pairs), generator=gen)
        total = torch.zeros((), device=device)
        n_batches = 0
        for b in range(0, len(order), cfg.batch_size):
            batch = pairs[order[b : b + cfg.batch_size]]
            users, pos = batch[:, 0], batch[:, 1]
            neg = sample_negatives(users, split.n_items, indptr, indices, generator=gen)
            users, pos, neg = users.to(device), pos.to(device), neg.to(device)
            with amp:
                u_emb, i_emb = model(graph)
                loss = model.loss(u_emb.float(), i_emb.float(), users, pos, neg, weight_decay=cfg.weight_decay)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()  # no .item() here: no host sync inside the inner loop
            n_batches += 1
        logs: dict[str, Any] = {"epoch": epoch, "loss": float(total) / max(n_batches, 1)}
        score = valid_fn(model) if epoch % cfg.eval_every == 0 or epoch == cfg.epochs else None
        if stopping.end_epoch(epoch, logs, score, t0):
            break
    stopping.restore_best()
    model.cache_embeddings(graph)
    for cb in callbacks:
        cb.on_train_end({"best_epoch": result.best_epoch, "best_valid": result.best_valid})
    return result
