"""Turn top-K lists into the audit's numbers: accuracy, registered list metrics, item exposure, trade-offs.

Plain, re-ranked and swept lists all go through :func:`evaluate_lists`, the
same code, so a re-ranked list's accuracy is as honest as the model's own
(a re-ranker never sees the held-out items) and strength 0 reproduces the
plain audit exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.evaluation.compute import list_metrics, user_metrics
from engine.evaluation.lists import ListContext, exposure_counts
from engine.evaluation.metrics import all_metrics, find
from engine.evaluation.popularity import popularity_tiers
from engine.evaluation.ranking import metrics_from_topk
from engine.fairness.audit_inputs import AuditInputs
from engine.fairness.exposure import exposure_by_group, interaction_share, item_exposure, lorenz_curve
from engine.fairness.rerank import AUDIT_RERANKERS, PROVIDER, apply_rerank, parse_audit_rerank, provider_rerank

POPULARITY, CATEGORY = "popularity", "category"
DEFAULT_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class ListResults:
    """Everything measured on one set of lists."""

    per_user: pd.DataFrame  # accuracy columns (with n_relevant) then per-user list metrics
    accuracy: dict[str, float]
    beyond_accuracy: dict[str, float]
    exposure: pd.DataFrame
    exposure_gap: dict[str, float]


def parse_metrics(metrics: Sequence[str] | str | None, k: int) -> tuple[list[str], tuple[int, ...]]:
    """Validated group-metric names (lower case) and the cut-offs the accuracy table needs.

    Accepted: ``NAME@N`` for a registered accuracy metric with ``1 <= N <= k``,
    or the key of a registered per-user list metric (``aplt``, ``novelty``, ...).
    """
    if metrics is None:
        metrics = (f"ndcg@{k}", f"recall@{k}")
    if isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m.strip()]
    accuracy = [m.key for m in all_metrics("accuracy")]
    per_user = [m.key for m in all_metrics("user")]
    out: list[str] = []
    ks = {k}
    for metric in metrics:
        name = str(metric).strip().lower()
        base, sep, cut = name.partition("@")
        if sep:
            if base not in accuracy or not cut.isdigit() or not 1 <= int(cut) <= k:
                raise ValueError(
                    f"unknown metric {metric!r}; expected NAME@N with NAME one of {accuracy} "
                    f"and 1 <= N <= k={k}, or a per-user beyond-accuracy metric {per_user}"
                )
            ks.add(int(cut))
            name = f"{base}@{int(cut)}"
        elif name not in per_user:
            raise ValueError(f"unknown metric {metric!r}; expected e.g. 'ndcg@{k}' or one of {per_user}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"metrics names no metric (got {metrics!r})")
    return out, tuple(sorted(ks))


def list_context(inputs: AuditInputs, topk: np.ndarray, *, full: bool = True) -> ListContext:
    """The registry's view of ``topk``; ``full=False`` leaves out text, history and relevant items (sweeps)."""
    return ListContext.build(
        topk,
        inputs.popularity,
        n_users=inputs.n_users_total,
        item_categories=inputs.categories,
        item_embeddings=inputs.text if full else None,
        history=inputs.history if full else None,
        relevant=inputs.relevant if full else None,
    )


def accuracy_means(frame: pd.DataFrame) -> dict[str, float]:
    """Mean over users of every ``metric@k`` column."""
    return {c: float(frame[c].mean()) for c in frame.columns if "@" in c}


def evaluate_lists(inputs: AuditInputs, topk: np.ndarray, ks: tuple[int, ...]) -> ListResults:
    """Accuracy, every registered list metric (per user and overall) and item exposure of ``topk``."""
    acc = metrics_from_topk(topk, inputs.relevant, ks)
    ctx = list_context(inputs, topk)
    users = user_metrics(ctx)
    exposure, gaps = exposure_table(inputs, topk)
    return ListResults(
        per_user=pd.concat([acc, users], axis=1),
        accuracy=accuracy_means(acc),
        beyond_accuracy=list_metrics(ctx, users),
        exposure=exposure,
        exposure_gap=gaps,
    )


def lorenz_of(topk: np.ndarray, n_items: int) -> pd.DataFrame:
    """Lorenz curve of recommendation counts over the whole catalog."""
    return lorenz_curve(exposure_counts(topk, n_items))


def category_exposure(
    topk: np.ndarray,
    item_categories: np.ndarray,
    names: Sequence[str],
    item_popularity: np.ndarray,
    *,
    weighting: str = "log",
) -> pd.DataFrame:
    """Exposure share per category; each item spreads its exposure evenly over its categories.

    Items may carry several categories, so :func:`~engine.fairness.exposure.exposure_by_group`
    (one label per item) does not apply; the same split also gives the
    catalog share (items) and the interaction share (training interactions).
    Items without a category are left out of all three shares.

    Args:
        topk: ``[n_users, K]`` item indices (``-1`` = padding).
        item_categories: ``[n_items, C]`` multi-hot.
        names: the ``C`` category names.
        item_popularity: ``[n_items]`` training interaction counts.
        weighting: ``"log"`` or ``"uniform"`` (default: ``"log"``).

    Returns:
        Columns ``group, exposure_share, catalog_share, interaction_share,
        exposure_ratio``, rows by catalog share, largest first.
    """
    cats = np.asarray(item_categories, dtype=np.float64)
    rows = cats.sum(axis=1, keepdims=True)
    dist = cats / np.where(rows > 0, rows, 1.0)
    exposure = item_exposure(topk, len(cats), weighting=weighting) @ dist
    catalog = dist.sum(axis=0)
    inter = np.asarray(item_popularity, dtype=np.float64) @ dist

    def share(x: np.ndarray) -> np.ndarray:
        return x / x.sum() if x.sum() > 0 else np.full(len(x), np.nan)

    frame = pd.DataFrame(
        {
            "group": list(names),
            "exposure_share": share(exposure),
            "catalog_share": share(catalog),
            "interaction_share": share(inter),
        }
    )
    frame["exposure_ratio"] = frame["exposure_share"] / frame["catalog_share"]
    return frame.sort_values("catalog_share", ascending=False, kind="stable").reset_index(drop=True)


def exposure_table(inputs: AuditInputs, topk: np.ndarray) -> tuple[pd.DataFrame, dict[str, float]]:
    """Exposure by popularity tier, provider (when known) and category, and each dimension's gap.

    The gap is the total-variation distance between exposure and catalog
    shares, ``0.5 * sum_g |exposure_g - catalog_g|``.
    """
    frames = []
    for dimension, groups in ((POPULARITY, popularity_tiers(inputs.popularity)), (PROVIDER, inputs.providers)):
        if groups is None:
            continue
        inter = interaction_share(groups, inputs.popularity)
        table = exposure_by_group(topk, groups, interactions_share=inter, weighting=inputs.weighting)
        frames.append(table.assign(dimension=dimension))
    if inputs.categories is not None:
        table = category_exposure(
            topk, inputs.categories, inputs.category_names, inputs.popularity, weighting=inputs.weighting
        )
        frames.append(table.assign(dimension=CATEGORY))
    frame = pd.concat(frames, ignore_index=True)
    frame["group"] = frame["group"].astype(str)
    frame = frame[["dimension", "group", "exposure_share", "catalog_share", "interaction_share", "exposure_ratio"]]
    gaps = {
        str(dim): float(0.5 * (f["exposure_share"] - f["catalog_share"]).abs().sum())
        for dim, f in frame.groupby("dimension", sort=False)
    }
    return frame, gaps


def rerank_lists(inputs: AuditInputs, spec: str, k: int) -> np.ndarray:
    """The top-``k`` after the re-ranker ``spec`` (``"pop:0.5"``, ``"provider:0.3"``, ...) picks from the candidates."""
    name, strength = parse_audit_rerank(spec)
    if name == PROVIDER:
        return provider_rerank(inputs.candidates, inputs.scores, inputs.over_exposed_providers(), k, strength)
    vectors, _ = inputs.mmr_vectors
    return apply_rerank(
        spec,
        inputs.candidates,
        inputs.scores,
        k=k,
        item_vectors=vectors,
        item_popularity=inputs.popularity,
        item_categories=inputs.categories,
        history_category_dist=inputs.history_category_dist if name == "calibrated" else None,
    )


def parse_sweep_spec(spec: str) -> tuple[str, tuple[float, ...]]:
    """Parse a sweep spec: ``"pop"`` (strengths 0, 0.1, ..., 1) or ``"mmr:0,0.2,0.5"``.

    Args:
        spec: re-ranker name (``mmr``, ``pop``, ``calibrated``, ``provider``), optionally
            followed by ``:`` and comma-separated strengths.

    Returns:
        ``(name, strengths)``, strengths sorted ascending and each valid for the re-ranker.
    """
    if not isinstance(spec, str):
        raise ValueError(f"sweep spec must be a string like 'pop' or 'mmr:0,0.5,1' (got {spec!r})")
    name, sep, values = spec.strip().lower().partition(":")
    name = name.strip()
    if name not in AUDIT_RERANKERS:
        raise ValueError(f"invalid sweep spec {spec!r}: re-ranker must be one of {list(AUDIT_RERANKERS)}")
    if not sep:
        return name, DEFAULT_SWEEP
    strengths = []
    for value in values.split(","):
        if not value.strip():
            continue
        _, strength = parse_audit_rerank(f"{name}:{value}")  # validates the range per re-ranker
        strengths.append(strength)
    if not strengths:
        raise ValueError(f"invalid sweep spec {spec!r}: no strengths after ':'")
    return name, tuple(sorted(set(strengths)))


def tradeoff_table(
    inputs: AuditInputs, name: str, strengths: Sequence[float], k: int, metrics: list[str], ks: tuple[int, ...]
) -> pd.DataFrame:
    """One row per strength: accuracy, the registry's trade-off metrics, provider gap, marginal cost.

    Columns: ``reranker, strength``, the accuracy metrics of ``metrics``, every
    registered metric flagged ``tradeoff`` (NaN when its inputs are missing),
    ``provider_gap`` (when items have a provider), and
    ``<metric>_cost_per_aplt``: the drop of the first accuracy metric per unit
    of long-tail share gained since the previous strength (marginal), plus
    ``<metric>_cost_per_aplt_from_base`` measured from strength 0.
    """
    accuracy_metrics = [m for m in metrics if "@" in m]
    columns = [m.key for m in all_metrics() if m.tradeoff]
    rows = []
    for strength in strengths:
        topk = rerank_lists(inputs, f"{name}:{strength}", k)
        acc = metrics_from_topk(topk, inputs.relevant, ks)
        values = list_metrics(list_context(inputs, topk, full=False))
        row: dict[str, Any] = {"reranker": name, "strength": float(strength)}
        row.update({m: float(acc[m].mean()) for m in accuracy_metrics})
        row.update({key: values.get(key, np.nan) for key in columns})
        if inputs.providers is not None:
            row["provider_gap"] = exposure_table(inputs, topk)[1][PROVIDER]
        rows.append(row)
    table = pd.DataFrame(rows)
    if accuracy_metrics and find("aplt") is not None and "aplt" in table:
        _add_cost_per_aplt(table, accuracy_metrics[0])
    return table


def _add_cost_per_aplt(table: pd.DataFrame, first: str) -> None:
    """Cost of one unit (1.0 = 100 percentage points) of long-tail share, in ``first`` lost.

    Between consecutive strengths (marginal) and from strength 0 (average);
    undefined where the share did not move.
    """
    d_metric = table[first].diff()
    d_tail = table["aplt"].diff()
    with np.errstate(divide="ignore", invalid="ignore"):
        table[f"{first}_cost_per_aplt"] = np.where(d_tail.abs() > 1e-12, -d_metric / d_tail, np.nan)
        base_tail = table["aplt"] - table["aplt"].iloc[0]
        base_cost = -(table[first] - table[first].iloc[0]) / base_tail
        table[f"{first}_cost_per_aplt_from_base"] = np.where(base_tail.abs() > 1e-12, base_cost, np.nan)
