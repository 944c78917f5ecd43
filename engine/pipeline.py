"""The recipe, readable top to bottom: data -> split -> features -> graph -> model -> train or load.

``train_or_load(config)`` returns a ready :class:`engine.service.Recommender`. A trained
artifact whose fingerprint (config + dataset content + engine version) matches is loaded
instead of retrained; a corrupt or stale one is detected by the store and rebuilt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import __version__
from engine.artifacts.fingerprint import fingerprint
from engine.artifacts.store import ArtifactRef, ArtifactStore
from engine.config import RunConfig
from engine.data.graph import RecGraph, build_graph, category_matrix
from engine.data.schema import CATEGORIES, Dataset
from engine.data.split import SplitData, split
from engine.features.text import TextFeatures, encode_items
from engine.models.base import EmbeddingModel, FittedModel
from engine.models.registry import build_model
from engine.training.callbacks import Callback
from engine.training.loop import TrainResult
from engine.training.minibatch import fit_auto

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("data/cache")


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
    def item_frame(self) -> Any:
        """Items table re-indexed to internal item order."""
        return self.dataset.items.set_index("item_id").loc[list(self.split.idmap.items)].reset_index()


def load_data(config: RunConfig) -> Dataset:
    """Load the dataset named by the config (validation errors propagate)."""
    from engine.data.registry import load_dataset

    d = config.data
    kwargs: dict[str, Any] = {"seed": d.seed}
    if d.dataset == "demo":
        kwargs["scale"] = d.scale
    return load_dataset(d.dataset, d.data_dir, **kwargs)


def prepare(
    config: RunConfig, *, dataset: Dataset | None = None, cache_dir: Path = DEFAULT_CACHE, progress: bool = False
) -> Prepared:
    """Load, split, encode item text and build the training graph."""
    ds = dataset if dataset is not None else load_data(config)
    d = config.data
    sp = split(
        ds,
        method=d.split,
        ratios=d.ratios,
        threshold=d.threshold,
        kcore_k=d.kcore,
        seed=d.seed,
        time_cut=d.time_cut,
    )
    items = ds.items.set_index("item_id").loc[list(sp.idmap.items)].reset_index()
    needs_text = config.features.text and config.model.name in ("gat", "gcn", "sage")
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
    from engine.training.device import seed_everything

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
    extra = {"text_weights": prep.text.info.weights_sha256 if prep.text.info else None}
    return fingerprint({**prep.config.fingerprint_dict(), **extra}, prep.data_hash, __version__)


def train_model(
    prep: Prepared, *, callbacks: Sequence[Callback] = ()
) -> tuple[EmbeddingModel | FittedModel, TrainResult]:
    """Fit a fresh model on ``prep`` (trained models through the BPR loop)."""
    model = make_model(prep)
    if isinstance(model, EmbeddingModel):
        result = fit_auto(
            model, prep.graph, prep.split, prep.config.train, mode=prep.config.train.mode, callbacks=callbacks
        )
        model.cpu()
        model.cache_embeddings(prep.graph.cpu())
        return model, result
    t0 = time.perf_counter()
    model.fit(prep.split)
    return model, TrainResult(epochs=0, seconds=time.perf_counter() - t0, device="cpu")


def train_or_load(
    config: RunConfig,
    *,
    force: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    cache_dir: Path = DEFAULT_CACHE,
    dataset: Dataset | None = None,
) -> Any:
    """Return a ready Recommender: the cached artifact when valid, else a freshly trained one.

    Args:
        config: the full run configuration.
        force: retrain even when a valid artifact exists (default: False).
        progress: show tqdm bars for text encoding and training (default: False).
        callbacks: extra training callbacks, e.g. the dashboard's progress hook (default: none).
        cache_dir: root of the artifact and feature caches (default: ``data/cache``).
        dataset: an already loaded dataset to use instead of loading by name (default: None).

    Returns:
        :class:`engine.service.Recommender`.
    """
    from engine.evaluation.ranking import evaluate
    from engine.service import Recommender
    from engine.training.callbacks import ProgressBar

    t0 = time.perf_counter()
    prep = prepare(config, dataset=dataset, cache_dir=cache_dir, progress=progress)
    store = ArtifactStore(cache_dir / "models")
    fp = config_fingerprint(prep)
    name = prep.dataset.name
    if not force:
        loaded = store.load(name, fp)
        if loaded is not None:
            from engine.update import recommender_from_artifact  # update imports this module

            # The newest version may come from `gatlens update`: its appended rows are replayed,
            # or new users / items would not fit the stored tables.
            rec = recommender_from_artifact(prep, loaded, cache_dir=cache_dir)
            log.info("loaded cached model %s in %.2fs", loaded.ref.path, time.perf_counter() - t0)
            return rec
    cbs = list(callbacks) + ([ProgressBar(f"train {config.model.name} on {name}")] if progress else [])
    model, result = train_model(prep, callbacks=cbs)
    test = evaluate(model, prep.split, "test")
    valid = evaluate(model, prep.split, "valid")
    meta = model_card(prep, model, result, test.overall, valid.overall)
    tensors = (
        {"model": model.state_dict(), "embeddings": model.cached_embeddings()}
        if isinstance(model, EmbeddingModel)
        else {}
    )
    ref = store.save(
        name,
        fp,
        tensors=tensors,
        json_files={"config": config.to_dict(), "idmap": prep.split.idmap.to_json(), "curve": result.curve},
        meta=meta,
    )
    return Recommender(prep, model, meta, ref, result.curve)


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
        },
        "metrics": {f"test_{k}": v for k, v in test.items()} | {f"valid_{k}": v for k, v in valid.items()},
        "engine_version": __version__,
    }


def artifact_ref_str(ref: ArtifactRef) -> str:
    return f"{ref.dataset}/{ref.fingerprint[:16]}/v{ref.version}"
