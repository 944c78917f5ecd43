"""Data-parallel pieces of the epoch loop (DistributedDataParallel); no argument parsing here.

Every rank builds the same model and draws the same permutation and negatives; each BPR batch is
cut into one share per rank (:class:`~engine.training.trainer.Shard`), DDP averages gradients
after every backward pass, so the ranks hold identical weights throughout. Rank 0 validates and
broadcasts its score, so every rank takes the same early-stopping decision. Backend: ``nccl`` on
CUDA, ``gloo`` on CPU. The runner (prepare, train, save on rank 0) and its ``torchrun`` entry
point are :mod:`engine.commands.ddp`.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine.config import RunConfig
from engine.models.base import EmbeddingModel
from engine.training.trainer import Shard, ValidFn


def process_shard() -> Shard:
    """This process's rank and the world size of the initialised process group."""
    return Shard(dist.get_rank(), dist.get_world_size())


def wrap(forward: nn.Module, device: torch.device) -> nn.Module:
    """``forward`` under DistributedDataParallel, without per-step buffer broadcasts."""
    # Buffers (frozen text features) never change: synced once at construction, not every step.
    # torch >= 2.13 spells this forward_sync_buffers; older releases broadcast_buffers.
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(forward, device_ids=device_ids, **{no_sync: False})


def broadcast_score(valid_fn: ValidFn | None, device: torch.device) -> ValidFn:
    """A valid_fn every rank calls: rank 0 validates, the others receive its score."""

    def fn(model: EmbeddingModel) -> float:
        value = torch.zeros(1, dtype=torch.float64, device=device)
        if dist.get_rank() == 0:
            if valid_fn is None:
                raise ValueError("rank 0 needs a valid_fn to validate with")
            value.fill_(float(valid_fn(model)))
        dist.broadcast(value, src=0)
        return float(value)

    return fn


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> str:
    """Join the process group (torchrun's environment, or an explicit rendezvous); returns the backend.

    Args:
        backend: ``"gloo"`` or ``"nccl"`` (default: nccl with CUDA, else gloo).
        init_method: rendezvous URL, e.g. ``file://...`` (default: torchrun's environment variables).
        rank: this process's rank, with ``init_method`` (default: None).
        world_size: number of processes, with ``init_method`` (default: None).
    """
    local_rank = int(os.environ.get("LOCAL_RANK", rank or 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    kwargs: dict[str, Any] = {"backend": backend}
    if init_method is not None:
        kwargs.update(init_method=init_method, rank=rank, world_size=world_size)
    dist.init_process_group(**kwargs)
    if not torch.cuda.is_available():
        # Share the cores: N processes with all threads each would oversubscribe the CPU.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return backend


def rank_device_config(config: RunConfig) -> RunConfig:
    """``config`` with ``device="auto"`` pinned to this rank's current CUDA device (unchanged on CPU)."""
    if config.train.device == "auto" and torch.cuda.is_available():
        return config.with_overrides(train={"device": f"cuda:{torch.cuda.current_device()}"})
    return config
