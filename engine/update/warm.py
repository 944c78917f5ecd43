"""Warm-start a model sized for the grown id map from the old weights, then train a few epochs.

New users start at the mean layer-0 representation of the items they interacted with, new items
at a zero id embedding, so their language-model text features and categories place them. The best
of the warm start and each epoch by validation NDCG@10 is kept.

A model with a closed-form part (``fit_relation``, the default ``gat``) refits it on the merged
interactions with its stored ridge, so new interactions reach the item-item relation at once;
its taste part trains the few epochs (the staged fit's first stage), its learned weights
(interaction weights, taste weight) are kept.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from engine.assembly import (
    Prepared,
    make_model,
)
from engine.config import TrainConfig
from engine.data.split import I, U
from engine.evaluation.validation import default_valid_fn, valid_fn_for
from engine.models.base import EmbeddingModel
from engine.training.callbacks import Callback
from engine.training.device import resolve_device
from engine.training.loop import TrainResult, fit
from engine.training.minibatch import LayerwiseInference, fit_auto
from engine.training.staged import taste_on_minibatches

log = logging.getLogger(__name__)


def _tables(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    for user, item in (("user_emb", "item_emb"), ("user_embedding", "item_embedding")):
        if hasattr(model, user) and hasattr(model, item):
            return getattr(model, user).weight, getattr(model, item).weight
    return None


@torch.no_grad()
def warm_start(old: EmbeddingModel, prep: Prepared) -> EmbeddingModel:
    """A model sized for ``prep``'s id map, initialised from ``old``.

    Every tensor is copied; tables that grew (user and item embeddings, text and category
    buffers) keep their old rows. New item rows of the id embedding are zero, so a new item
    starts from its content features (text, categories); a new user starts at the mean
    layer-0 representation of their training items (zero without any).
    """
    model = make_model(prep)
    state = model.state_dict()
    refitted = set(getattr(model, "refitted_buffers", ()))  # refitted on the new data, not copied
    for name, value in old.state_dict().items():
        target = state.get(name)
        if target is None:
            raise ValueError(f"warm start: {name!r} is not a tensor of the new model")
        if name == "item_degree" or name in refitted:  # data, not learned: the new model has the current ones
            continue
        if target.shape == value.shape:
            target.copy_(value)
        elif target.dim() and target.shape[1:] == value.shape[1:] and target.size(0) >= value.size(0):
            if name not in ("text", "cats"):  # content buffers are already complete in the new model
                target[: value.size(0)].copy_(value)
                target[value.size(0) :].zero_()
        else:
            raise ValueError(f"warm start: {name!r} changed shape {tuple(value.shape)} -> {tuple(target.shape)}")
    model.load_state_dict(state)
    tables = _tables(model)
    n_old = old.n_users
    if tables is not None and model.n_users > n_old:
        user_w, item_w = tables
        reps = model.item_inputs() if hasattr(model, "item_inputs") else item_w
        train = prep.split.train
        rows = train[train[U] >= n_old]
        u = torch.tensor(rows[U].to_numpy() - n_old)
        i = torch.tensor(rows[I].to_numpy())
        sums = reps.new_zeros(model.n_users - n_old, reps.size(1)).index_add_(0, u, reps[i])
        counts = torch.bincount(u, minlength=model.n_users - n_old).clamp_min(1).unsqueeze(1)
        user_w[n_old:] = sums / counts
    return model


def train_warm(
    old: EmbeddingModel, prep: Prepared, *, epochs: int, lr: float | None, mode: str, callbacks: Sequence[Callback]
) -> tuple[EmbeddingModel, TrainResult, float]:
    cfg = prep.config.train
    cfg = replace(cfg, epochs=epochs, patience=epochs, eval_every=1, lr=cfg.lr if lr is None else lr)
    model = warm_start(old, prep)
    if hasattr(model, "fit_relation"):
        return _train_warm_relation(model, old, prep, cfg, callbacks, mode=mode)
    device = resolve_device(cfg.device)
    model.to(device)
    graph = prep.graph.to(device)
    # layer-wise for the graph recommender whatever the mode (bounded memory), as before subgraph_encoder
    # covered ItemGAT too; valid_fn_for's "minibatch" rule is exactly that
    valid_fn = valid_fn_for(model, prep.split, graph, mode="minibatch")
    t0 = time.perf_counter()
    start_valid = float(valid_fn(model))
    start_state = copy.deepcopy(model.state_dict())
    result = fit_auto(model, prep.graph, prep.split, cfg, mode=mode, valid_fn=valid_fn, callbacks=callbacks)
    if start_valid >= result.best_valid:
        # The warm start itself validated best: a few epochs can overshoot on small updates.
        model.load_state_dict(start_state)
        result.best_epoch, result.best_valid = 0, start_valid
    result.seconds = time.perf_counter() - t0
    model.cpu()
    model.set_cached_embeddings(*LayerwiseInference(prep.graph.cpu())(model))
    return model, result, start_valid


def _train_warm_relation(
    model: EmbeddingModel,
    old: EmbeddingModel,
    prep: Prepared,
    cfg: TrainConfig,
    callbacks: Sequence[Callback],
    *,
    mode: str = "auto",
) -> tuple[EmbeddingModel, TrainResult, float]:
    """The update of a model with a closed-form relation: taste epochs, the relation refitted, the better kept.

    The taste part trains first, with no relation fitted yet (so early stopping's snapshots
    copy no ``I x I`` state); then the relation is refitted on the merged interactions with the
    stored ridge, and the warm-started taste is validated against the trained one with it.
    """
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    model.to(device)
    graph = prep.graph.to(device)
    valid_fn = default_valid_fn(prep.split, graph)
    warm = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.use_graph(graph)
    model.stage = "taste"  # the staged fit's first stage: BPR on the taste part alone
    if mode == "minibatch":  # as in training: sampled subgraphs only on request
        result = taste_on_minibatches(graph, prep.split, cfg, valid_fn=valid_fn, callbacks=callbacks)(model)
    else:
        result = fit(model, graph, prep.split, cfg, valid_fn=valid_fn, callbacks=callbacks)
    model.stage = "attention"
    # new interactions reach S now, in the form and with the ridge the training chose
    model.fit_relation(graph, l2=float(old.relation_l2), sources=int(old.relation_sources))
    best_valid = float(valid_fn(model))
    trained = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(warm[k])
    start_valid = float(valid_fn(model))
    if start_valid >= best_valid:  # the warm start (old taste, refitted relation) validated best
        result.best_epoch, best_valid = 0, start_valid
    else:
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(trained[k])
    result.best_valid = best_valid
    result.seconds = time.perf_counter() - t0
    model.cpu()
    model.cache_embeddings(prep.graph.cpu())
    return model, result, start_valid
