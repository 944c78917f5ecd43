"""Mini-batch BPR training on sampled subgraphs, for graphs too big for a full-graph step.

Full-batch training (:func:`engine.training.loop.fit`) runs the encoder on the whole graph at
every step; its activation memory grows with the edge count (the demo world at ~1M
interactions, 1.43M directed edges: 4.2 GB peak RSS for full-graph steps, 1.8 GB with
neighbour sampling at fanout (15, 10); see ``scripts/bench_scale.py``). Here every step runs
the encoder only on the sampled neighbourhood of the batch's users, positive and negative
items (:mod:`engine.training.sampler`), with the full graph's in-degrees so the
degree-corrected propagation keeps its scale. The objective,
negative sampling (items without a *training* interaction), seeding, callbacks and early
stopping on validation NDCG@10 are those of :func:`~engine.training.loop.fit`; validation
computes full-graph embeddings layer by layer in chunks of edges, with no autograd graph.

:func:`choose_mode` picks full-batch or mini-batch by graph size; :func:`fit_auto` dispatches.
The same loop serves :mod:`engine.training.distributed` (``distributed=True``): each rank
takes a shard of every batch and DistributedDataParallel averages the gradients.

On CUDA the inner loop does not synchronise with the host for bookkeeping: the loss is
accumulated on the device, index tensors travel through pinned memory with
``non_blocking=True``, and bf16 autocast is on when ``cfg.amp``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from engine.config import TrainConfig
from engine.data.graph import RecGraph
from engine.data.split import I, SplitData, U
from engine.models.base import EmbeddingModel
from engine.models.losses import sample_negatives
from engine.training.callbacks import Callback
from engine.training.device import resolve_device, seed_everything
from engine.training.loop import TrainResult, ValidFn, default_valid_fn, fit
from engine.training.sampler import full_degrees, make_sampler
from engine.training.stopping import EarlyStopping

log = logging.getLogger(__name__)

MODES = ("auto", "full", "minibatch")
# Above this many directed edges "auto" samples: a full-graph step's memory grows with the edges
# (1.43M edges: 4.2 GB peak RSS on CPU, vs 1.8 GB sampled), while on small graphs (ml-100k:
# 134k edges) a full-graph step is cheap and sampling only adds noise.
MINIBATCH_EDGES = 1_000_000
DEFAULT_FANOUT = (15, 10)
# Edges per chunk of the no-grad layer-wise forward: bounds its peak to roughly
# chunk_edges * (embedding_dim + 4 * heads) * 4 bytes (~150 MB at 64-d, 4 heads).
CHUNK_EDGES = 1 << 19


def supports_minibatch(model: nn.Module) -> bool:
    """True for models whose encoder can run on a subgraph with full-graph degrees."""
    from engine.models.gat import GraphRecommender

    return isinstance(model, GraphRecommender)


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
        raise ValueError(f"mini-batch training needs the graph recommender (got {type(model).__name__})")
    return mode


# ----------------------------------------------------------------- layer-wise inference


class LayerwiseInference:
    """Full-graph final embeddings of a :class:`GraphRecommender`, one layer at a time, no grad.

    Each layer is applied to chunks of destination nodes (all incoming edges of a node in the
    same chunk, so each softmax is complete), which bounds peak memory by ``chunk_edges``
    instead of the edge count. Results equal ``model(graph)`` up to float rounding. Models
    other than the attention encoder are simply run whole under ``no_grad``.

    Args:
        graph: the graph to encode (users, items; category nodes are ignored).
        chunk_edges: edges per chunk (default: 524,288).
    """

    def __init__(self, graph: RecGraph, *, chunk_edges: int = CHUNK_EDGES) -> None:
        if chunk_edges < 1:
            raise ValueError(f"chunk_edges must be >= 1 (got {chunk_edges!r})")
        self.graph = graph
        n_ui = graph.n_users + graph.n_items
        ei, attr = graph.edge_index, graph.edge_attr
        keep = (ei < n_ui).all(0)
        ei, attr = ei[:, keep], attr[keep]
        order = torch.sort(ei[1], stable=True).indices
        self.edge_index, self.edge_attr = ei[:, order], attr[order]
        self.degree = torch.bincount(self.edge_index[1], minlength=n_ui)
        rowptr = torch.cat([self.degree.new_zeros(1), torch.cumsum(self.degree, 0)])
        n_edges = int(rowptr[-1])
        bounds = [0, n_edges]
        if n_edges > chunk_edges:
            # Cut at node boundaries so that every node's incoming edges share a chunk.
            targets = torch.arange(chunk_edges, n_edges, chunk_edges, device=rowptr.device)
            bounds += rowptr[torch.searchsorted(rowptr, targets)].tolist()
        self.bounds = sorted(set(bounds))

    @torch.no_grad()
    def __call__(self, model: EmbeddingModel) -> tuple[Tensor, Tensor]:
        was_training = model.training
        model.eval()
        try:
            if not (supports_minibatch(model) and model.encoder == "gat"):
                # GCNConv normalises by degrees it computes from the edges it is given, so it
                # cannot be chunked this way; these encoders are light enough to run whole.
                return model(self.graph)
            x = _layer0(model, self.degree)
            weights = model.layer_weights()
            total = x * weights[0]
            for layer, conv in enumerate(model.convs, start=1):
                out = torch.zeros_like(x)
                for start, end in zip(self.bounds[:-1], self.bounds[1:], strict=True):
                    part, _ = conv(x, self.edge_index[:, start:end], self.edge_attr[start:end], None, self.degree)
                    out += part
                total += out * weights[layer]
                x = out
            return total[: model.n_users], total[model.n_users :]
        finally:
            model.train(was_training)


def _layer0(model: Any, degree: Tensor) -> Tensor:
    # Mirrors GraphRecommender.encode: items without training edges keep only their content
    # features. tests/engine/test_minibatch.py checks this against model(graph).
    users, ids, text, cats = model.layer0_parts()
    has_edges = (degree[model.n_users :] > 0).unsqueeze(-1)
    return torch.cat([users, torch.where(has_edges, ids, torch.zeros_like(ids)) + text + cats])


def full_embeddings(model: EmbeddingModel, graph: RecGraph, *, chunk_edges: int = CHUNK_EDGES) -> tuple[Tensor, Tensor]:
    """Final ``(users, items)`` embeddings on ``graph`` with bounded memory (see :class:`LayerwiseInference`)."""
    return LayerwiseInference(graph, chunk_edges=chunk_edges)(model)


def layerwise_valid_fn(split: SplitData, graph: RecGraph, *, chunk_edges: int = CHUNK_EDGES) -> ValidFn:
    """Validation NDCG@10 (full ranking) with embeddings from :class:`LayerwiseInference`."""
    from engine.evaluation.ranking import evaluate

    infer = LayerwiseInference(graph, chunk_edges=chunk_edges)

    def fn(model: EmbeddingModel) -> float:
        model.set_cached_embeddings(*infer(model))
        return float(evaluate(model, split, "valid", ks=(10,)).overall["ndcg@10"])

    return fn


# ------------------------------------------------------------------------- training


class _Encode(nn.Module):
    """``forward(graph, node_degree) -> (user_emb, item_emb)``: the unit DDP wraps."""

    def __init__(self, model: EmbeddingModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, graph: RecGraph, node_degree: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if node_degree is None:
            return self.model(graph)
        user_emb, item_emb, _ = self.model.encode(graph, node_degree=node_degree)
        return user_emb, item_emb


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    if device.type != "cuda":
        return t
    # Pinned memory makes the copy asynchronous: the host keeps queueing work.
    return t.pin_memory().to(device, non_blocking=True)


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
    fanout: Sequence[int] | None = DEFAULT_FANOUT,
    callbacks: Sequence[Callback] = (),
    valid_fn: ValidFn | None = None,
    pairs: Tensor | None = None,
    distributed: bool = False,
    sampler_backend: str = "auto",
    chunk_edges: int = CHUNK_EDGES,
) -> TrainResult:
    """Train ``model`` in place with BPR on sampled subgraphs and early stopping.

    Args:
        model: a :class:`~engine.models.gat.GraphRecommender` (any :class:`EmbeddingModel`
            when ``fanout`` is None).
        graph: the training graph (built from ``split.train`` only).
        split: supplies training pairs, the negative-sampling CSR and validation.
        cfg: optimiser, batch, early stopping, device and AMP settings (as for ``fit``).
        fanout: incoming edges sampled per node per hop, one entry per layer (default:
            ``(15, 10)``); None runs every step on the full graph (what ``fit`` does; the
            distributed full-batch mode).
        callbacks: progress / logging hooks (default: none).
        valid_fn: model -> validation NDCG@10 (default: full ranking on ``split.valid`` with
            layer-wise embeddings).
        pairs: training (user, item) pairs [P, 2] (default: ``split.train``).
        distributed: run under an initialised ``torch.distributed`` process group: each rank
            takes its share of every batch, DDP averages gradients, rank 0 validates and
            broadcasts the score so every rank stops together (default: False).
        sampler_backend: ``"auto"``, ``"torch"`` or ``"pyg"`` (default: ``"auto"``).
        chunk_edges: edges per chunk of the layer-wise validation forward (default: 524,288).

    Returns:
        A :class:`~engine.training.loop.TrainResult`; the model holds the best weights and
        (on rank 0) cached full-graph embeddings. Curve entries add ``train_seconds`` (the
        epoch without validation) and, when sampling, ``edges_per_step`` and ``exact_seeds``
        (share of seed nodes whose embedding was exact).
    """
    import torch.distributed as dist

    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = resolve_device(cfg.device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    gen = seed_everything(cfg.seed)  # permutation and negatives: identical on every rank
    model.to(device)
    cpu_graph = graph.cpu()
    graph = graph.to(device)
    if pairs is None:
        pairs = torch.as_tensor(split.train[[U, I]].to_numpy(), dtype=torch.long)
    train_csr = split.matrix("train")
    train_csr.sort_indices()
    indptr = torch.as_tensor(train_csr.indptr, dtype=torch.long)
    indices = torch.as_tensor(train_csr.indices, dtype=torch.long)
    sampler, node_degree = None, None
    if fanout is not None:
        if not supports_minibatch(model):
            raise ValueError(f"neighbour sampling needs the graph recommender (got {type(model).__name__})")
        fanout = _fit_fanout(fanout, model.num_layers)
        sampler = make_sampler(cpu_graph, fanout, backend=sampler_backend, seed=cfg.seed)
        node_degree = full_degrees(graph)
    sample_gen = torch.Generator().manual_seed(cfg.seed + 7919 * (rank + 1))
    if valid_fn is None and rank == 0:
        valid_fn = (
            layerwise_valid_fn(split, graph, chunk_edges=chunk_edges)
            if supports_minibatch(model)
            else default_valid_fn(split, graph)
        )
    forward: nn.Module = _Encode(model)
    if distributed:
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # Buffers (frozen text features) never change: synced once at construction, not every step.
        # torch >= 2.13 spells this forward_sync_buffers; older releases broadcast_buffers.
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        forward = DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None, **{no_sync: False}
        )
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
        n_batches, n_edges, n_exact, n_seeds = 0, 0, 0, 0
        for b in range(0, len(order), cfg.batch_size):
            idx = order[b : b + cfg.batch_size]
            if len(idx) < world:
                continue  # at most world-1 pairs an epoch: every rank needs a share of a step
            batch = pairs[idx]
            users, pos = batch[:, 0], batch[:, 1]
            neg = sample_negatives(users, split.n_items, indptr, indices, generator=gen)
            if world > 1:
                users, pos, neg = (t.tensor_split(world)[rank] for t in (users, pos, neg))
            if sampler is not None:
                seeds = torch.cat([users, pos + split.n_users, neg + split.n_users])
                sub = sampler.sample(seeds, generator=sample_gen)
                step_graph = sub.subgraph(graph)
                n_edges += sub.num_edges
                n_exact += int(sub.exact.sum())
                n_seeds += int(sub.seeds.numel())
            else:
                step_graph = graph
            users, pos, neg = (_to_device(t, device) for t in (users, pos, neg))
            with amp:
                user_emb, item_emb = forward(step_graph, node_degree)
                loss = model.loss(user_emb.float(), item_emb.float(), users, pos, neg, weight_decay=cfg.weight_decay)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()  # no .item(): no host sync inside the inner loop
            n_batches += 1
        logs: dict[str, Any] = {"epoch": epoch, "loss": float(total) / max(n_batches, 1)}
        if sampler is not None:
            logs["edges_per_step"] = n_edges / max(n_batches, 1)
            logs["exact_seeds"] = n_exact / max(n_seeds, 1)
        logs["train_seconds"] = time.perf_counter() - t0
        evaluate_now = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
        score = _valid_score(valid_fn, model, distributed, device) if evaluate_now else None
        if stopping.end_epoch(epoch, logs, score, t0):
            break
    stopping.restore_best()
    if rank == 0:
        model.set_cached_embeddings(*LayerwiseInference(graph, chunk_edges=chunk_edges)(model))
    for cb in callbacks:
        cb.on_train_end({"best_epoch": result.best_epoch, "best_valid": result.best_valid})
    return result


def _valid_score(valid_fn: ValidFn | None, model: EmbeddingModel, distributed: bool, device: torch.device) -> float:
    """Rank 0 validates; the score is broadcast so every rank takes the same decisions."""
    if not distributed:
        assert valid_fn is not None
        return float(valid_fn(model))
    import torch.distributed as dist

    value = torch.zeros(1, dtype=torch.float64, device=device)
    if dist.get_rank() == 0:
        assert valid_fn is not None
        value.fill_(float(valid_fn(model)))
    dist.broadcast(value, src=0)
    return float(value)


def fit_auto(
    model: EmbeddingModel,
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    mode: str = "auto",
    fanout: Sequence[int] = DEFAULT_FANOUT,
    callbacks: Sequence[Callback] = (),
    valid_fn: ValidFn | None = None,
) -> TrainResult:
    """Full-batch :func:`~engine.training.loop.fit` or :func:`fit_minibatch`, by :func:`choose_mode`.

    Args:
        model / graph / split / cfg / callbacks / valid_fn: as for ``fit``.
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
