"""What a model is built from: data -> split -> features -> graph -> a fresh model, and its card.

Readable top to bottom: :func:`prepare` loads, splits, encodes item text and builds the
training graph; :func:`make_model` constructs the configured model (its initial weights depend
only on the training seed); :func:`train_model` fits it; :func:`model_card` summarises it. The
one path from a config or a stored artifact to a ready :class:`engine.recommender.Recommender`
is :mod:`engine.pipeline`, above this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine import __version__
from engine.artifacts.fingerprint import fingerprint
from engine.artifacts.store import ArtifactRef
from engine.config import RunConfig
from engine.data.graph import RecGraph, build_graph, category_matrix
from engine.data.registry import load_configured
from engine.data.schema import CATEGORIES, Dataset
from engine.data.split import SplitData, split
from engine.evaluation.validation import valid_fn_for
from engine.features.text import TextFeatures, encode_items
from engine.models.base import EmbeddingModel, FittedModel
from engine.models.registry import build_model, model_names, model_spec
from engine.training.callbacks import Callback
from engine.training.device import resolve_device, seed_everything
from engine.training.minibatch import choose_mode, fit_auto
from engine.training.result import TrainResult

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("data/cache")
# JSON documents of an artifact version made by `gatlens update` (engine.update.apply writes them).
UPDATE_FILE = "update"  # the appended rows, cumulative since the first version
CHANGES_FILE = "changes"  # what_changed rows


@dataclass
class Prepared:
    """Everything derived from the data before a model exists."""

    config: RunConfig
    dataset: Dataset
    split: SplitData
    graph: RecGraph
    text: TextFeatures
    categories: torch.Tensor  # [n_items, C] multi-hot, aligned with split.idmap.items
    category_names: list[str]
    data_hash: str

    @property
    def item_frame(self) -> pd.DataFrame:
        """Items table re-indexed to internal item order."""
        return self.dataset.items.set_index("item_id").loc[list(self.split.idmap.items)].reset_index()


def load_data(config: RunConfig) -> Dataset:
    """Load the dataset named by the config (validation errors propagate)."""
    return load_configured(config.data)  # the csv options (--columns, --encoding, --name) too


def split_data(config: RunConfig, dataset: Dataset) -> SplitData:
    """The train / valid / test split the config's data section asks for (split errors propagate)."""
    d = config.data
    return split(
        dataset,
        method=d.split,
        ratios=d.ratios,
        threshold=d.threshold,
        kcore_k=d.kcore,
        seed=d.seed,
        time_cut=d.time_cut,
    )


def prepare(
    config: RunConfig, *, dataset: Dataset | None = None, cache_dir: Path = DEFAULT_CACHE, progress: bool = False
) -> Prepared:
    """Load, split, encode item text and build the training graph."""
    spec = model_spec(config.model.name)  # an unregistered name fails here, before any data work
    ds = dataset if dataset is not None else load_data(config)
    sp = split_data(config, ds)
    items = ds.items.set_index("item_id").loc[list(sp.idmap.items)].reset_index()
    needs_text = config.features.text and spec.capabilities.text_features
    text = encode_items(
        items,
        model=config.features.text_model,
        cache_dir=cache_dir / "text",
        show_progress=progress,
        enabled=needs_text,
    )
    cats, names = category_matrix(list(items[CATEGORIES]))
    graph = build_graph(sp)
    return Prepared(config, ds, sp, graph, text, cats, names, ds.content_hash())


def make_model(prep: Prepared) -> EmbeddingModel | FittedModel:
    """A fresh, untrained model for ``prep``; its initial weights depend only on ``train.seed``."""
    cfg = prep.config
    # Seed here, not only in the training loop: initial weights drawn from whatever state the
    # global RNG was left in made two trainings of one config differ (0.26 vs 0.27 test NDCG@10).
    seed_everything(cfg.train.seed)
    text = None if prep.text.embeddings is None else torch.from_numpy(prep.text.embeddings)
    cats = prep.categories if (cfg.features.categories and prep.category_names) else None
    return build_model(
        cfg.model,
        prep.split.n_users,
        prep.split.n_items,
        text_features=text,
        category_features=cats,
        item_degree=torch.from_numpy(prep.split.item_counts()),
    )


def config_fingerprint(prep: Prepared) -> str:
    text_weights = prep.text.info.weights_sha256 if prep.text.info else None
    return stored_fingerprint(prep.config, prep.data_hash, text_weights)


def stored_fingerprint(config: RunConfig, data_hash: str, text_weights: str | None) -> str:
    """The fingerprint ``config`` gives today for data of hash ``data_hash`` and these text-encoder weights.

    What :func:`config_fingerprint` computes from a prepared run; from a stored model's config and
    model card it says, without loading any data, whether the engine (its version, the model's
    revision) still gives the stored fingerprint.
    """
    extra: dict[str, Any] = {"text_weights": text_weights}
    revision = model_spec(config.model.name).revision
    if revision:  # only where set, so every other model keeps the fingerprints it had
        extra["model_revision"] = revision
    return fingerprint({**config.fingerprint_dict(), **extra}, data_hash, __version__)


def train_model(
    prep: Prepared, *, callbacks: Sequence[Callback] = ()
) -> tuple[EmbeddingModel | FittedModel, TrainResult]:
    """Fit a fresh model on ``prep`` (trained models through the BPR loop, validated for early stopping)."""
    model = make_model(prep)
    if isinstance(model, EmbeddingModel):
        cfg = prep.config.train
        spec = model_spec(prep.config.model.name)
        own_fit = spec.fit  # a model's own recipe, else the shared loop
        if cfg.mode == "minibatch" and not spec.capabilities.minibatch:
            able = ", ".join(n for n in model_names() if model_spec(n).capabilities.minibatch)
            raise ValueError(
                f"model {spec.name!r} does not train on sampled mini-batches (models that do: {able}); "
                "use --mode auto or full"
            )
        mode = "full" if own_fit is not None else choose_mode(prep.graph, mode=cfg.mode, model=model)
        graph = prep.graph.to(resolve_device(cfg.device))  # validation runs where the model trains
        valid_fn = valid_fn_for(model, prep.split, graph, mode=mode)
        if own_fit is not None:
            result = own_fit(model, graph, prep.split, prep.config, valid_fn=valid_fn, callbacks=callbacks)
        else:
            result = fit_auto(model, graph, prep.split, cfg, mode=mode, valid_fn=valid_fn, callbacks=callbacks)
        model.cpu()
        model.cache_embeddings(prep.graph.cpu())
        return model, result
    t0 = time.perf_counter()
    model.fit(prep.split)
    return model, TrainResult(epochs=0, seconds=time.perf_counter() - t0, device="cpu")


def model_card(
    prep: Prepared,
    model: EmbeddingModel | FittedModel,
    result: TrainResult,
    test: dict[str, float],
    valid: dict[str, float],
) -> dict[str, Any]:
    """The JSON summary the CLI prints and the dashboard's model card shows."""
    n_params = sum(p.numel() for p in model.parameters()) if isinstance(model, EmbeddingModel) else None
    trainable = (
        sum(p.numel() for p in model.parameters() if p.requires_grad) if isinstance(model, EmbeddingModel) else None
    )
    info = prep.text.info
    return {
        "model": prep.config.model.name,
        "description": repr(model),
        "config": prep.config.to_dict(),
        "parameters": n_params,
        "trainable_parameters": trainable,
        "language_model": {
            "note": prep.text.note,
            "model_id": info.model_id if info else None,
            "source": info.source if info else None,
            "weights_sha256": info.weights_sha256 if info else None,
            "dim": info.dim if info else None,
        },
        "data": {
            "dataset": prep.dataset.name,
            "content_hash": prep.data_hash,
            "users": prep.split.n_users,
            "items": prep.split.n_items,
            "train": len(prep.split.train),
            "valid": len(prep.split.valid),
            "test": len(prep.split.test),
        },
        "training": {
            "device": result.device,
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "best_valid_ndcg@10": None if not np.isfinite(result.best_valid) else result.best_valid,
            "seconds": round(result.seconds, 2),
            "stopped_early": result.stopped_early,
            # a staged fit's closed-form choices (gat: relation form and ridge, weights, taste weight)
            "choices": getattr(model, "fit_report", None),
        },
        "metrics": {f"test_{k}": v for k, v in test.items()} | {f"valid_{k}": v for k, v in valid.items()},
        "engine_version": __version__,
    }


def artifact_ref_str(ref: ArtifactRef) -> str:
    return f"{ref.dataset}/{ref.fingerprint[:16]}/v{ref.version}"
