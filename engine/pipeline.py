"""The one path from a configuration or a stored artifact to a ready Recommender.

``train_or_load(config)`` returns the cached artifact when its fingerprint (config + dataset
content + engine version) matches, else trains, stores and returns a new one. A damaged newest
version does not throw the updates away: the store falls back to the newest intact version, and
the damaged version's update rows, when they still verify, are re-applied on top of it as a new
version (lineage kept). A version that verifies but whose tensors do not fit the model is moved
aside like any damaged one. ``update_latest`` is the serialised update: under the model's
writers' lock it re-reads the newest version, so two concurrent updates never lose each other's
rows. ``load_version`` loads any stored version (its ``gatlens update`` rows replayed) and never
trains.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from engine.artifacts.layout import Salvaged
from engine.artifacts.lock import StoreNotWritableError
from engine.artifacts.store import ArtifactStore, LoadedArtifact
from engine.assembly import (
    DEFAULT_CACHE,
    UPDATE_FILE,
    Prepared,
    artifact_ref_str,
    config_fingerprint,
    make_model,
    model_card,
    prepare,
    train_model,
)
from engine.config import RunConfig
from engine.data.schema import Dataset
from engine.errors import DataValidationError, StaleArtifactError
from engine.evaluation.ranking import evaluate
from engine.models.base import EmbeddingModel
from engine.recommender import Recommender
from engine.training.callbacks import Callback, ProgressBar
from engine.training.minibatch import LayerwiseInference
from engine.update.apply import update_model
from engine.update.merge import restore_prepared, update_frames

log = logging.getLogger(__name__)

_MAX_FALLBACKS = 100  # versions moved aside in one load before giving up (a guard, never reached in practice)


class ArtifactMismatchError(RuntimeError):
    """A version passed its checksums but its tensors do not fit the model its configuration builds."""


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

    Raises:
        StoreNotWritableError: the model cache cannot be written; raised before any training.
    """
    t0 = time.perf_counter()
    store = ArtifactStore(Path(cache_dir) / "models")
    if force:
        store.check_writable()  # a forced run will write: say so before the data is even prepared
    prep = prepare(config, dataset=dataset, cache_dir=cache_dir, progress=progress)
    fp = config_fingerprint(prep)
    name = prep.dataset.name
    if not force:
        rec = _load_or_recover(prep, store, fp, cache_dir)
        if rec is not None:
            log.info("loaded cached model %s in %.2fs", rec.ref.path if rec.ref else "-", time.perf_counter() - t0)
            return rec
    # Checked before training: a cache that cannot be written would otherwise fail after it.
    store.check_writable(name, fp)
    cbs = list(callbacks) + ([ProgressBar(f"train {config.model.name} on {name}")] if progress else [])
    model, result = train_model(prep, callbacks=cbs)
    test = evaluate(model, prep.split, "test")
    valid = evaluate(model, prep.split, "valid")
    meta = model_card(prep, model, result, test.overall, valid.overall)
    ref = store.save(
        name,
        fp,
        tensors=_tensors(model),
        json_files={"config": config.to_dict(), "idmap": prep.split.idmap.to_json(), "curve": result.curve},
        meta=meta,
    )
    return Recommender(prep, model, meta, ref, result.curve)


def update_latest(
    rec: Recommender,
    new_interactions: pd.DataFrame | str | Path,
    *,
    dataset: Dataset | None = None,
    cache_dir: Path = DEFAULT_CACHE,
    **options: Any,
) -> Recommender:
    """:func:`engine.update.apply.update_model` on the newest version, one writer at a time.

    Holds the model's writers' lock from reading the newest version to saving the new one. When
    another process saved a version after ``rec`` was loaded (or a damaged version's rows are
    waiting to be re-applied), the update builds on that newest version instead of ``rec``.

    Args:
        rec: the recommender loaded before (usually the newest version then).
        new_interactions: as for :func:`update_model`.
        dataset: the dataset ``rec`` was trained on when it was not loaded by name (default: None).
        cache_dir: feature and artifact cache root (default: ``data/cache``).
        **options: passed on to :func:`update_model` (``new_items``, ``epochs``, ``lr``, ``k``, ...).

    Raises:
        StoreNotWritableError: the model cache cannot be written (checked before any work).
        LockTimeoutError: another writer kept the lock for longer than the store's timeout.
        StaleArtifactError: ``rec``'s configuration no longer gives its fingerprint.
    """
    store = ArtifactStore(Path(cache_dir) / "models")
    name = rec.prep.dataset.name
    fp = rec.ref.fingerprint if rec.ref is not None else config_fingerprint(rec.prep)
    store.check_writable(name, fp)
    with store.writing(name, fp):
        current = _current(rec, store, fp, dataset, cache_dir)
        return update_model(current, new_interactions, cache_dir=cache_dir, **options)


def load_version(
    config: RunConfig,
    version: int | None = None,
    *,
    fingerprint: str | None = None,
    cache_dir: Path = DEFAULT_CACHE,
    dataset: Dataset | None = None,
) -> Recommender | None:
    """One cached version for ``config`` (updates replayed), or None when it is missing or damaged.

    Mirrors the load path of :func:`train_or_load` for any version; it never trains (so the rows
    of a damaged newest version are not re-applied here: the next ``train`` or ``update`` does
    that). A damaged version is moved aside by the store; asked for the newest, the newest intact
    one is returned, with a warning naming the versions skipped.

    Args:
        config: the configuration the model was trained with (its artifact's ``config.json``).
        version: the version number (default: the newest intact one).
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
    found = _load_newest(prep, ArtifactStore(Path(cache_dir) / "models"), fp, cache_dir, version=version)
    return None if found is None else found[0]


def load_latest(
    config: RunConfig, *, cache_dir: Path = DEFAULT_CACHE, dataset: Dataset | None = None
) -> Recommender | None:
    """The newest intact cached version for ``config`` (updates replayed), or None when none is cached.

    See :func:`load_version`; it never trains.
    """
    return load_version(config, cache_dir=cache_dir, dataset=dataset)


def recommender_from_artifact(
    prep: Prepared, loaded: LoadedArtifact, *, cache_dir: Path = DEFAULT_CACHE
) -> Recommender:
    """The :class:`Recommender` a loaded artifact version holds (its updates replayed onto ``prep``).

    Trained models get their stored weights and final embeddings (recomputed layer-wise when a
    version lacks them); closed-form models are refitted, which is cheaper than storing an
    items x items matrix.

    Raises:
        ArtifactMismatchError: the stored tensors do not fit the model (missing, extra or
            wrongly shaped entries), although their checksums are right.
    """
    prep = restore_prepared(prep, loaded, cache_dir=cache_dir)
    model = make_model(prep)
    if isinstance(model, EmbeddingModel):
        try:
            model.load_state_dict(loaded.tensors["model"])
            emb = loaded.tensors.get("embeddings")
            if emb is not None:
                _check_embeddings(emb, prep)
                model.set_cached_embeddings(emb["users"], emb["items"])
            else:
                model.set_cached_embeddings(*LayerwiseInference(prep.graph)(model))
        except (RuntimeError, KeyError, ValueError) as err:
            raise ArtifactMismatchError(
                f"its tensors do not fit the {prep.config.model.name} model this configuration builds "
                f"({_first_detail(err)})"
            ) from err
    else:
        model.fit(prep.split)
    return Recommender(prep, model, loaded.meta, loaded.ref, loaded.json_files.get("curve", []), from_cache=True)


# ---------------------------------------------------------------- internals


def _tensors(model: Any) -> dict[str, Any]:
    if isinstance(model, EmbeddingModel):
        return {"model": model.state_dict(), "embeddings": model.cached_embeddings()}
    return {}


def _first_detail(err: Exception) -> str:
    # torch writes "Error(s) in loading state_dict for X:" then "size mismatch for <tensor>: ..." lines.
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if not line.endswith(":")), lines[0] if lines else type(err).__name__)
    return detail if len(detail) <= 300 else detail[:297] + "..."


def _check_embeddings(emb: dict[str, Any], prep: Prepared) -> None:
    users, items = emb["users"], emb["items"]
    if users.shape[0] != prep.split.n_users or items.shape[0] != prep.split.n_items:
        raise ValueError(
            f"embeddings for {users.shape[0]} users x {items.shape[0]} items, "
            f"the data has {prep.split.n_users} x {prep.split.n_items}"
        )


def _load_newest(
    prep: Prepared, store: ArtifactStore, fp: str, cache_dir: Path, *, version: int | None = None
) -> tuple[Recommender, LoadedArtifact] | None:
    """The newest intact version (or ``version``) as a Recommender; unusable ones are moved aside."""
    name = prep.dataset.name
    for _ in range(_MAX_FALLBACKS):
        loaded = store.load(name, fp, version=version)
        if loaded is None:
            return None
        try:
            return recommender_from_artifact(prep, loaded, cache_dir=cache_dir), loaded
        except ArtifactMismatchError as err:
            store.move_aside(loaded.ref, str(err))
            if version is not None:
                return None
    return None


def _load_or_recover(prep: Prepared, store: ArtifactStore, fp: str, cache_dir: Path) -> Recommender | None:
    """The newest intact version, with the rows of a newer damaged version re-applied when they verify."""
    name = prep.dataset.name
    found = _load_newest(prep, store, fp, cache_dir)
    after = found[0].ref.version if found is not None and found[0].ref is not None else 0
    salvaged = store.salvage_json(name, fp, UPDATE_FILE, after=after)
    if salvaged is None or found is None:
        if salvaged is not None:
            log.warning(
                "v%d of %s/%s was damaged and no older version is intact, so its update rows cannot be re-applied; "
                "the model is retrained from the original data (the rows stay in %s)",
                salvaged.version,
                name,
                fp[:16],
                salvaged.path,
            )
        return None if found is None else found[0]
    rec, loaded = found
    try:
        store.check_writable(name, fp)
    except StoreNotWritableError as err:
        log.warning("cannot re-apply the update rows of damaged v%d: %s; using v%d", salvaged.version, err, after)
        return rec
    with store.writing(name, fp):
        newest = store.latest(name, fp)
        if newest is not None and newest != rec.ref:  # another process wrote (or recovered) meanwhile
            again = _load_newest(prep, store, fp, cache_dir)
            return rec if again is None else again[0]
        return _reapply(rec, loaded, salvaged, cache_dir)


def _reapply(rec: Recommender, loaded: LoadedArtifact, salvaged: Salvaged, cache_dir: Path) -> Recommender:
    """``rec`` updated with the rows ``salvaged`` holds beyond its own, saved as a new version."""
    have = loaded.json_files.get(UPDATE_FILE) or {"interactions": [], "items": []}
    try:
        rows, items = _rows_beyond(salvaged.doc, have)
    except (KeyError, TypeError) as err:
        log.warning("the update rows kept in %s are not in the expected form (%s); not re-applied", salvaged.path, err)
        return rec
    why = next((s.reason for s in loaded.skipped if s.version == salvaged.version), "damaged")
    if not rows:
        log.warning("v%d was skipped (%s); it held no rows beyond v%d", salvaged.version, why, rec.ref.version)
        return rec
    meta_update = salvaged.manifest.get("meta", {}).get("update", {})
    epochs = meta_update.get("epochs") if isinstance(meta_update, dict) else None
    interactions, new_items = update_frames({"interactions": rows, "items": items})
    try:
        new = update_model(
            rec,
            interactions,
            new_items=new_items,
            epochs=epochs if isinstance(epochs, int) and epochs >= 1 else 5,
            cache_dir=cache_dir,
        )
    except (DataValidationError, ValueError) as err:
        log.warning(
            "could not re-apply the %d update rows of damaged v%d (%s); using v%d",
            len(rows),
            salvaged.version,
            err,
            rec.ref.version,
        )
        return rec
    log.warning(
        "v%d of %s was skipped (%s); re-applied its %d update rows (%d new items) on v%d, saved as %s",
        salvaged.version,
        rec.prep.dataset.name,
        why,
        len(rows),
        len(items),
        rec.ref.version,
        artifact_ref_str(new.ref) if new.ref is not None else "not saved",
    )
    return new


def _rows_beyond(doc: dict[str, Any], have: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Interaction records of ``doc`` not in ``have`` (counted, order kept), and its items ``have`` lacks."""
    left = Counter(json.dumps(r, sort_keys=True) for r in have["interactions"])
    rows = []
    for record in doc["interactions"]:
        key = json.dumps(record, sort_keys=True)
        if left[key] > 0:
            left[key] -= 1
        else:
            rows.append(record)
    known = {r["item_id"] for r in have["items"]}
    return rows, [r for r in doc["items"] if r["item_id"] not in known]


def _current(rec: Recommender, store: ArtifactStore, fp: str, dataset: Dataset | None, cache_dir: Path) -> Recommender:
    """``rec``, or the newest version when another writer saved one since (call holding the lock)."""
    name = rec.prep.dataset.name
    newest = store.latest(name, fp)
    stale = rec.ref is not None and newest is not None and newest != rec.ref
    pending = store.salvage_json(name, fp, UPDATE_FILE, after=newest.version if newest else 0) is not None
    if not stale and not pending:
        return rec
    prep = prepare(rec.prep.config, dataset=dataset, cache_dir=cache_dir)
    if config_fingerprint(prep) != fp:
        raise StaleArtifactError(
            f"the newest version of {name}/{fp[:16]} could not be re-read: its configuration now gives "
            f"{config_fingerprint(prep)[:16]} (the data or the engine version changed); retrain first"
        )
    fresh = _load_or_recover(prep, store, fp, cache_dir)
    if fresh is None:
        raise ValueError(f"no intact version of {name}/{fp[:16]} is left to update; train the model first")
    if stale and fresh.ref is not None:
        log.warning(
            "another gatlens process saved v%d of %s/%s after v%d was loaded; this update builds on v%d",
            newest.version,
            name,
            fp[:16],
            rec.ref.version,
            fresh.ref.version,
        )
    return fresh
