"""Every cache of the dashboard lives here: loaded models (``st.cache_resource``) and frames (``st.cache_data``).

Nothing here draws. Heavy engine modules are imported inside the functions, so importing
this module (and listing models, which reads manifests only) never loads torch.
Arguments named with a leading underscore are not hashed by Streamlit; the model's
``key`` argument stands in for them in the cache key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import settings

log = logging.getLogger(__name__)


class ModelNotReadyError(RuntimeError):
    """A stored model cannot be used as it is (missing, corrupt, or stale); the message says what to do."""


# ----------------------------------------------------------------------------- models
def model_key(row: dict[str, Any]) -> str:
    """The ``model`` URL key of a :func:`list_models` row."""
    return settings.model_key(row.get("model"), row["fingerprint"], row["version"])


@st.cache_data(ttl=5, show_spinner=False)
def list_models(cache_dir: str) -> list[dict[str, Any]]:
    """Every valid stored model version (manifests only), newest first, each with a ``key``.

    A short TTL lets models trained from the CLI appear without restarting the app.
    """
    import engine.service as service

    # Imported lists (gatlens import-recs) are listed beside the models, marked ``imported``.
    rows = sorted(
        service.list_models(cache_dir) + service.list_lists(cache_dir), key=lambda r: str(r["created"]), reverse=True
    )
    for row in rows:
        row["key"] = model_key(row)
    return rows


_NOT_VERIFIED = (
    "The stored model could not be loaded: it failed verification (moved aside as corrupt) "
    "or is no longer in the cache. Retrain it with the Train button or `gatlens train`."
)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_recommender(cache_dir: str, artifact_path: str) -> Any:
    """Load one stored model version as an :class:`engine.service.ServedModel` (verified; never trains).

    The version at ``artifact_path`` is loaded, not the newest one of its fingerprint, and a
    version made by ``gatlens update`` comes with the interactions it added.

    Args:
        cache_dir: artifact and feature cache root.
        artifact_path: the model version's directory (``list_models()[...]["path"]``).

    Raises:
        ModelNotReadyError: the artifact is gone, unreadable, corrupt or stale.
    """
    import engine.service as service

    folder = Path(artifact_path)
    if service.is_lists_path(folder):
        try:
            return service.load_lists_at(folder)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelNotReadyError(
                f"The imported lists at {artifact_path} could not be loaded ({exc}); import them again with "
                "`gatlens import-recs`."
            ) from None
    try:
        config = service.RunConfig.from_dict(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        fingerprint, version = str(manifest["fingerprint"]), int(manifest["version"])
    except FileNotFoundError as exc:
        raise ModelNotReadyError(
            f"The model folder {artifact_path} has no {Path(str(exc.filename)).name}; retrain the model."
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelNotReadyError(
            f"The model folder {artifact_path} is unreadable ({exc}); retrain the model."
        ) from None
    try:
        rec = service.load_model(config, version, fingerprint=fingerprint, cache_dir=cache_dir)
    except service.StaleArtifactError:
        # The stored config now fingerprints to another artifact: the data or the engine changed
        # since this model was trained, so what would load is not the model that was picked.
        raise ModelNotReadyError(
            "This stored model no longer matches the current data or engine version (its fingerprint "
            "changed). Pick the newest model in the sidebar, or retrain with the Train button or `gatlens train`."
        ) from None
    if rec is None:
        raise ModelNotReadyError(_NOT_VERIFIED)
    return rec


def explain_methods(model: str) -> tuple[str, ...]:
    """The registered explanation methods that support ``model`` (none for an unregistered name)."""
    import engine.service as service

    return service.explain_methods(model)


def explainable_models() -> tuple[str, ...]:
    """The registered models that some explanation method supports (they get a reason per card)."""
    import engine.service as service

    return tuple(name for name in service.model_names() if service.explain_methods(name))


def train_model(config: Any, cache_dir: str, on_epoch: Callable[[int, int, dict[str, Any]], None]) -> Any:
    """Train (or load) ``config`` with a per-epoch progress hook, then refresh the model list."""
    import engine.service as service

    rec = service.train(config, cache_dir=cache_dir, on_epoch=on_epoch)
    list_models.clear()
    return rec


@st.cache_data(show_spinner=False, max_entries=8)
def dataset_summary(_rec: Any, key: str) -> dict[str, Any]:
    """``rec.dataset_summary()`` (group-bys over every interaction) once per model."""
    return _rec.dataset_summary()


# ----------------------------------------------------------------------------- users
@st.cache_data(show_spinner=False, max_entries=8)
def user_table(_rec: Any, key: str) -> pd.DataFrame:
    """One row per user id the dataset knows: ``user_id``, ``n_train`` (training interactions),
    ``n_logged`` (all logged interactions), ``status`` and the users table's attributes."""
    return _rec.user_table()


# ----------------------------------------------------------------------------- audits
@st.cache_resource(max_entries=8, show_spinner=False)
def audit(_rec: Any, key: str, options: str) -> Any:
    """``rec.audit(**options)`` memoised per model and options (``options`` is a JSON object)."""
    return _rec.audit(**json.loads(options))


@st.cache_data(max_entries=16, show_spinner=False)
def rendered(_build: Callable[[], str], key: str) -> str:
    """Memoise an expensive HTML string (a pyvis graph, a report) under ``key``."""
    return _build()
