"""The stored models an update can build on: found by dataset name and model, newest first.

``gatlens update`` names a dataset and a model, not the options the model was trained with: the
stored version's ``config.json`` holds them. :func:`stored_models` lists the candidates with their
configurations (manifests and configs only, nothing loaded) and :func:`stored_dataset_name` gives
the name a dataset is stored under (a csv folder's name, or the one chosen with ``--name``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from engine.artifacts.store import ArtifactStore
from engine.assembly import DEFAULT_CACHE
from engine.config import RunConfig
from engine.data.csv_loader import csv_dataset_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredModel:
    """One stored model version and the configuration it was trained with."""

    key: str  # dataset/fingerprint[:16]/vN, as ServedModel.key shows it
    dataset: str  # the name it is stored under (a csv dataset's real name, not "csv")
    model: str | None  # the model card's name, e.g. "gat"
    fingerprint: str
    version: int
    created: str  # ISO 8601 UTC, when the version was saved
    path: str  # the version's folder
    config: RunConfig  # its config.json


def stored_dataset_name(dataset: str, data_dir: str | None = None, name: str | None = None) -> str:
    """The name models of a dataset are stored under.

    Args:
        dataset: ``--dataset``: a built-in dataset (``demo``, ``ml-100k``, ...), ``csv``, or the
            stored name of a csv dataset itself.
        data_dir: ``--data-dir`` (default: None).
        name: ``--name``, a csv dataset's chosen name (default: None).

    Raises:
        ValueError: ``csv`` without ``--data-dir`` or ``--name`` (the name cannot be known).
    """
    if name is not None:
        return name
    if dataset != "csv":
        return dataset
    if data_dir is None:
        raise ValueError("--dataset csv needs --data-dir (or --name, or the dataset's stored name as --dataset)")
    return csv_dataset_name(Path(data_dir))


def stored_models(
    dataset: str, model: str | None = None, *, cache_dir: str | Path = DEFAULT_CACHE
) -> list[StoredModel]:
    """Every valid stored version of ``dataset`` (and ``model``), newest first.

    A version whose ``config.json`` cannot be read is left out with a warning (the store moves
    damaged versions aside when they are loaded).

    Args:
        dataset: the stored dataset name (see :func:`stored_dataset_name`).
        model: a model name, or None for every model (default: None).
        cache_dir: artifact and feature cache root (default: ``data/cache``).
    """
    rows = ArtifactStore(Path(cache_dir) / "models").list_models(dataset)
    found = []
    for row in reversed(rows):  # the store lists oldest first
        if model is not None and row["model"] != model:
            continue
        try:
            config = RunConfig.from_dict(json.loads((Path(row["path"]) / "config.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("skipping the stored model %s: its config.json is unreadable (%s)", row["path"], exc)
            continue
        key = f"{row['dataset']}/{row['fingerprint'][:16]}/v{row['version']}"
        fields = (row["dataset"], row["model"], row["fingerprint"], row["version"], row["created"], row["path"])
        found.append(StoredModel(key, *fields, config))
    return found
