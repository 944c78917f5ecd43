"""Incremental updates: fold new interactions into a trained model without training from scratch.

Readable top to bottom, :func:`update_model`: **validate** (:mod:`engine.update.read`), **append**
(:mod:`engine.update.merge`), **warm-start and train a few epochs** (:mod:`engine.update.warm`),
compare the lists (:mod:`engine.update.changes`) and **save a new version** of the artifact under
the same fingerprint, its manifest naming the parent version; the old version stays. The version
stores the appended rows (cumulative since the first version), so
:func:`engine.update.merge.restore_prepared` rebuilds the same data when it loads.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from engine.artifacts.store import ArtifactStore
from engine.assembly import (
    CHANGES_FILE,
    DEFAULT_CACHE,
    UPDATE_FILE,
    artifact_ref_str,
    config_fingerprint,
    make_model,
    model_card,
)
from engine.evaluation.ranking import evaluate
from engine.models.base import EmbeddingModel
from engine.recommender import Recommender
from engine.training.callbacks import Callback
from engine.training.loop import TrainResult
from engine.update.changes import what_changed
from engine.update.merge import merge_updates, positive_rows
from engine.update.read import read_updates
from engine.update.warm import train_warm

log = logging.getLogger(__name__)

_CHANGES_KEPT = 1000  # rows of what_changed stored with a version
_CHANGES_IN_CARD = 20  # rows shown on the model card


def update_model(
    rec: Recommender,
    new_interactions: pd.DataFrame | str | Path,
    *,
    new_items: pd.DataFrame | str | Path | None = None,
    epochs: int = 5,
    lr: float | None = None,
    mode: str = "auto",
    k: int = 10,
    cache_dir: Path = DEFAULT_CACHE,
    save: bool = True,
    callbacks: Sequence[Callback] = (),
) -> Recommender:
    """Fold new interactions into ``rec``'s model and save a new artifact version.

    Args:
        rec: the current recommender (usually the cached model).
        new_interactions: new rows (``user_id, item_id[, rating][, timestamp]``) as a frame or
            a CSV path; validated first (see :func:`read_updates`), nothing is written if bad.
        new_items: new catalog items as a frame or CSV path (default: None).
        epochs: warm-start training epochs (default: 5).
        lr: learning rate (default: the model's training learning rate).
        mode: ``"auto"``, ``"full"`` or ``"minibatch"`` training (default: ``"auto"``).
        k: list length of the "what changed" comparison (default: 10).
        cache_dir: feature and artifact cache root (default: ``data/cache``).
        save: write the new version, its manifest naming ``rec.ref`` as parent (default: True).
        callbacks: training callbacks (default: none).

    Returns:
        The updated :class:`Recommender`; ``meta["update"]`` summarises the update (rows,
        new users and items, seconds, validation before and after, the most changed users).

    Raises:
        DataValidationError: the new data has problems (each one named; nothing written).
        ValueError: the update holds no positive interaction, or ``epochs < 1``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1 (got {epochs!r})")
    t0 = time.perf_counter()
    interactions, items = read_updates(new_interactions, rec.dataset, items=new_items)
    positive = positive_rows(interactions, rec.prep.config.data.threshold, rec.dataset.is_implicit)
    if not positive.any():
        raise ValueError(
            f"the update holds no positive interaction (ratings >= {rec.prep.config.data.threshold}); "
            "nothing to learn, nothing written"
        )
    prep = merge_updates(rec.prep, interactions, items, cache_dir=cache_dir)
    t_merge = time.perf_counter() - t0
    warm_valid = None
    if isinstance(rec.model, EmbeddingModel):
        model, result, warm_valid = train_warm(rec.model, prep, epochs=epochs, lr=lr, mode=mode, callbacks=callbacks)
    else:  # closed-form models refit in one step
        model = make_model(prep)
        t1 = time.perf_counter()
        model.fit(prep.split)
        result = TrainResult(epochs=0, seconds=time.perf_counter() - t1, device="cpu")
    valid = evaluate(model, prep.split, "valid").overall
    test = evaluate(model, prep.split, "test").overall
    meta = model_card(prep, model, result, test, valid)
    new = Recommender(prep, model, meta, None, result.curve)
    changes = what_changed(rec, new, k=k, limit=_CHANGES_KEPT)
    summary = _summary(rec, new, interactions, positive, changes, result, warm_valid, k=k, seconds_merge=t_merge)
    meta["update"] = summary
    summary["seconds"] = round(time.perf_counter() - t0, 3)  # validation to trained model, saving excluded
    ref = None
    if save:
        ref = _save(rec, new, interactions, items, changes, cache_dir)
    new.ref = ref
    where = artifact_ref_str(ref) if ref else "not saved"
    log.info("updated %s in %.2fs: %s", new.prep.dataset.name, summary["seconds"], where)
    return new


def _summary(
    old: Recommender,
    new: Recommender,
    interactions: pd.DataFrame,
    positive: pd.Series,
    changes: pd.DataFrame,
    result: TrainResult,
    warm_valid: float | None,
    *,
    k: int,
    seconds_merge: float,
) -> dict[str, Any]:
    """The update's card: rows, new users and items, validation before and after, the most changed users."""
    before, after = old.prep.split, new.prep.split
    return {
        "parent": artifact_ref_str(old.ref) if old.ref is not None else None,
        "rows": len(interactions),
        "positives": int(positive.sum()),
        "new_users": after.n_users - before.n_users,
        "new_items": after.n_items - before.n_items,
        "train_pairs_added": len(after.train) - len(before.train),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "valid_ndcg@10_before": old.metrics.get("valid_ndcg@10"),
        "warm_start_valid_ndcg@10": warm_valid,
        "valid_ndcg@10_after": new.metrics.get("valid_ndcg@10"),
        "seconds_merge": round(seconds_merge, 3),
        "seconds_train": round(result.seconds, 3),
        "k": k,
        "users_changed": int((changes["changed"] > 0).sum()) if len(changes) else 0,
        "what_changed": _records(changes.head(_CHANGES_IN_CARD)),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def _save(
    old: Recommender,
    new: Recommender,
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    changes: pd.DataFrame,
    cache_dir: Path,
) -> Any:
    store = ArtifactStore(cache_dir / "models")
    previous: dict[str, Any] = {"interactions": [], "items": []}
    if old.ref is not None:
        loaded = store.load(old.ref)
        if loaded is None:
            raise ValueError(f"the parent artifact {old.ref.path} is missing or damaged; retrain first")
        previous = loaded.json_files.get(UPDATE_FILE, previous)
    fp = old.ref.fingerprint if old.ref is not None else config_fingerprint(old.prep)
    update_doc = {
        "interactions": previous["interactions"] + _records(interactions),
        "items": previous["items"] + ([] if items is None else _records(items)),
    }
    model = new.model
    tensors = (
        {"model": model.state_dict(), "embeddings": model.cached_embeddings()}
        if isinstance(model, EmbeddingModel)
        else {}
    )
    return store.save(
        new.prep.dataset.name,
        fp,
        tensors=tensors,
        json_files={
            "config": new.prep.config.to_dict(),
            "idmap": new.prep.split.idmap.to_json(),
            "curve": new.curve,
            UPDATE_FILE: update_doc,
            CHANGES_FILE: _records(changes),
        },
        meta=new.meta,
        parent=old.ref,
    )
