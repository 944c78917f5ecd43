"""The one BPR epoch loop, shared by full-batch, mini-batch and data-parallel training.

Readable top to bottom: shuffle the training pairs, and for each batch sample one negative per
pair from the user's *training* non-interactions, let the :class:`Step` strategy say on which
graph the encoder runs (the whole training graph, or the sampled neighbourhood of the batch),
take an Adam step; validate every ``eval_every`` epochs with the injected ``valid_fn``; keep the
best weights (:class:`~engine.training.stopping.EarlyStopping`); restore them at the end.
Progress bars, logging and dashboards are callbacks (minGPT's trainer), never code in the loop.

Validation is injected rather than built here: the training layer sits below evaluation, so the
callers (:mod:`engine.assembly`, :mod:`engine.update.warm`, the DDP runner) build it with
:mod:`engine.evaluation.validation`.

On CUDA the inner loop does not synchronise with the host for bookkeeping: the loss is
accumulated on the device, index tensors travel through pinned memory with ``non_blocking=True``,
and bf16 autocast is on when ``cfg.amp``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from engine.config import TrainConfig
from engine.data.graph import RecGraph
from engine.data.split import I, SplitData, U
from engine.models.base import EmbeddingModel
from engine.models.losses import sample_negatives
from engine.training.callbacks import Callback
from engine.training.result import TrainResult
from engine.training.stopping import EarlyStopping

# model -> validation NDCG@10; built by engine.evaluation.validation and passed in.
ValidFn = Callable[[EmbeddingModel], float]


class ValidScore(float):
    """A validation mean that keeps its per-user sample, for paired comparisons of two models.

    A plain ``float`` everywhere else (comparisons, JSON, logging); ``per_user`` holds the
    per-user values in a fixed user order (the validation users), or None.
    """

    per_user: np.ndarray | None

    def __new__(cls, mean: float, per_user: np.ndarray | None = None) -> ValidScore:
        obj = super().__new__(cls, mean)
        obj.per_user = per_user
        return obj


class Step(Protocol):
    """Where one step's encoder runs: the strategy that tells full-batch from mini-batch training."""

    def begin_epoch(self) -> None:
        """Reset per-epoch statistics."""

    def graph_for(self, users: Tensor, pos: Tensor, neg: Tensor) -> tuple[RecGraph, Tensor | None]:
        """The graph for this batch (CPU index tensors) and the node degrees to normalise with (None: its own)."""

    def epoch_logs(self, n_batches: int) -> dict[str, float]:
        """Extra curve entries for the epoch (e.g. sampled edges per step)."""


class FullGraphStep:
    """Every step runs the encoder on the whole training graph (``graph`` already on the device)."""

    def __init__(self, graph: RecGraph) -> None:
        self.graph = graph

    def begin_epoch(self) -> None:
        pass

    def graph_for(self, users: Tensor, pos: Tensor, neg: Tensor) -> tuple[RecGraph, Tensor | None]:
        return self.graph, None

    def epoch_logs(self, n_batches: int) -> dict[str, float]:
        return {}


class Encode(nn.Module):
    """``forward(graph, node_degree) -> (user_emb, item_emb)``: the unit DDP wraps."""

    def __init__(self, model: EmbeddingModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, graph: RecGraph, node_degree: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if node_degree is None:
            return self.model(graph)
        user_emb, item_emb, _ = self.model.encode(graph, node_degree=node_degree)
        return user_emb, item_emb


@dataclass(frozen=True)
class Shard:
    """This process's share of every batch: rank ``rank`` of ``world`` (one process: 0 of 1)."""

    rank: int = 0
    world: int = 1


def training_pairs(split: SplitData, pairs: Tensor | None = None) -> Tensor:
    """``pairs`` or the split's training (user, item) pairs as a [P, 2] long tensor."""
    if pairs is not None:
        return pairs
    return torch.as_tensor(split.train[[U, I]].to_numpy(), dtype=torch.long)


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """``t`` on ``device``; through pinned memory on CUDA so the copy is asynchronous."""
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def train_epochs(
    model: EmbeddingModel,
    split: SplitData,
    cfg: TrainConfig,
    step: Step,
    *,
    forward: nn.Module,
    valid_fn: ValidFn,
    device: torch.device,
    generator: torch.Generator,
    pairs: Tensor,
    callbacks: Sequence[Callback] = (),
    shard: Shard = Shard(),
) -> TrainResult:
    """Run the BPR epochs on ``model`` (already on ``device``) and restore the best weights.

    Args:
        model: the model whose parameters are optimised.
        split: supplies the negative-sampling CSR (training interactions).
        cfg: epochs, batch size, learning rate, weight decay, AMP, early stopping.
        step: the full-graph or sampled-subgraph strategy.
        forward: ``Encode(model)``, or its DistributedDataParallel wrapper.
        valid_fn: model -> validation NDCG@10, called every ``cfg.eval_every`` epochs and at the last.
        device: where the step runs.
        generator: the seeded CPU generator for the permutation and the negatives.
        pairs: training (user, item) pairs [P, 2].
        callbacks: progress / logging hooks (default: none).
        shard: this process's share of every batch (default: the whole batch).

    Returns:
        The :class:`TrainResult`; the model holds the best weights (the caller caches embeddings).
    """
    indptr, indices = _negative_csr(split)
    opt = torch.optim.Adam(model.param_groups(cfg.lr), lr=cfg.lr)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext()
    result = TrainResult(device=str(device))
    for cb in callbacks:
        cb.on_train_begin(cfg.epochs)
    stopping = EarlyStopping(model, cfg, result, callbacks)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(pairs), generator=generator)
        total = torch.zeros((), device=device)
        n_batches = 0
        step.begin_epoch()
        for b in range(0, len(order), cfg.batch_size):
            idx = order[b : b + cfg.batch_size]
            if len(idx) < shard.world:
                continue  # at most world-1 pairs an epoch: every rank needs a share of a step
            batch = pairs[idx]
            users, pos = batch[:, 0], batch[:, 1]
            neg = sample_negatives(users, split.n_items, indptr, indices, generator=generator)
            if shard.world > 1:
                users, pos, neg = (t.tensor_split(shard.world)[shard.rank] for t in (users, pos, neg))
            step_graph, node_degree = step.graph_for(users, pos, neg)
            users, pos, neg = (to_device(t, device) for t in (users, pos, neg))
            with amp:
                user_emb, item_emb = forward(step_graph, node_degree)
                loss = model.loss(user_emb.float(), item_emb.float(), users, pos, neg, weight_decay=cfg.weight_decay)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()  # no .item() here: no host sync inside the inner loop
            n_batches += 1
        logs: dict[str, Any] = {"epoch": epoch, "loss": float(total) / max(n_batches, 1)}
        logs.update(step.epoch_logs(n_batches))
        logs["train_seconds"] = time.perf_counter() - t0
        score = valid_fn(model) if epoch % cfg.eval_every == 0 or epoch == cfg.epochs else None
        if stopping.end_epoch(epoch, logs, score, t0):
            break
    stopping.restore_best()
    for cb in callbacks:
        cb.on_train_end(stopping.summary())
    return result


def _negative_csr(split: SplitData) -> tuple[Tensor, Tensor]:
    # Negatives are drawn among items without a *training* interaction, never valid/test ones.
    train_csr = split.matrix("train")
    train_csr.sort_indices()
    return torch.as_tensor(train_csr.indptr, dtype=torch.long), torch.as_tensor(train_csr.indices, dtype=torch.long)
