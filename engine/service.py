"""The one door into the engine for the CLI and the dashboard: plain Python, numpy and pandas out.

Everything a page or a command needs is a function here or a method of :class:`ServedModel`:
list, load and train models (with a progress callback), user and history tables, top-K lists
(optionally re-ranked), explanations, what-if edits, audits and comparisons. No tensor crosses
this door: results are DataFrames, numpy arrays, dicts and the plain result dataclasses of the
explainer and the audit (whose fields are DataFrames and numbers).

Heavy work (explanations, audits) is computed lazily and memoised per model, in the spirit of
explainerdashboard's explainer object; the memo lives on the :class:`ServedModel`, not on the
engine's :class:`~engine.recommender.Recommender`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.artifacts.store import ArtifactStore
from engine.assembly import DEFAULT_CACHE, artifact_ref_str, stored_fingerprint
from engine.config import ATTENTIONS as ATTENTIONS
from engine.config import RunConfig
from engine.data.schema import USER
from engine.errors import (
    KNOWN,
    NO_HISTORY,
    UNKNOWN,
    DataValidationError,
    GatlensError,
    StaleArtifactError,
    UnknownItemError,
    UnknownUserError,
    UnsupportedModelError,
)

# metric registry, re-exported for the dashboard and the CLI (see the block at the end of this file)
from engine.evaluation.metrics import HIGHER as HIGHER
from engine.evaluation.metrics import LOWER as LOWER
from engine.evaluation.metrics import NEUTRAL as NEUTRAL
from engine.evaluation.metrics import all_metrics
from engine.evaluation.metrics import format_value as format_value
from engine.evaluation.metrics import glossary as _glossary
from engine.evaluation.metrics import label as _label
from engine.evaluation.metrics import table_format as table_format
from engine.evaluation.metrics import values_table as values_table
from engine.evaluation.popularity import TIERS_DEFINITION as TIERS_DEFINITION
from engine.evaluation.popularity import popularity_tiers as popularity_tiers
from engine.explain import Explanation, WhatIf, explain_pair, what_if
from engine.explain.algorithms import get_algorithm, method_names, methods_for
from engine.explain.evaluate import ExplainEval, demo_triggers
from engine.explain.evaluate import evaluate_explanations as _evaluate_explanations
from engine.explain.text import interaction_verb as _interaction_verb
from engine.fairness.audit import AuditReport, compare_models, run_audit
from engine.fairness.findings import audit_findings as _audit_findings
from engine.fairness.findings import difference_text as _difference_text
from engine.fairness.rerank import apply_rerank
from engine.models.registry import model_names as _model_names
from engine.models.registry import model_spec
from engine.pipeline import load_version, train_or_load, update_latest
from engine.recommender import WHAT_CHANGED_COLUMNS, Recommendations, Recommender
from engine.recs import export as _export
from engine.recs import stored as _stored
from engine.recs.truth import Truth, read_truth
from engine.training.callbacks import FunctionCallback
from engine.update.stored import StoredModel as StoredModel
from engine.update.stored import stored_dataset_name as stored_dataset_name
from engine.update.stored import stored_models as stored_models

log = logging.getLogger(__name__)

__all__ = [
    "ATTENTIONS",
    "HIGHER",
    "KNOWN",
    "LOWER",
    "NEUTRAL",
    "NO_HISTORY",
    "TIERS_DEFINITION",
    "UNKNOWN",
    "WHAT_CHANGED_COLUMNS",
    "AuditReport",
    "DataValidationError",
    "Explanation",
    "GatlensError",
    "Recommendations",
    "RunConfig",
    "ServedModel",
    "StaleArtifactError",
    "StoredModel",
    "UnknownItemError",
    "UnknownUserError",
    "UnsupportedModelError",
    "WhatIf",
    "audit_findings",
    "compare",
    "difference_text",
    "evaluate_explanations",
    "explain_methods",
    "export_lists",
    "format_value",
    "headline_metrics",
    "import_lists",
    "is_lists_path",
    "list_lists",
    "list_metric_keys",
    "list_models",
    "load_latest",
    "load_lists",
    "load_lists_at",
    "load_model",
    "method_description",
    "metric_glossary",
    "metric_help",
    "metric_label",
    "model_info",
    "model_names",
    "popularity_tiers",
    "stored_dataset_name",
    "stored_models",
    "table_format",
    "train",
    "update",
    "values_table",
]

EpochHook = Callable[[int, int, dict[str, Any]], None]


class ServedModel:
    """A trained model as the CLI and the dashboard see it: plain data out, memoised heavy work.

    Args:
        rec: the engine's recommender (model + the data it was trained on).
    """

    def __init__(self, rec: Recommender) -> None:
        self._rec = rec
        self._explanations: dict[tuple[Any, ...], Explanation] = {}
        self._audits: dict[tuple[Any, ...], AuditReport] = {}

    def __repr__(self) -> str:
        return f"ServedModel({self.key!r})"

    @property
    def recommender(self) -> Recommender:
        """The engine's recommender behind this door, for engine-side code (tests, scripts, benchmarks).

        The dashboard never touches it (``tests/test_boundaries.py`` checks): it holds tensors.
        """
        return self._rec

    @property
    def user_ids(self) -> tuple[str, ...]:
        """External ids of the users with training history, in the model's internal order."""
        return tuple(self._rec.idmap.users)

    # -- identity -----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """``dataset/fingerprint[:16]/vN`` of the stored artifact, or ``dataset/model`` when not stored."""
        ref = self._rec.ref
        return artifact_ref_str(ref) if ref is not None else f"{self.dataset_name}/{self.model_name}"

    @property
    def fingerprint(self) -> str | None:
        return None if self._rec.ref is None else self._rec.ref.fingerprint

    @property
    def version(self) -> int | None:
        return self._rec.version

    @property
    def from_cache(self) -> bool:
        """Whether this model was loaded from a stored version rather than trained by this process."""
        return self._rec.from_cache

    @property
    def artifact_path(self) -> str | None:
        """The stored version's folder, or None when the model is not stored."""
        return None if self._rec.ref is None else str(self._rec.ref.path)

    @property
    def config(self) -> RunConfig:
        """The configuration the model was trained with."""
        return self._rec.prep.config

    @property
    def model_name(self) -> str:
        return self._rec.model_name

    @property
    def dataset_name(self) -> str:
        return self._rec.dataset.name

    @property
    def interaction_verb(self) -> str:
        """The verb the reasons use for an interaction: "watched" on the movie datasets, "chose" elsewhere."""
        return _interaction_verb(self._rec.dataset.name)

    @property
    def imported(self) -> bool:
        """True for another system's imported lists (no model behind them: nothing to explain)."""
        return self._rec.meta.get("kind") == _stored.KIND

    @property
    def meta(self) -> dict[str, Any]:
        """The model card (config, language model, training, metrics, update)."""
        return self._rec.meta

    @property
    def metrics(self) -> dict[str, float]:
        return self._rec.metrics

    @property
    def curve(self) -> list[dict[str, Any]]:
        """The training curve, one dict per epoch."""
        return list(self._rec.curve)

    def lineage(self) -> list[dict[str, Any]]:
        """See :meth:`engine.recommender.Recommender.lineage`."""
        return self._rec.lineage()

    def what_changed(self, limit: int | None = 20) -> pd.DataFrame:
        """See :meth:`engine.recommender.Recommender.what_changed`."""
        return self._rec.what_changed(limit)

    def dataset_summary(self) -> dict[str, Any]:
        return self._rec.dataset_summary()

    # -- catalog and users --------------------------------------------------------------------
    @property
    def items(self) -> pd.DataFrame:
        """The catalog in internal item order: ``item_id``, ``title``, ``categories``, … and ``popularity``."""
        return self._rec.items

    @property
    def item_popularity(self) -> np.ndarray:
        """Training interactions per item, aligned with :attr:`items`."""
        return np.asarray(self._rec.item_popularity)

    @property
    def category_names(self) -> list[str]:
        return list(self._rec.prep.category_names)

    def has_item(self, item_id: str) -> bool:
        return self._rec.idmap.has_item(str(item_id))

    def user_status(self, user_id: str) -> str:
        """``known``, ``no_history`` or ``unknown`` (see :mod:`engine.errors`)."""
        return self._rec.user_status(user_id)

    def example_user(self) -> str | None:
        """A user id with training history, for "ids look like …" hints (None for an empty model)."""
        return self._rec.idmap.users[0] if self._rec.idmap.n_users else None

    def history(self, user_id: str) -> pd.DataFrame:
        """See :meth:`engine.recommender.Recommender.history`."""
        return self._rec.history(user_id)

    def user_table(self) -> pd.DataFrame:
        """One row per user id the dataset knows.

        Returns:
            Columns ``user_id``, ``n_logged`` (all logged interactions), ``n_train`` (training
            interactions), ``status`` (``known`` / ``no_history``) and the users table's
            attributes, sorted by id.
        """
        rec = self._rec
        logged = rec.dataset.interactions.groupby(USER).size()
        ids = pd.Index(logged.index.astype(str))
        users = rec.dataset.users
        if users is not None:
            ids = ids.union(pd.Index(users[USER].astype(str)))
        frame = pd.DataFrame({USER: ids})
        frame["n_logged"] = frame[USER].map(logged).fillna(0).astype(int)
        train_counts = rec.prep.split.matrix("train").getnnz(axis=1)
        idmap = rec.idmap
        frame["n_train"] = [int(train_counts[idmap.user_index(u)]) if idmap.has_user(u) else 0 for u in frame[USER]]
        frame["status"] = [KNOWN if n else NO_HISTORY for n in frame["n_train"]]
        if users is not None:
            frame = frame.merge(users.astype({USER: str}), on=USER, how="left")
        return frame.sort_values(USER, kind="stable").reset_index(drop=True)

    # -- lists --------------------------------------------------------------------------------
    def recommend(self, user_id: str, k: int = 10, **filters: Any) -> Recommendations:
        """See :meth:`engine.recommender.Recommender.recommend` (``categories``, ``hide_popular``)."""
        return self._rec.recommend(user_id, k, **filters)

    def recommend_reranked(self, user_id: str, spec: str, k: int, *, pool: int = 100, **filters: Any) -> pd.DataFrame:
        """One user's top-``k`` after a post-processing re-ranker (the audit's re-rankers).

        Args:
            user_id: a user with training history (others get their unre-ranked list).
            spec: ``"mmr:0.3"``, ``"pop:0.5"``, ``"calibrated:0.4"`` or ``"none"``.
            k: list length.
            pool: candidates taken from the model's ranking (default: 100).
            **filters: passed to :meth:`recommend` (``categories``, ``hide_popular``).

        Returns:
            The re-ranked list (columns of :attr:`Recommendations.items`) with ``model_rank``
            (the rank before re-ranking).
        """
        rec = self._rec
        base = rec.recommend(user_id, min(pool, len(rec.items)), **filters).items
        if base.empty or spec.split(":")[0] == "none" or rec.user_status(user_id) != KNOWN:
            return base.head(k).assign(model_rank=base["rank"].head(k))
        idx = np.asarray(rec.idmap.item_indices(list(base["item_id"])), dtype=np.int64)
        cats = rec.category_matrix()
        u = rec.idmap.user_index(user_id)
        order = apply_rerank(
            spec,
            idx[None, :],
            base["score"].to_numpy(dtype=np.float64)[None, :],
            k=min(k, len(idx)),
            item_vectors=cats,
            item_popularity=np.asarray(rec.item_popularity, dtype=np.float64),
            item_categories=cats,
            history_category_dist=rec.history_category_distribution(np.array([u]))[0:1],
        )[0]
        position = {int(i): p for p, i in enumerate(idx)}
        picked = base.iloc[[position[int(i)] for i in order if i >= 0]].copy()
        picked["model_rank"] = picked["rank"].to_numpy()
        picked["rank"] = np.arange(1, len(picked) + 1)
        return picked.reset_index(drop=True)

    # -- explanations -------------------------------------------------------------------------
    def explain(self, user_id: str, item_id: str, **kwargs: Any) -> Explanation:
        """Why ``item_id`` for ``user_id``: see :func:`engine.explain.explain_pair` (memoised per arguments)."""
        key = (str(user_id), str(item_id), tuple(sorted(kwargs.items())))
        if key not in self._explanations:
            self._explanations[key] = explain_pair(self._rec, str(user_id), str(item_id), **kwargs)
        return self._explanations[key]

    def what_if(self, user_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = (), k: int = 10) -> WhatIf:
        """Re-score the user's top-K after editing their history: see :func:`engine.explain.what_if`."""
        return what_if(self._rec, str(user_id), add=list(add), remove=list(remove), k=k)

    # -- audits -------------------------------------------------------------------------------
    def audit(self, **options: Any) -> AuditReport:
        """Beyond-accuracy, group and exposure audit: see :func:`engine.fairness.audit.run_audit` (memoised)."""
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        if key not in self._audits:
            truth = _truth(self._rec, options.pop("truth", None))
            self._audits[key] = run_audit(self._rec, truth=truth, **options)
        return self._audits[key]


def _truth(rec: Recommender, truth: Truth | str | Path | None) -> Truth | None:
    """A ``truth`` audit option given as a file path, read and validated against ``rec``'s data."""
    if truth is None or isinstance(truth, Truth):
        return truth
    return read_truth(
        truth, idmap=rec.idmap, known_users=_stored.known_users(rec.dataset), threshold=rec.prep.config.data.threshold
    )


# -- models ------------------------------------------------------------------------------------
def list_models(cache_dir: str | Path = DEFAULT_CACHE) -> list[dict[str, Any]]:
    """Every valid stored model version (manifests only, nothing loaded), newest first.

    Args:
        cache_dir: artifact and feature cache root (default: ``data/cache``).

    Returns:
        One dict per version with ``model``, ``dataset``, ``fingerprint``, ``version``,
        ``path``, ``created`` and the model card's figures, as the store lists them, and
        ``current``: whether today's engine still gives the stored fingerprint for the stored
        config and data hash (False: trained by an older engine or model revision, so it cannot be
        loaded; retrain it).
    """
    rows = ArtifactStore(Path(cache_dir) / "models").list_models()[::-1]
    for row in rows:
        row["current"] = _is_current(row)
    return rows


def _is_current(row: dict[str, Any]) -> bool:
    """Whether a store row's version still fingerprints to its stored fingerprint (unrecorded inputs: False)."""
    inputs = row.get("fingerprint_inputs")
    if not inputs:
        return False
    try:
        config = RunConfig.from_dict(inputs["config"])
    except (ValueError, TypeError, KeyError):
        return False
    return stored_fingerprint(config, inputs["data_hash"], inputs["text_weights"]) == row["fingerprint"]


def load_model(
    config: RunConfig,
    version: int | None = None,
    *,
    fingerprint: str | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
) -> ServedModel | None:
    """One stored model version (its updates replayed), or None when it is missing or damaged; never trains.

    Raises:
        StaleArtifactError: ``fingerprint`` is not what ``config`` gives today.
    """
    rec = load_version(config, version, fingerprint=fingerprint, cache_dir=Path(cache_dir))
    return None if rec is None else ServedModel(rec)


def train(
    config: RunConfig,
    *,
    cache_dir: str | Path = DEFAULT_CACHE,
    force: bool = False,
    progress: bool = False,
    on_epoch: EpochHook | None = None,
) -> ServedModel:
    """Train ``config`` (or load its valid cached artifact) and serve it.

    Args:
        config: the full run configuration.
        cache_dir: artifact and feature cache root (default: ``data/cache``).
        force: retrain even when a valid artifact exists (default: False).
        progress: show progress bars on stderr (default: False).
        on_epoch: called as ``on_epoch(epoch, max_epochs, figures)`` after every epoch (default: None).
    """
    callbacks = [FunctionCallback(on_epoch)] if on_epoch is not None else []
    rec = train_or_load(config, force=force, progress=progress, callbacks=callbacks, cache_dir=Path(cache_dir))
    return ServedModel(rec)


def load_latest(config: RunConfig, *, cache_dir: str | Path = DEFAULT_CACHE) -> ServedModel | None:
    """The newest stored version for ``config`` (its updates replayed), or None when none is stored; never trains."""
    return load_model(config, cache_dir=cache_dir)


def update(
    model: ServedModel,
    new_interactions: str | Path | pd.DataFrame,
    *,
    new_items: str | Path | pd.DataFrame | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    **options: Any,
) -> ServedModel:
    """Fold new interactions into the newest version of ``model`` (one writer at a time) and store a new
    version: see :func:`engine.pipeline.update_latest` and :func:`engine.update.apply.update_model`."""
    rec = update_latest(model._rec, new_interactions, new_items=new_items, cache_dir=Path(cache_dir), **options)
    return ServedModel(rec)


def evaluate_explanations(model: ServedModel, **options: Any) -> ExplainEval:
    """Faithfulness of every explanation method on ``model``: see :func:`engine.explain.evaluate.evaluate_explanations`.

    On the demo world the planted triggers are the ground truth (found by regenerating the world).
    """
    return _evaluate_explanations(model._rec, triggers=demo_triggers(model._rec), **options)


def audit_findings(report: AuditReport) -> pd.DataFrame:
    """What an audit found, most important first: significant group gaps (with CIs, by relative size)
    and plain verdicts with stated thresholds on exposure concentration and long-tail share.
    See :func:`engine.fairness.findings.audit_findings`."""
    return _audit_findings(report)


def difference_text(metric: str, value: Any) -> str:
    """A difference between two values of ``metric`` as text (percentage points for a percent metric)."""
    return _difference_text(metric, value)


def compare(models: dict[str, ServedModel], **options: Any) -> pd.DataFrame:
    """Audit several models on the same data side by side: see :func:`engine.fairness.audit.compare_models`.

    Args:
        models: display name -> served model, all on the same data.
        **options: passed to the audit of every model.
    """
    if options.get("truth") is not None and models:  # one file for all: they share the data
        options["truth"] = _truth(next(iter(models.values()))._rec, options["truth"])
    return compare_models({name: m._rec for name, m in models.items()}, **options)


# -- recommendation lists: export ours, import another system's ----------------------------------
def export_lists(
    model: ServedModel, out: str | Path, *, k: int = 10, on_progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Every user's top-``k`` of ``model`` to a CSV or Parquet file: see :func:`engine.recs.export.export_lists`."""
    return _export.export_lists(model._rec, out, k=k, on_progress=on_progress)


def import_lists(
    config: RunConfig,
    recs: str | Path,
    label: str,
    *,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
    cache_dir: str | Path = DEFAULT_CACHE,
) -> dict[str, Any]:
    """Validate another system's lists file and store it as ``label``: see :func:`engine.recs.stored.import_lists`.

    Returns:
        The stored card with ``path`` (the version folder) and ``version`` added.
    """
    ref, card = _stored.import_lists(config, recs, label, columns=columns, encoding=encoding, cache_dir=cache_dir)
    return {**card, "path": str(ref.path), "version": ref.version}


def load_lists(
    config: RunConfig, label: str, *, version: int | None = None, cache_dir: str | Path = DEFAULT_CACHE
) -> ServedModel:
    """Imported lists ``label`` for the data ``config`` names, served like a model (ValueError if none)."""
    return ServedModel(_stored.load_imported(config, label, cache_dir=cache_dir, version=version))


def load_lists_at(path: str | Path) -> ServedModel:
    """The imported lists stored in a :func:`list_lists` row's ``path``, served like a model."""
    return ServedModel(_stored.load_imported_at(path))


def list_lists(cache_dir: str | Path = DEFAULT_CACHE) -> list[dict[str, Any]]:
    """Every stored version of imported lists (manifests only), newest first; rows as :func:`list_models`'
    with ``model`` = the label and ``imported`` = True."""
    return _stored.list_imported(cache_dir)[::-1]


def spreadsheet_safe_csv(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV whose text cells a spreadsheet would run as a formula (``= + - @``) start with ``'``.

    Group names and titles come from data files: a cell like ``=HYPERLINK(...)`` must stay text when an
    analyst opens the download in a spreadsheet. Numbers (``-0.5``) are left as they are.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            cells = out[col]
            text = cells.notna()
            out.loc[text, col] = _export.neutralise_formulas(cells[text])
    return out.to_csv(index=False).encode("utf-8")


def is_lists_path(path: str | Path) -> bool:
    """Whether a stored version folder holds imported lists rather than a model."""
    return _stored.is_imported_at(path)


# -- metric registry (for the dashboard and the CLI) -------------------------------------------
# Labels, definitions and formats come from engine.evaluation.metrics, defined there once:
# format_value(key, value), table_format(key), values_table(values), HIGHER / LOWER / NEUTRAL
# and TIERS_DEFINITION with popularity_tiers(item_popularity) (head / mid / long tail, the one
# definition) are re-exported at the top of this file.


def metric_label(key: str) -> str:
    """Plain-words name of a result key (``"NDCG@10"``, ``"Long-tail share"``); the key itself if unknown."""
    return _label(key)


def metric_glossary(keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Plain-words glossary: ``key, label, definition, direction, unit, reference, scope`` per metric.

    Args:
        keys: result keys to describe in this order (``"ndcg@10"`` is labelled
            ``"NDCG@10"``); unknown keys are left out (default: None, every metric).
    """
    return _glossary(None if keys is None else list(keys))


def metric_help(key: str) -> str | None:
    """One-line tooltip for ``key``: its definition and which direction is better (None if unknown)."""
    table = _glossary([key])
    if table.empty:
        return None
    row = table.iloc[0]
    return f"{row['definition']} ({row['direction']}.)"


def headline_metrics() -> list[str]:
    """Keys of the list metrics shown as headline tiles, in registry order."""
    return [m.key for m in all_metrics() if m.headline]


def list_metric_keys() -> list[str]:
    """Keys of every registered list metric (catalog level and per user), in registry order."""
    return [m.key for m in all_metrics() if m.scope in ("catalog", "user")]


# -- end metric registry --


# -- model and explanation-method registries (for the dashboard's pickers and the CLI) --------
def model_names() -> tuple[str, ...]:
    """Every registered model name (built-ins and plug-ins), in registration order."""
    return _model_names()


def explain_methods(model: str | None = None) -> tuple[str, ...]:
    """The registered explanation methods; with ``model``, those that support that model (none if unknown)."""
    return method_names() if model is None else methods_for(model)


def model_info(name: str) -> dict[str, Any]:
    """A registered model in plain data: ``name``, ``description``, ``trained``, ``text_features``,
    ``minibatch``, ``explain_methods`` and ``knobs`` (ValueError for an unknown name)."""
    spec = model_spec(name)
    caps = spec.capabilities
    return {
        "name": spec.name,
        "description": spec.description,
        "trained": caps.trained,
        "text_features": caps.text_features,
        "minibatch": caps.minibatch,
        "explain_methods": methods_for(name),
        "knobs": list(spec.knobs),
    }


def method_description(method: str) -> str:
    """One line on an explanation method, for a picker's help (ValueError for an unknown one)."""
    return get_algorithm(method).description
