"""The one path from a configuration or a stored artifact to a ready Recommender.

``train_or_load(config)`` returns the cached artifact when its fingerprint (config + dataset
content + engine version) matches, else trains, stores and returns a new one; a corrupt or stale
artifact is detected by the store and rebuilt. ``load_version`` loads any stored version (its
``gatlens update`` rows replayed) and never trains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from engine.artifacts.store import ArtifactStore, LoadedArtifact
from engine.assembly import DEFAULT_CACHE, Prepared, config_fingerprint, make_model, model_card, prepare, train_model
from engine.config import RunConfig
from engine.data.schema import Dataset
from engine.errors import StaleArtifactError
from engine.evaluation.ranking import evaluate
from engine.models.base import EmbeddingModel
from engine.recommender import Recommender
from engine.training.callbacks import Callback, ProgressBar
from engine.training.minibatch import LayerwiseInference
from engine.update.merge import restore_prepared

log = logging.getLogger(__name__)


def train_or_load(
    config: RunConfig,
    *,
    force: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    cache_dir: Path = DEFAULT_CACHE,
    dataset: Dataset | None = None,
) -> Recommender:
    """Return a ready Recommender: the cached artifact when valid, else a freshly trained one.

    Args:
        config: the full run configuration.
        force: retrain even when a valid artifact exists (default: False).
        progress: show tqdm bars for text encoding and training (default: False).
        callbacks: extra training callbacks, e.g. the dashboard's progress hook (default: none).
        cache_dir: root of the artifact and feature caches (default: ``data/cache``).
        dataset: an already loaded dataset to use instead of loading by name (default: None).

    Returns:
        :class:`engine.recommender.Recommender`.
    """
    t0 = time.perf_counter()
    prep = prepare(config, dataset=dataset, cache_dir=cache_dir, progress=progress)
    store = ArtifactStore(cache_dir / "models")
    fp = config_fingerprint(prep)
    name = prep.dataset.name
    if not force:
        loaded = store.load(name, fp)
        if loaded is not None:
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


def load_version(
    config: RunConfig,
    version: int | None = None,
    *,
    fingerprint: str | None = None,
    cache_dir: Path = DEFAULT_CACHE,
    dataset: Dataset | None = None,
) -> Recommender | None:
    """One cached version for ``config`` (updates replayed), or None when it is missing or damaged.

    Mirrors the load path of :func:`engine.pipeline.train_or_load` plus :func:`restore_prepared`,
    for any version; it never trains. A damaged version is moved aside by the store.

    Args:
        config: the configuration the model was trained with (its artifact's ``config.json``).
        version: the version number (default: the newest).
        fingerprint: the fingerprint the version is stored under, e.g. from its manifest; checked
            against the one ``config`` gives today (default: not checked).
        cache_dir: feature and artifact cache root (default: ``data/cache``).
        dataset: an already loaded dataset to use instead of loading by name (default: None).

    Returns:
        The :class:`Recommender`, or None.

    Raises:
        StaleArtifactError: ``fingerprint`` is not what ``config`` gives today.
        ValueError: replaying the version's update does not give its stored id map.
    """
    prep = prepare(config, dataset=dataset, cache_dir=cache_dir)
    fp = config_fingerprint(prep)
    if fingerprint is not None and fingerprint != fp:
        raise StaleArtifactError(
            f"the stored model {fingerprint[:16]} no longer matches its configuration (which now gives {fp[:16]}): "
            "the data or the engine version changed since it was trained"
        )
    loaded = ArtifactStore(cache_dir / "models").load(prep.dataset.name, fp, version=version)
    if loaded is None:
        return None
    return recommender_from_artifact(prep, loaded, cache_dir=cache_dir)


def recommender_from_artifact(
    prep: Prepared, loaded: LoadedArtifact, *, cache_dir: Path = DEFAULT_CACHE
) -> Recommender:
    """The :class:`Recommender` a loaded artifact version holds (its updates replayed onto ``prep``).

    Trained models get their stored weights and final embeddings (recomputed layer-wise when a
    version lacks them); closed-form models are refitted, which is cheaper than storing an
    items x items matrix.
    """
    prep = restore_prepared(prep, loaded, cache_dir=cache_dir)
    model = make_model(prep)
    if isinstance(model, EmbeddingModel):
        model.load_state_dict(loaded.tensors["model"])
        emb = loaded.tensors.get("embeddings")
        if emb is not None:
            model.set_cached_embeddings(emb["users"], emb["items"])
        else:
            model.set_cached_embeddings(*LayerwiseInference(prep.graph)(model))
    else:
        model.fit(prep.split)
    return Recommender(prep, model, loaded.meta, loaded.ref, loaded.json_files.get("curve", []))


def load_latest(
    config: RunConfig, *, cache_dir: Path = DEFAULT_CACHE, dataset: Dataset | None = None
) -> Recommender | None:
    """The newest cached version for ``config`` (updates replayed), or None when none is cached.

    See :func:`load_version`; it never trains.
    """
    return load_version(config, cache_dir=cache_dir, dataset=dataset)
