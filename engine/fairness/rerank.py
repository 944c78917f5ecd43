"""Re-rankers that run after scoring: trade a little relevance for diversity, long tail or calibration.

The re-rankers live in single-purpose modules and are re-exported here: the shared conventions
and plain :func:`top_k` in :mod:`engine.fairness.rerank_base`, :func:`mmr`, :func:`popularity_penalty`
and :func:`provider_rerank` in :mod:`engine.fairness.rerank_relevance`, :func:`calibrated` and
:func:`calibration_kl` in :mod:`engine.fairness.rerank_calibrated`.

CLI specs such as ``"mmr:0.3"`` are parsed by :func:`parse_rerank_spec` and run
by :func:`apply_rerank`. The provider-aware :func:`provider_rerank` (spec
``"provider:0.3"``, parsed by :func:`parse_audit_rerank`) also needs to know
which providers are over-exposed, which the audit derives from the plain lists.
"""

from __future__ import annotations

import math

import numpy as np

from engine.fairness.rerank_base import top_k
from engine.fairness.rerank_calibrated import calibrated, calibration_kl
from engine.fairness.rerank_relevance import mmr, popularity_penalty, provider_rerank

__all__ = [
    "AUDIT_RERANKERS",
    "PROVIDER",
    "RERANKERS",
    "apply_rerank",
    "calibrated",
    "calibration_kl",
    "mmr",
    "parse_audit_rerank",
    "parse_rerank_spec",
    "popularity_penalty",
    "provider_rerank",
    "top_k",
]

RERANKERS = ("none", "mmr", "pop", "calibrated")
PROVIDER = "provider"
# What the audit accepts: RERANKERS' plus the provider-aware re-ranker (it needs provider flags).
AUDIT_RERANKERS = (*RERANKERS[1:], PROVIDER)
_UNIT_STRENGTH = ("mmr", "calibrated")  # strengths that are mixing weights in [0, 1]


def parse_rerank_spec(spec: str) -> tuple[str, float]:
    """Parse a CLI re-ranking spec such as ``"mmr:0.3"``, ``"pop:0.5"``, ``"calibrated:0.4"`` or ``"none"``.

    Args:
        spec: ``"name:strength"``, name one of ``mmr``, ``pop``, ``calibrated``
            (case-insensitive), or ``"none"``. ``mmr`` and ``calibrated`` take
            strengths in ``[0, 1]``; ``pop`` takes any strength ``>= 0``.

    Returns:
        ``(name, strength)``; ``("none", 0.0)`` for ``"none"``.
    """
    if not isinstance(spec, str):
        raise ValueError(f"re-rank spec must be a string like 'mmr:0.3' (got {spec!r})")
    name, sep, value = spec.strip().lower().partition(":")
    name = name.strip()
    usage = f"expected 'name:strength' with name one of {list(RERANKERS[1:])} (e.g. 'mmr:0.3'), or 'none'"
    if name == "none":
        if sep and value.strip() not in ("", "0", "0.0"):
            raise ValueError(f"invalid re-rank spec {spec!r}: 'none' takes no strength")
        return "none", 0.0
    if name not in RERANKERS:
        raise ValueError(f"invalid re-rank spec {spec!r}: unknown re-ranker {name!r}; {usage}")
    if not sep or not value.strip():
        raise ValueError(f"invalid re-rank spec {spec!r}: missing strength; {usage}")
    try:
        strength = float(value)
    except ValueError:
        bad = value.strip()
        raise ValueError(f"invalid re-rank spec {spec!r}: strength {bad!r} is not a number") from None
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"invalid re-rank spec {spec!r}: strength must be finite and >= 0")
    if name in _UNIT_STRENGTH and strength > 1:
        raise ValueError(f"invalid re-rank spec {spec!r}: {name} strength must lie in [0, 1]")
    return name, strength


def parse_audit_rerank(spec: str) -> tuple[str, float]:
    """Parse a re-ranking spec of the audit: :func:`parse_rerank_spec`'s plus ``"provider:S"``.

    ``provider`` (strength ``>= 0``) is :func:`provider_rerank`. It is not in
    :data:`RERANKERS` because it needs per-item provider flags that
    :func:`apply_rerank` does not take; :mod:`engine.fairness.audit` derives
    them from its plain lists.

    Returns:
        ``(name, strength)``.
    """
    name, sep, value = str(spec).strip().lower().partition(":")
    name = name.strip()
    if isinstance(spec, str) and name not in (*RERANKERS, PROVIDER):
        raise ValueError(
            f"invalid re-rank spec {spec!r}: unknown re-ranker {name!r}; expected 'name:strength' with name "
            f"one of {list(AUDIT_RERANKERS)} (e.g. 'provider:0.3'), or 'none'"
        )
    if name != PROVIDER:
        return parse_rerank_spec(spec)
    if not sep or not value.strip():
        raise ValueError(f"invalid re-rank spec {spec!r}: missing strength, e.g. 'provider:0.3'")
    try:
        strength = float(value)
    except ValueError:
        raise ValueError(f"invalid re-rank spec {spec!r}: strength {value.strip()!r} is not a number") from None
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"invalid re-rank spec {spec!r}: strength must be finite and >= 0")
    return PROVIDER, strength


def apply_rerank(
    spec: str,
    candidates: np.ndarray,
    scores: np.ndarray,
    *,
    k: int,
    item_vectors: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    item_categories: np.ndarray | None = None,
    history_category_dist: np.ndarray | None = None,
) -> np.ndarray:
    """Run the re-ranker named by a CLI spec (see :func:`parse_rerank_spec`).

    Args:
        spec: e.g. ``"mmr:0.3"``, ``"pop:0.5"``, ``"calibrated:0.4"``, ``"none"``.
        candidates: ``[n_users, C]`` item indices.
        scores: ``[n_users, C]`` scores.
        k: list length.
        item_vectors: needed by ``mmr`` (default: None).
        item_popularity: needed by ``pop`` (default: None).
        item_categories: needed by ``calibrated`` (default: None).
        history_category_dist: needed by ``calibrated`` (default: None).

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    name, strength = parse_rerank_spec(spec)

    def need(value, arg: str):
        if value is None:
            raise ValueError(f"re-rank spec {spec!r} needs {arg}, which was not given")
        return value

    if name == "mmr":
        return mmr(candidates, scores, need(item_vectors, "item_vectors"), k, strength)
    if name == "pop":
        return popularity_penalty(candidates, scores, need(item_popularity, "item_popularity"), k, strength)
    if name == "calibrated":
        cats = need(item_categories, "item_categories")
        hist = need(history_category_dist, "history_category_dist")
        return calibrated(candidates, scores, cats, hist, k, strength)
    return top_k(candidates, scores, k)
