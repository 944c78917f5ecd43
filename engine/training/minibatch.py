"""Mini-batch BPR training on sampled subgraphs, for graphs too big for a full-graph step.

Full-batch training (:func:`engine.training.loop.fit`) runs the encoder on the whole graph at
every step; its activation memory grows with the edge count (the demo world at ~1M
interactions, 1.43M directed edges: 4.2 GB peak RSS for full-graph steps, 1.8 GB with
neighbour sampling at fanout (15, 10); see ``scripts/bench_scale.py``). Here every step runs
the encoder only on the sampled neighbourhood of the batch's users, positive and negative
items (:mod:`engine.training.sampler`), with the full graph's in-degrees so the
degree-corrected propagation keeps its scale. The epoch loop, objective, negative sampling,
seeding, callbacks and early stopping are :func:`engine.training.trainer.train_epochs`, shared
with ``fit``; final embeddings come from :class:`~engine.training.inference.LayerwiseInference`.

:func:`choose_mode` picks full-batch or mini-batch by graph size; :func:`fit_auto` dispatches.
The same loop serves data-parallel training (``distributed=True``, see
:mod:`engine.training.distributed`): each rank takes a shard of every batch and
DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from engine.config import TrainConfig
from engine.data.graph import RecGraph
from engine.data.split import SplitData
from engine.models.base import EmbeddingModel
from engine.training import distributed as ddp
from engine.training.callbacks import Callback
from engine.training.device import resolve_device, seed_everything
from engine.training.inference import CHUNK_EDGES, LayerwiseInference, supports_minibatch
from engine.training.inference import full_embeddings as full_embeddings  # re-exported
from engine.training.loop import fit
from engine.training.result import TrainResult
from engine.training.sampler import full_degrees, make_sampler
from engine.training.trainer import Encode, FullGraphStep, Shard, ValidFn, train_epochs, training_pairs

log = logging.getLogger(__name__)

__all__ = [
    "CHUNK_EDGES",
    "DEFAULT_FANOUT",
    "MINIBATCH_EDGES",
    "MODES",
    "LayerwiseInference",
    "choose_mode",
    "fit_auto",
    "fit_minibatch",
    "full_embeddings",
    "supports_minibatch",
    "with_epochs",
]

MODES = ("auto", "full", "minibatch")
# Above this many directed edges "auto" samples: a full-graph step's memory grows with the edges
# (1.43M edges: 4.2 GB peak RSS on CPU, vs 1.8 GB sampled), while on small graphs (ml-100k:
# 134k edges) a full-graph step is cheap and sampling only adds noise.
MINIBATCH_EDGES = 1_000_000
DEFAULT_FANOUT = (15, 10)


def choose_mode(
    graph: RecGraph, *, mode: str = "auto", model: nn.Module | None = None, threshold: int = MINIBATCH_EDGES
) -> str:
    """``"full"`` or ``"minibatch"`` training for ``graph``.

    Args:
        graph: the training graph.
        mode: ``"auto"`` (mini-batch above ``threshold`` directed edges), ``"full"`` or
            ``"minibatch"`` to override (default: ``"auto"``).
        model: when given, ``"auto"`` falls back to full-batch for models without a
            subgraph encoder (LightGCN and BPR-MF fit in memory at these sizes) (default: None).
        threshold: directed-edge count above which ``"auto"`` samples (default: 1,000,000).

    Raises:
        ValueError: an unknown ``mode``, or ``"minibatch"`` for a model that cannot sample.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (got {mode!r})")
    if mode == "auto":
        mode = "minibatch" if graph.num_edges > threshold else "full"
        if mode == "minibatch" and model is not None and not supports_minibatch(model):
            mode = "full"
    elif mode == "minibatch" and model is not None and not supports_minibatch(model):
        raise ValueError(
            "mini-batch training needs a model with a subgraph encoder, such as the graph recommender "
            f"(got {type(model).__name__})"
        )
    return mode


class SampledStep:
    """Every step runs the encoder on the sampled neighbourhood of the batch's users and items.

    Args:
        graph: the training graph on the training device.
        sampler: a neighbour sampler over the CPU copy of ``graph``.
        n_users: users in the split (item node ids are offset by it).
        generator: the CPU generator the sampler draws from (per rank).
    """

    def __init__(self, graph: RecGraph, sampler: Any, n_users: int, generator: torch.Generator) -> None:
        self.graph, self.sampler, self.n_users, self.generator = graph, sampler, n_users, generator
        # Full-graph in-degrees: the degree-corrected propagation keeps its scale on a subgraph.
        self.node_degree = full_degrees(graph)
        self.n_edges = self.n_exact = self.n_seeds = 0

    def begin_epoch(self) -> None:
        self.n_edges = self.n_exact = self.n_seeds = 0

    def graph_for(self, users: Tensor, pos: Tensor, neg: Tensor) -> tuple[RecGraph, Tensor | None]:
        seeds = torch.cat([users, pos + self.n_users, neg + self.n_users])
        sub = self.sampler.sample(seeds, generator=self.generator)
        self.n_edges += sub.num_edges
        self.n_exact += int(sub.exact.sum())
        self.n_seeds += int(sub.seeds.numel())
        return sub.subgraph(self.graph), self.node_degree

    def epoch_logs(self, n_batches: int) -> dict[str, float]:
        return {
            "edges_per_step": self.n_edges / max(n_batches, 1),
            "exact_seeds": self.n_exact / max(self.n_seeds, 1),
        }


def _fit_fanout(fanout: Sequence[int], num_layers: int) -> tuple[int, ...]:
    fanout = tuple(int(k) for k in fanout)
    if not fanout:
        raise ValueError(f"fanout must name at least one hop (got {fanout!r})")
    if len(fanout) != num_layers:
        log.info("fanout %s adjusted to the model's %d layers", fanout, num_layers)
        fanout = (fanout + (fanout[-1],) * num_layers)[:num_layers]
    return fanout


def fit_minibatch(
    model: EmbeddingModel,
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    valid_fn: ValidFn | None,
    fanout: Sequence[int] | None = DEFAULT_FANOUT,
    callbacks: Sequence[Callback] = (),
    pairs: Tensor | None = None,
    distributed: bool = False,
    sampler_backend: str = "auto",
    chunk_edges: int = CHUNK_EDGES,
) -> TrainResult:
    """Train ``model`` in place with BPR on sampled subgraphs and early stopping.

    Args:
        model: a model with a subgraph encoder (``subgraph_encoder``: the graph recommender, or
            ItemGAT in its taste stage); any :class:`EmbeddingModel` when ``fanout`` is None.
        graph: the training graph (built from ``split.train`` only).
        split: supplies training pairs and the negative-sampling CSR.
        cfg: optimiser, batch, early stopping, device and AMP settings (as for ``fit``).
        valid_fn: model -> validation NDCG@10, e.g. :func:`engine.evaluation.validation.valid_fn_for`
            with ``mode="minibatch"``; None only on ranks other than 0 of a distributed run.
        fanout: incoming edges sampled per node per hop, one entry per layer (default:
            ``(15, 10)``); None runs every step on the full graph (the distributed full-batch mode).
        callbacks: progress / logging hooks (default: none).
        pairs: training (user, item) pairs [P, 2] (default: ``split.train``).
        distributed: run under an initialised ``torch.distributed`` process group: each rank
            takes its share of every batch, DDP averages gradients, rank 0 validates and
            broadcasts the score so every rank stops together (default: False).
        sampler_backend: ``"auto"``, ``"torch"`` or ``"pyg"`` (default: ``"auto"``).
        chunk_edges: edges per chunk of the layer-wise final forward (default: 524,288).

    Returns:
        A :class:`~engine.training.result.TrainResult`; the model holds the best weights and
        (on rank 0) cached full-graph embeddings. Curve entries add ``train_seconds`` (the
        epoch without validation) and, when sampling, ``edges_per_step`` and ``exact_seeds``
        (share of seed nodes whose embedding was exact).
    """
    shard = ddp.process_shard() if distributed else Shard()
    if valid_fn is None and not distributed:
        raise ValueError("fit_minibatch needs a valid_fn (see engine.evaluation.validation.valid_fn_for)")
    device = resolve_device(cfg.device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    gen = seed_everything(cfg.seed)  # permutation and negatives: identical on every rank
    model.to(device)
    cpu_graph = graph.cpu()
    graph = graph.to(device)
    step: SampledStep | FullGraphStep = FullGraphStep(graph)
    if fanout is not None and getattr(model, "num_layers", 1) == 0:
        # No propagation layer reads a neighbour (gat's taste part with --layers 0 is plain MF):
        # there is no neighbourhood to sample, and the "full graph" costs nothing.
        log.info("the model has no propagation layers: mini-batch steps need no sampled neighbourhood")
        fanout = None
    if fanout is not None:
        if not supports_minibatch(model):
            raise ValueError(
                "neighbour sampling needs a model with a subgraph encoder, such as the graph recommender "
                f"(got {type(model).__name__})"
            )
        sampler = make_sampler(cpu_graph, _fit_fanout(fanout, model.num_layers), backend=sampler_backend, seed=cfg.seed)
        sample_gen = torch.Generator().manual_seed(cfg.seed + 7919 * (shard.rank + 1))
        step = SampledStep(graph, sampler, split.n_users, sample_gen)
    forward: nn.Module = Encode(model)
    if distributed:
        forward, valid_fn = ddp.wrap(forward, device), ddp.broadcast_score(valid_fn, device)
    assert valid_fn is not None
    result = train_epochs(
        model,
        split,
        cfg,
        step,
        forward=forward,
        valid_fn=valid_fn,
        device=device,
        generator=gen,
        pairs=training_pairs(split, pairs),
        callbacks=callbacks,
        shard=shard,
    )
    if shard.rank == 0:
        model.set_cached_embeddings(*LayerwiseInference(graph, chunk_edges=chunk_edges)(model))
    return result


def fit_auto(
    model: EmbeddingModel,
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    valid_fn: ValidFn,
    mode: str = "auto",
    fanout: Sequence[int] = DEFAULT_FANOUT,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Full-batch :func:`~engine.training.loop.fit` or :func:`fit_minibatch`, by :func:`choose_mode`.

    Args:
        model / graph / split / cfg / callbacks / valid_fn: as for ``fit``; build ``valid_fn`` for the
            chosen mode (:func:`engine.evaluation.validation.valid_fn_for`).
        mode: ``"auto"``, ``"full"`` or ``"minibatch"`` (default: ``"auto"``).
        fanout: per-hop fanout of mini-batch mode (default: ``(15, 10)``).
    """
    chosen = choose_mode(graph, mode=mode, model=model)
    log.info("training %s on %d directed edges: %s", type(model).__name__, graph.num_edges, chosen)
    if chosen == "full":
        return fit(model, graph, split, cfg, callbacks=callbacks, valid_fn=valid_fn)
    return fit_minibatch(model, graph, split, cfg, fanout=fanout, callbacks=callbacks, valid_fn=valid_fn)


def with_epochs(cfg: TrainConfig, epochs: int, **changes: Any) -> TrainConfig:
    """``cfg`` with ``epochs`` (and any other field) replaced; patience never exceeds epochs."""
    return replace(cfg, epochs=epochs, patience=min(cfg.patience, epochs), **changes)
