"""Incremental updates: fold new interactions into a trained model without training from scratch.

Readable top to bottom, :func:`update_model`:

1. **validate** the new interactions (and optional new catalog items) with the loaders'
   checks: every problem is reported at once, naming file, line, column and value, and a bad
   file is rejected whole before anything is computed or written;
2. **append** them: the id map is extended (existing indices never move), the new positive
   pairs join the training part, validation and test keep their pairs (minus any the update
   now supplies as training data), edge weights are recomputed as a fresh split would;
3. **warm-start** a model sized for the new id map from the old weights: new users start at
   the mean layer-0 representation of the items they interacted with, new items at a zero id
   embedding, so their language-model text features (through the trained projection) and
   categories place them;
4. **train a few epochs** on all training pairs (mini-batch on large graphs), keeping the best
   of the warm start and each epoch by validation NDCG@10;
5. **save a new version** of the artifact under the same fingerprint, its manifest naming the
   parent version; the old version stays. The version stores the appended rows (cumulative
   since the first version), so :func:`restore_prepared` rebuilds the same data when it loads.

:func:`what_changed` lists the users whose top-K moved most.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.artifacts.store import ArtifactStore, LoadedArtifact
from engine.config import RunConfig
from engine.data.idmap import IdMap
from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset
from engine.data.split import W_RATING, W_RECENCY, I, SplitData, U, to_implicit
from engine.data.split import _edge_weights as edge_weights  # the split's own weighting, reused as is
from engine.data.validation import (
    Problems,
    Table,
    check_duplicate_rows,
    check_known,
    check_unique,
    infer_attribute,
    interactions_frame,
    parse_ids,
    parse_ratings,
    parse_timestamps,
    read_table,
    require_columns,
    split_categories,
)
from engine.features.text import TextFeatures, encode_items
from engine.models.base import EmbeddingModel
from engine.pipeline import (
    DEFAULT_CACHE,
    Prepared,
    artifact_ref_str,
    config_fingerprint,
    make_model,
    model_card,
    prepare,
)
from engine.service import Recommender
from engine.training.callbacks import Callback
from engine.training.loop import TrainResult

log = logging.getLogger(__name__)

UPDATE_FILE = "update"  # JSON document of an update version: the appended rows
CHANGES_FILE = "changes"  # JSON document: what_changed rows
_SPLIT_COLUMNS = [U, I, W_RATING, W_RECENCY, TIMESTAMP]
_CHANGES_KEPT = 1000  # rows of what_changed stored with a version
_CHANGES_IN_CARD = 20  # rows shown on the model card


# ------------------------------------------------------------------------ validation


def read_updates(
    interactions: str | Path | pd.DataFrame,
    dataset: Dataset,
    *,
    items: str | Path | pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read and validate new interactions (and new catalog items) against ``dataset``.

    ``interactions`` has columns ``user_id, item_id[, rating][, timestamp]`` (``rating`` is
    required when the dataset has explicit ratings, and must lie in its rating scale);
    every item must be in the catalog or in ``items``; new user ids are welcome. ``items``
    (``item_id, title[, categories][, text]``) lists items that are not in the catalog yet.

    Args:
        interactions: a CSV path, or a frame (validated as if it were that CSV).
        dataset: the dataset the model was trained on.
        items: new catalog items, as a path or frame (default: None).

    Returns:
        ``(interactions, items)`` in the canonical schema; ``items`` is None when not given.

    Raises:
        DataValidationError: listing every problem, each naming file, line, column and value.
    """
    problems = Problems()
    new_items = None
    if items is not None:
        items_table = _table(items, "new items", problems)
        if items_table is not None and require_columns(
            items_table, [ITEM, TITLE], problems, optional=[CATEGORIES, TEXT]
        ):
            new_items = _new_items(items_table, dataset, problems)
    table = _table(interactions, "new interactions", problems)
    frame = None
    if table is not None and require_columns(table, [USER, ITEM], problems, optional=[RATING, TIMESTAMP]):
        frame = _new_interactions(table, dataset, new_items, problems, items_name=_name(items, "new items"))
    problems.raise_if_any()
    assert frame is not None  # guaranteed when there were no problems
    return frame, new_items


def _name(source: Any, default: str) -> str:
    return Path(source).name if isinstance(source, str | Path) else default


def _table(source: str | Path | pd.DataFrame, default_name: str, problems: Problems) -> Table | None:
    if not isinstance(source, pd.DataFrame):
        return read_table(Path(source), problems, expected="a header line and one row per interaction or item")
    # A frame is checked exactly like the CSV it would be written as: line numbers refer to it.
    if CATEGORIES in source.columns:  # the catalog's tuples, written as the CSV format's "A|B"
        source = source.assign(
            **{CATEGORIES: source[CATEGORIES].map(lambda c: "|".join(c) if isinstance(c, tuple | list) else c)}
        )
    with tempfile.TemporaryDirectory(prefix="gatlens-update-") as tmp:
        path = Path(tmp) / "frame.csv"
        source.to_csv(path, index=False)
        return read_table(path, problems, name=default_name)


def _new_items(table: Table, dataset: Dataset, problems: Problems) -> pd.DataFrame:
    frame = table.frame
    ids = parse_ids(table, ITEM, problems)
    check_unique(table, ITEM, problems)
    known = dataset.items[ITEM]
    clash = np.flatnonzero(ids.isin(known).to_numpy())
    expected = f"a new item_id (it is already in the catalog of {dataset.name!r})"
    if len(clash):
        problems.add_many((table.cell(int(p), ITEM, expected) for p in clash[: problems.per_check]), len(clash))
    out = pd.DataFrame(
        {
            ITEM: ids.to_numpy(),
            TITLE: frame[TITLE].where(frame[TITLE] != "", ids).to_numpy(),
            CATEGORIES: split_categories(frame[CATEGORIES]) if CATEGORIES in frame.columns else [()] * len(frame),
            TEXT: frame[TEXT].to_numpy() if TEXT in frame.columns else np.full(len(frame), ""),
        }
    ).astype({ITEM: str, TITLE: str, TEXT: str})
    for column in dataset.items.columns:
        if column not in out.columns and column in frame.columns:
            out[column] = infer_attribute(frame[column]).to_numpy()
    return out


def _new_interactions(
    table: Table, dataset: Dataset, new_items: pd.DataFrame | None, problems: Problems, *, items_name: str
) -> pd.DataFrame:
    frame = table.frame
    users = parse_ids(table, USER, problems)
    items = parse_ids(table, ITEM, problems)
    ratings = None
    if dataset.rating_scale is not None:
        if RATING in frame.columns:
            ratings = parse_ratings(table, RATING, problems, dataset.rating_scale)
        else:
            lo, hi = dataset.rating_scale
            problems.add(
                f"{table.name}, line 1: missing column 'rating'; dataset {dataset.name!r} has explicit "
                f"ratings, so every new interaction needs one in [{lo:g}, {hi:g}]"
            )
    elif RATING in frame.columns:
        log.warning("%s: dataset %r is implicit; the rating column is ignored", table.name, dataset.name)
    times = parse_timestamps(table, TIMESTAMP, problems) if TIMESTAMP in frame.columns else None
    known = set(dataset.items[ITEM])
    listed_in = f"the catalog of {dataset.name!r}"
    if new_items is not None:
        known |= set(new_items[ITEM])
        listed_in += f" or {items_name}"
    check_known(table, ITEM, known, problems, listed_in=listed_in)
    key = pd.DataFrame({USER: users, ITEM: items, TIMESTAMP: times if times is not None else -1})
    check_duplicate_rows(table, key, problems)
    _check_not_logged(table, key, dataset, problems)
    return interactions_frame(users, items, ratings, times)


def _check_not_logged(table: Table, key: pd.DataFrame, dataset: Dataset, problems: Problems) -> None:
    """Rows already in the dataset (same user, item and time) mean the file was applied before."""
    old = dataset.interactions
    old = old[old[USER].isin(set(key[USER]))]  # only the file's users can collide
    logged = pd.MultiIndex.from_arrays([old[USER], old[ITEM], old[TIMESTAMP]])
    mine = pd.MultiIndex.from_arrays([key[USER], key[ITEM], pd.to_numeric(key[TIMESTAMP])])
    positions = np.flatnonzero(mine.isin(logged))
    shown = positions[: problems.per_check]
    messages = [
        table.cell(
            int(p),
            USER,
            f"a new interaction (user {key[USER].iat[p]!r}, item {key[ITEM].iat[p]!r} at this time "
            f"is already in dataset {dataset.name!r}: was this file applied before?)",
        )
        for p in shown
    ]
    if len(positions):
        problems.add_many(messages, len(positions))


# ------------------------------------------------------------------------------ merge


def _positive_rows(frame: pd.DataFrame, threshold: float | None, implicit: bool) -> np.ndarray:
    # The row-level form of to_implicit's rule (explicit ratings >= threshold; implicit: all).
    if threshold is None or implicit:
        return np.ones(len(frame), dtype=bool)
    return (frame[RATING] >= threshold).to_numpy()


def merge_updates(
    prep: Prepared,
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    text_rows: np.ndarray | None = None,
    cache_dir: Path = DEFAULT_CACHE,
) -> Prepared:
    """``prep`` with validated new interactions (and new items) appended.

    Args:
        prep: the prepared data the model was trained on.
        interactions: validated new interactions (canonical schema, in file order).
        items: validated new catalog items (default: None).
        text_rows: text features of the new items [n_new_items, D] (default: None: encoded
            with the configured language model, from the feature cache when possible).
        cache_dir: feature cache root (default: ``data/cache``).

    Returns:
        The new :class:`Prepared`: users and items the update introduces are appended to the
        id map in order of their first positive row / catalog row, so applying updates one
        by one or all at once gives the same indices.
    """
    ds, cfg = prep.dataset, prep.config
    all_items = ds.items if items is None or items.empty else pd.concat([ds.items, items], ignore_index=True)
    merged = Dataset(
        name=ds.name,
        interactions=pd.concat([ds.interactions, interactions], ignore_index=True),
        items=all_items,
        users=ds.users,
        rating_scale=ds.rating_scale,
    )
    threshold = cfg.data.threshold
    positive = _positive_rows(interactions, threshold, merged.is_implicit)
    new_items_ids = () if items is None else items[ITEM].tolist()
    idmap = prep.split.idmap.extend(users=interactions.loc[positive, USER], items=new_items_ids)
    split = _merged_split(prep.split, idmap, merged, interactions[positive], threshold)
    text = _merged_text(prep, items, text_rows, cache_dir)
    cats = _merged_categories(prep, items)
    from engine.data.graph import build_graph

    return Prepared(
        config=cfg,
        dataset=merged,
        split=split,
        graph=build_graph(split),
        text=text,
        categories=cats,
        category_names=prep.category_names,
        data_hash=merged.content_hash(),
    )


def _pair_keys(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    return frame[U].to_numpy(np.int64) * n_items + frame[I].to_numpy(np.int64)


def _merged_split(
    old: SplitData, idmap: IdMap, merged: Dataset, new_positive: pd.DataFrame, threshold: float | None
) -> SplitData:
    df = edge_weights(to_implicit(merged.interactions, threshold), merged.rating_scale)
    # Rows of users or items the model does not know (dropped by k-core earlier) stay out.
    df = df[df[USER].isin(idmap.users) & df[ITEM].isin(idmap.items)].copy()
    df[U] = idmap.user_indices(df[USER].tolist())
    df[I] = idmap.item_indices(df[ITEM].tolist())
    n_items = idmap.n_items
    key = _pair_keys(df, n_items)
    fresh = pd.DataFrame(
        {U: idmap.user_indices(new_positive[USER].tolist()), I: idmap.item_indices(new_positive[ITEM].tolist())}
    )
    in_new = np.isin(key, _pair_keys(fresh, n_items))
    in_valid = np.isin(key, _pair_keys(old.valid, n_items))
    in_test = np.isin(key, _pair_keys(old.test, n_items))
    in_train = np.isin(key, _pair_keys(old.train, n_items))
    # New evidence trains; held-out pairs stay held out unless the update supplies them.
    part = np.select([in_new, in_valid, in_test, in_train], [0, 1, 2, 0], default=-1)
    frames = [df.loc[part == p, _SPLIT_COLUMNS].sort_values([U, I]).reset_index(drop=True) for p in range(3)]
    return SplitData(idmap, *frames)


def _merged_text(
    prep: Prepared, items: pd.DataFrame | None, text_rows: np.ndarray | None, cache_dir: Path
) -> TextFeatures:
    old = prep.text
    if old.embeddings is None or items is None or items.empty:
        return old
    if text_rows is None:
        cfg = prep.config.features
        feats = encode_items(items, model=cfg.text_model, cache_dir=cache_dir / "text", enabled=True)
        text_rows = feats.embeddings
        if text_rows is None or text_rows.shape[1] != old.embeddings.shape[1]:
            log.warning("no language model for the new items' text: they start from categories only")
            text_rows = np.zeros((len(items), old.embeddings.shape[1]), dtype=np.float32)
    return replace(old, embeddings=np.vstack([old.embeddings, np.asarray(text_rows, dtype=np.float32)]))


def _merged_categories(prep: Prepared, items: pd.DataFrame | None) -> torch.Tensor:
    if items is None or items.empty:
        return prep.categories
    # The model's category projection has one column per known category; new names have none.
    index = {c: k for k, c in enumerate(prep.category_names)}
    rows = torch.zeros(len(items), prep.categories.size(1))
    unknown: set[str] = set()
    for r, cats in enumerate(items[CATEGORIES]):
        for c in cats:
            if c in index:
                rows[r, index[c]] = 1.0
            else:
                unknown.add(c)
    if unknown:
        log.warning("categories new to the model are ignored: %s", ", ".join(sorted(unknown)))
    return torch.cat([prep.categories, rows])


# ------------------------------------------------------------------------ warm start


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
    for name, value in old.state_dict().items():
        target = state.get(name)
        if target is None:
            raise ValueError(f"warm start: {name!r} is not a tensor of the new model")
        if name == "item_degree":  # training degrees: the new model's are the current ones
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


# ---------------------------------------------------------------------- what changed


def what_changed(old: Recommender, new: Recommender, *, k: int = 10, limit: int | None = None) -> pd.DataFrame:
    """Users whose top-K list changed most between two versions, most changed first.

    Only users both versions know are compared (a new user has no list before).

    Args:
        old: the recommender before the update.
        new: the recommender after it.
        k: list length (default: 10).
        limit: keep at most this many rows (default: all).

    Returns:
        Columns ``user_id``, ``changed`` (items of the old list no longer in the new one),
        ``overlap`` (share of the list kept), ``new_interactions`` (training pairs the update
        added for the user), ``entered`` / ``left`` (item ids), ``top_before`` / ``top_after``.
    """
    from engine.evaluation.ranking import topk_items

    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k!r})")
    users = list(old.idmap.users)
    k = min(k, old.idmap.n_items, new.idmap.n_items)
    before = topk_items(old.model, np.arange(len(users)), old.prep.split.matrix("train"), k)
    after = topk_items(new.model, new.idmap.user_indices(users), new.prep.split.matrix("train"), k)
    old_items, new_items = np.asarray((*old.idmap.items, "")), np.asarray((*new.idmap.items, ""))
    before_ids, after_ids = old_items[before], new_items[after]  # -1 (padding) maps to ""
    added = _added_pairs(old.prep.split, new.prep.split)
    rows = []
    for n, uid in enumerate(users):
        b = [x for x in before_ids[n] if x]
        a = [x for x in after_ids[n] if x]
        kept = len(set(b) & set(a))
        rows.append(
            {
                USER: uid,
                "changed": len(b) - kept,
                "overlap": kept / max(len(b), 1),
                "new_interactions": int(added.get(n, 0)),
                "entered": [x for x in a if x not in set(b)],
                "left": [x for x in b if x not in set(a)],
                "top_before": b,
                "top_after": a,
            }
        )
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(["changed", "new_interactions", USER], ascending=[False, False, True], kind="stable")
    frame = frame.reset_index(drop=True)
    return frame if limit is None else frame.head(limit)


def _added_pairs(old: SplitData, new: SplitData) -> dict[int, int]:
    n_items = new.n_items
    fresh = ~np.isin(_pair_keys(new.train, n_items), _pair_keys(old.train, n_items))
    users = new.train[U].to_numpy()[fresh]
    counts = np.bincount(users, minlength=old.n_users)[: old.n_users]
    return {int(u): int(c) for u, c in enumerate(counts) if c}


# ---------------------------------------------------------------------------- update


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
    from engine.evaluation.ranking import evaluate

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1 (got {epochs!r})")
    t0 = time.perf_counter()
    interactions, items = read_updates(new_interactions, rec.dataset, items=new_items)
    positive = _positive_rows(interactions, rec.prep.config.data.threshold, rec.dataset.is_implicit)
    if not positive.any():
        raise ValueError(
            f"the update holds no positive interaction (ratings >= {rec.prep.config.data.threshold}); "
            "nothing to learn, nothing written"
        )
    prep = merge_updates(rec.prep, interactions, items, cache_dir=cache_dir)
    t_merge = time.perf_counter() - t0
    warm_valid = None
    if isinstance(rec.model, EmbeddingModel):
        model, result, warm_valid = _train_warm(rec.model, prep, epochs=epochs, lr=lr, mode=mode, callbacks=callbacks)
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
    summary = {
        "parent": artifact_ref_str(rec.ref) if rec.ref is not None else None,
        "rows": len(interactions),
        "positives": int(positive.sum()),
        "new_users": prep.split.n_users - rec.prep.split.n_users,
        "new_items": prep.split.n_items - rec.prep.split.n_items,
        "train_pairs_added": len(prep.split.train) - len(rec.prep.split.train),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "valid_ndcg@10_before": rec.metrics.get("valid_ndcg@10"),
        "warm_start_valid_ndcg@10": warm_valid,
        "valid_ndcg@10_after": valid.get("ndcg@10"),
        "seconds_merge": round(t_merge, 3),
        "seconds_train": round(result.seconds, 3),
        "k": k,
        "users_changed": int((changes["changed"] > 0).sum()) if len(changes) else 0,
        "what_changed": _records(changes.head(_CHANGES_IN_CARD)),
    }
    meta["update"] = summary
    summary["seconds"] = round(time.perf_counter() - t0, 3)  # validation to trained model, saving excluded
    ref = None
    if save:
        ref = _save(rec, new, interactions, items, changes, cache_dir)
    new.ref = ref
    where = artifact_ref_str(ref) if ref else "not saved"
    log.info("updated %s in %.2fs: %s", new.prep.dataset.name, summary["seconds"], where)
    return new


def _train_warm(
    old: EmbeddingModel, prep: Prepared, *, epochs: int, lr: float | None, mode: str, callbacks: Sequence[Callback]
) -> tuple[EmbeddingModel, TrainResult, float]:
    from engine.training.device import resolve_device
    from engine.training.loop import default_valid_fn
    from engine.training.minibatch import LayerwiseInference, fit_auto, layerwise_valid_fn, supports_minibatch

    cfg = prep.config.train
    cfg = replace(cfg, epochs=epochs, patience=epochs, eval_every=1, lr=cfg.lr if lr is None else lr)
    model = warm_start(old, prep)
    device = resolve_device(cfg.device)
    model.to(device)
    graph = prep.graph.to(device)
    valid_fn = (
        layerwise_valid_fn(prep.split, graph) if supports_minibatch(model) else default_valid_fn(prep.split, graph)
    )
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


# --------------------------------------------------------------------------- restore


def restore_prepared(prep: Prepared, loaded: LoadedArtifact, *, cache_dir: Path = DEFAULT_CACHE) -> Prepared:
    """The prepared data an artifact version was trained on: ``prep`` plus its appended rows.

    ``prep`` is what :func:`engine.pipeline.prepare` builds from the configured dataset; a
    version written by :func:`update_model` carries the rows appended since, and this replays
    them. A version without updates returns ``prep`` unchanged.

    Raises:
        ValueError: the replayed id map differs from the stored one.
    """
    doc = loaded.json_files.get(UPDATE_FILE)
    if not doc:
        return prep
    interactions = pd.DataFrame.from_records(doc["interactions"], columns=[USER, ITEM, RATING, TIMESTAMP])
    interactions = interactions.astype({USER: str, ITEM: str, RATING: "float64", TIMESTAMP: "int64"})
    items = None
    if doc["items"]:
        items = pd.DataFrame.from_records(doc["items"])
        items[CATEGORIES] = items[CATEGORIES].map(tuple)
        items = items.astype({ITEM: str, TITLE: str, TEXT: str})
    text_rows = None
    state = loaded.tensors.get("model", {})
    if items is not None and "text" in state:
        text_rows = state["text"][prep.split.n_items :].numpy()
    restored = merge_updates(prep, interactions, items, text_rows=text_rows, cache_dir=cache_dir)
    stored = loaded.json_files.get("idmap")
    if stored is not None:
        idmap = IdMap.from_json(stored if isinstance(stored, str) else json.dumps(stored))
        if idmap != restored.split.idmap:
            raise ValueError(f"artifact {loaded.ref.path}: replaying its update does not give its id map")
    return restored


class StaleArtifactError(ValueError):
    """A stored version's fingerprint is not the one its configuration gives today: the data or the
    engine version changed since it was trained, so it is not the model that configuration describes."""


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
            from engine.training.minibatch import LayerwiseInference

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
