"""Imported lists in the artifact store: checksummed, versioned, and loadable as a recommender.

Imported lists live in their own store, ``<cache>/recs`` (the same
:class:`~engine.artifacts.store.ArtifactStore`, so the same atomic writes, checksums, versions
and damaged-version handling), never among the trained models: the model loader and the
model picker's manifests stay about models. One version holds::

    lists.safetensors   users int64 [N], items int64 [N, L], scores float64 [N, L]
    config.json         the data configuration the lists were validated against
    manifest.json       the card (meta): label, source file sha256 / size / rows, import time,
                        list shape, score source, coverage, the data's content hash and id map digest

The fingerprint folder is keyed by the label *and* the data (content hash and split settings):
the same label imported for another split of the data is another artifact, and importing a
label again for the same data makes a new version of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine import __version__
from engine.artifacts.store import ArtifactRef, ArtifactStore
from engine.assembly import DEFAULT_CACHE, Prepared, prepare
from engine.config import RunConfig
from engine.data.idmap import IdMap
from engine.data.schema import USER, Dataset
from engine.evaluation.accuracy import HitTable, hit, mrr, ndcg, precision, recall
from engine.evaluation.topk import held_out
from engine.models.registry import model_names
from engine.recommender import Recommender
from engine.recs.model import RANK, ListModel
from engine.recs.reading import ParsedLists, read_lists

RECS_DIR = "recs"
KIND = "imported"
LISTS = "lists"
CONFIG = "config"
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Preparing data for lists needs a registered model name (prepare() checks it first); the most
# popular baseline has no text features, so no language model is loaded for imported lists.
DATA_ONLY_MODEL = "pop"
_CARD_METRICS = (("ndcg", ndcg), ("recall", recall), ("mrr", mrr), ("hit", hit), ("precision", precision))


def recs_store(cache_dir: str | Path = DEFAULT_CACHE) -> ArtifactStore:
    """The store of imported lists under ``cache_dir`` (default: ``data/cache``)."""
    return ArtifactStore(Path(cache_dir) / RECS_DIR)


def check_label(label: str) -> str:
    """``label`` if it can name imported lists; ValueError naming the rule otherwise.

    A label is a plain name (it appears in URLs, file names and ``--compare`` lists) and must not
    be a registered model's name, or ``--model gat`` would be ambiguous.
    """
    if not isinstance(label, str) or not LABEL_RE.fullmatch(label):
        raise ValueError(
            f"--name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (got {label!r})"
        )
    if label in model_names():
        raise ValueError(
            f"--name {label!r} is a model's name ({', '.join(model_names())}); choose another label, e.g. "
            f"'{label}-prod' or 'vendor-{label}'"
        )
    return label


def data_config(config: RunConfig) -> RunConfig:
    """The configuration lists are prepared with: the data part of ``config``, no model features."""
    data = config.data
    if data.data_dir is not None:  # the card must find the data again from another working directory
        data = replace(data, data_dir=str(Path(data.data_dir).expanduser().resolve()))
    return RunConfig(data=data).with_overrides(model={"name": DATA_ONLY_MODEL}, features={"text": False})


def prepare_data(config: RunConfig, *, cache_dir: str | Path = DEFAULT_CACHE) -> Prepared:
    """Load and split the data ``config`` names, as the lists will be audited on."""
    return prepare(data_config(config), cache_dir=Path(cache_dir))


def known_users(dataset: Dataset) -> pd.Index:
    """Every user id the dataset knows: the interaction log's and the users table's."""
    ids = pd.Index(pd.unique(dataset.interactions[USER].astype(str)))
    if dataset.users is not None:
        ids = ids.union(pd.Index(dataset.users[USER].astype(str)), sort=False)
    return ids


def idmap_digest(idmap: IdMap) -> str:
    """sha256 of the id map: stored lists hold internal indices, valid only for this exact map."""
    digest = hashlib.sha256()
    for ids in (idmap.users, idmap.items):
        digest.update("\x1f".join(ids).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def lists_fingerprint(label: str, prep: Prepared) -> str:
    """The store fingerprint of ``label`` on ``prep``'s data and split."""
    split_settings = prep.config.fingerprint_dict()["data"]
    text = json.dumps({"label": label, "data": prep.data_hash, "split": split_settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def coverage_metrics(model: ListModel, prep: Prepared, ks: tuple[int, ...] = (10, 20)) -> dict[str, Any]:
    """Test accuracy of the lists over the test users they cover, for the card (``test_ndcg@10``, ...).

    Cut-offs longer than the lists are left out. The audit reports the same figures (and more);
    the card keeps them so model pickers can show them without auditing.
    """
    users, relevant, _ = held_out(prep.split, "test")
    covered, items, _ = model.lists_for(users)
    out: dict[str, Any] = {"test_users": len(users), "test_users_covered": len(covered)}
    if not len(covered):
        return out
    table = HitTable.from_topk(items, relevant[covered])
    for k in (k for k in ks if k <= model.length):
        out.update({f"test_{name}@{k}": float(fn(table, k).mean()) for name, fn in _CARD_METRICS})
    return out


def _card(label: str, parsed: ParsedLists, prep: Prepared, metrics: dict[str, Any]) -> dict[str, Any]:
    src = parsed.source
    return {
        "model": label,
        "kind": KIND,
        "label": label,
        "description": f"lists imported from {src.name}",
        "source": {"file": src.name, "path": src.path, "sha256": src.sha256, "bytes": src.bytes, "format": src.format},
        "rows": parsed.rows,
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lists": {
            "users": len(parsed.users),
            "length": int(parsed.items.shape[1]),
            "scores": parsed.score_source,
            "users_without_history": parsed.users_without_history,
        },
        "data": {
            "dataset": prep.dataset.name,
            "content_hash": prep.data_hash,
            "idmap_sha256": idmap_digest(prep.split.idmap),
            "users": prep.split.n_users,
            "items": prep.split.n_items,
        },
        "metrics": metrics,
        "engine_version": __version__,
    }


def import_lists(
    config: RunConfig,
    recs: str | Path,
    label: str,
    *,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
    cache_dir: str | Path = DEFAULT_CACHE,
    prep: Prepared | None = None,
) -> tuple[ArtifactRef, dict[str, Any]]:
    """Validate a lists file against the data ``config`` names and store it under ``label``.

    Nothing is stored from a file with a problem.

    Args:
        config: names the dataset (and split) the lists are for.
        recs: the CSV or Parquet lists file.
        label: the lists' name (not a model's name).
        columns: file column -> canonical name (default: None).
        encoding: the CSV file's encoding (default: ``"utf-8"``).
        cache_dir: cache root; lists go to ``<cache_dir>/recs`` (default: ``data/cache``).
        prep: the prepared data, when the caller has it (default: None, prepared here).

    Returns:
        ``(ref, card)``: where the version was stored, and its card.

    Raises:
        DataValidationError: the file has problems (all listed, each naming file, row, column, value).
        ValueError: a bad label.
    """
    check_label(label)
    prep = prep if prep is not None else prepare_data(config, cache_dir=cache_dir)
    parsed = read_lists(
        recs, idmap=prep.split.idmap, known_users=known_users(prep.dataset), columns=columns, encoding=encoding
    )
    model = _model(parsed.users, parsed.items, parsed.scores, prep, parsed.score_source)
    card = _card(label, parsed, prep, coverage_metrics(model, prep))
    tensors = {
        LISTS: {
            "users": torch.from_numpy(parsed.users),
            "items": torch.from_numpy(parsed.items),
            "scores": torch.from_numpy(parsed.scores),
        }
    }
    store = recs_store(cache_dir)
    ref = store.save(
        prep.dataset.name,
        lists_fingerprint(label, prep),
        tensors=tensors,
        json_files={CONFIG: prep.config.to_dict()},
        meta=card,
    )
    return ref, card


def _model(users: np.ndarray, items: np.ndarray, scores: np.ndarray, prep: Prepared, source: str) -> ListModel:
    return ListModel(users, items, scores, n_users=prep.split.n_users, n_items=prep.split.n_items, score_source=source)


def list_imported(cache_dir: str | Path = DEFAULT_CACHE, dataset: str | None = None) -> list[dict[str, Any]]:
    """Every stored version of imported lists (manifests only), oldest first.

    Rows are :meth:`~engine.artifacts.store.ArtifactStore.list_models` rows (``model`` is the
    label) with ``imported: True``.
    """
    return [{**row, "imported": True} for row in recs_store(cache_dir).list_models(dataset)]


def load_imported(
    config: RunConfig,
    label: str,
    *,
    cache_dir: str | Path = DEFAULT_CACHE,
    version: int | None = None,
    prep: Prepared | None = None,
) -> Recommender:
    """The lists stored as ``label`` for the data ``config`` names, as a :class:`Recommender`.

    Raises:
        ValueError: no lists of that label for this data (the message says which exist).
    """
    prep = prep if prep is not None else prepare_data(config, cache_dir=cache_dir)
    store = recs_store(cache_dir)
    dataset = prep.dataset.name
    fp = lists_fingerprint(label, prep)
    loaded = store.load(dataset, fp, version=version)
    if loaded is None:
        rows = list_imported(cache_dir, dataset) if (store.root / dataset).is_dir() else []
        same = [r for r in rows if r["model"] == label]
        if same:
            raise ValueError(
                f"imported lists {label!r} of dataset {dataset!r} were imported for other data or another split "
                f"(or that version is missing); import them again for this data with gatlens import-recs"
            )
        labels = sorted({str(r["model"]) for r in rows})
        known = f"imported lists of {dataset!r}: {', '.join(labels)}" if labels else f"none is imported for {dataset!r}"
        raise ValueError(f"no model or imported lists named {label!r} ({known}); import with gatlens import-recs")
    meta = loaded.manifest["meta"]
    if meta.get("data", {}).get("idmap_sha256") != idmap_digest(prep.split.idmap):
        raise ValueError(
            f"imported lists {label!r} ({loaded.ref.path}) index users and items of another id map than the "
            "data gives today; import the file again"
        )
    t = loaded.tensors[LISTS]
    model = _model(
        t["users"].numpy(), t["items"].numpy(), t["scores"].numpy(), prep, meta.get("lists", {}).get("scores", RANK)
    )
    return Recommender(prep=prep, model=model, meta=meta, ref=loaded.ref)


def load_imported_at(path: str | Path, *, cache_dir: str | Path | None = None) -> Recommender:
    """The imported lists stored in the version folder ``path`` (a :func:`list_imported` row's ``path``).

    Args:
        path: ``<cache>/recs/<dataset>/<fingerprint[:16]>/v<N>``.
        cache_dir: the cache root (default: None, the one ``path`` lies in).
    """
    folder = Path(path)
    cache_dir = folder.resolve().parents[3] if cache_dir is None else cache_dir
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    config = RunConfig.from_dict(json.loads((folder / f"{CONFIG}.json").read_text(encoding="utf-8")))
    return load_imported(config, str(manifest["meta"]["label"]), cache_dir=cache_dir, version=int(manifest["version"]))


def is_imported_at(path: str | Path) -> bool:
    """Whether the version folder ``path`` holds imported lists (read from its manifest; False if unreadable)."""
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("meta", {}).get("kind") == KIND
