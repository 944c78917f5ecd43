"""One row per stored version for model pickers, from its manifest alone (torch is never imported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.artifacts.layout import ArtifactRef
from engine.artifacts.write import total_bytes


def summary_row(ref: ArtifactRef, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The :meth:`engine.artifacts.store.ArtifactStore.list_models` row of one version."""
    parent = manifest["parent"]
    return {
        "dataset": ref.dataset,
        "fingerprint": ref.fingerprint,
        "version": ref.version,
        "created": manifest["created"],
        "engine_version": manifest.get("engine_version"),
        "path": str(ref.path),
        "model": _model_name(manifest["meta"]),
        "metrics": _scalar_metrics(manifest["meta"]),
        "bytes": total_bytes(manifest["files"]),
        "parent": None if parent is None else {"fingerprint": parent["fingerprint"], "version": parent["version"]},
        "fingerprint_inputs": _fingerprint_inputs(manifest["meta"]),
    }


def _fingerprint_inputs(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the fingerprint was computed from, as the model card records it (None where it does not).

    ``{"config", "data_hash", "text_weights"}``: with them the service tells, reading nothing more,
    whether today's engine still gives the stored fingerprint.
    """
    try:
        data_hash = meta["data"]["content_hash"]
        return {
            "config": dict(meta["config"]),
            "data_hash": str(data_hash),
            "text_weights": (meta.get("language_model") or {}).get("weights_sha256"),
        }
    except (KeyError, TypeError):
        return None


def _model_name(meta: Mapping[str, Any]) -> str | None:
    model = meta.get("model")
    if isinstance(model, Mapping):
        model = model.get("name")
    return model if isinstance(model, str) else None


def _scalar_metrics(meta: Mapping[str, Any]) -> dict[str, Any]:
    metrics = meta.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
