"""Append validated new interactions (and items) to prepared data, as a fresh split would.

The id map is extended (existing indices never move), the new positive pairs join the training
part, validation and test keep their pairs (minus any the update now supplies as training data),
edge weights are recomputed. :func:`restore_prepared` replays a stored version's appended rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.artifacts.store import LoadedArtifact
from engine.assembly import (
    DEFAULT_CACHE,
    UPDATE_FILE,
    Prepared,
)
from engine.data.graph import build_graph
from engine.data.idmap import IdMap
from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset
from engine.data.split import W_RATING, W_RECENCY, I, SplitData, U, to_implicit
from engine.data.split import _edge_weights as edge_weights  # the split's own weighting, reused as is
from engine.features.text import TextFeatures, encode_items

log = logging.getLogger(__name__)

_SPLIT_COLUMNS = [U, I, W_RATING, W_RECENCY, TIMESTAMP]


def positive_rows(frame: pd.DataFrame, threshold: float | None, implicit: bool) -> np.ndarray:
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
        counts=ds.counts,
    )
    threshold = cfg.data.threshold
    positive = positive_rows(interactions, threshold, merged.is_implicit)
    new_items_ids = () if items is None else items[ITEM].tolist()
    idmap = prep.split.idmap.extend(users=interactions.loc[positive, USER], items=new_items_ids)
    split = _merged_split(prep.split, idmap, merged, interactions[positive], threshold)
    text = _merged_text(prep, items, text_rows, cache_dir)
    cats = _merged_categories(prep, items)
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


def pair_keys(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    return frame[U].to_numpy(np.int64) * n_items + frame[I].to_numpy(np.int64)


def _merged_split(
    old: SplitData, idmap: IdMap, merged: Dataset, new_positive: pd.DataFrame, threshold: float | None
) -> SplitData:
    df = to_implicit(merged.interactions, threshold, counts=merged.counts)  # as split() does
    df = edge_weights(df, merged.rating_scale, merged.counts)
    # Rows of users or items the model does not know (dropped by k-core earlier) stay out.
    df = df[df[USER].isin(idmap.users) & df[ITEM].isin(idmap.items)].copy()
    df[U] = idmap.user_indices(df[USER].tolist())
    df[I] = idmap.item_indices(df[ITEM].tolist())
    n_items = idmap.n_items
    key = pair_keys(df, n_items)
    fresh = pd.DataFrame(
        {U: idmap.user_indices(new_positive[USER].tolist()), I: idmap.item_indices(new_positive[ITEM].tolist())}
    )
    in_new = np.isin(key, pair_keys(fresh, n_items))
    in_valid = np.isin(key, pair_keys(old.valid, n_items))
    in_test = np.isin(key, pair_keys(old.test, n_items))
    in_train = np.isin(key, pair_keys(old.train, n_items))
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
    interactions, items = update_frames(doc)
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


def update_frames(doc: dict) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The interactions and items of a stored ``update`` document, as the frames that were appended.

    Args:
        doc: ``{"interactions": [records], "items": [records]}`` as :func:`update_model` stores it.

    Returns:
        ``(interactions, items)``; ``items`` is None when the document lists none.
    """
    interactions = pd.DataFrame.from_records(doc["interactions"], columns=[USER, ITEM, RATING, TIMESTAMP])
    interactions = interactions.astype({USER: str, ITEM: str, RATING: "float64", TIMESTAMP: "int64"})
    items = None
    if doc["items"]:
        items = pd.DataFrame.from_records(doc["items"])
        items[CATEGORIES] = items[CATEGORIES].map(tuple)
        items = items.astype({ITEM: str, TITLE: str, TEXT: str})
    return interactions, items
