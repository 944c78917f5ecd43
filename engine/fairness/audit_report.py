"""The audit's result: :class:`AuditReport`, its group tables and its JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.fairness.frame import GroupFrame


@dataclass
class AuditReport:
    """Everything one audit found, as tidy frames and flat dicts (the dashboard draws them).

    Attributes:
        beyond_accuracy: catalog- and list-level metrics of the audited lists
            (:func:`engine.evaluation.beyond.beyond_accuracy` keys).
        accuracy: mean over evaluated users, keys ``"ndcg@10"``, ``"recall@10"``, ...
        groups: long frame, one row per (feature, group, metric): ``feature,
            group, metric, value, ci_low, ci_high, size, too_small``.
        disparities: one row per (feature, metric): ``max_group, min_group,
            n_groups, difference, ci_low, ci_high, significant, cis_overlap,
            ratio, ratio_ci_low, ratio_ci_high`` over the groups large enough
            to judge (see :func:`disparity_table`).
        exposure: one row per (dimension, group): ``dimension`` is
            ``popularity`` (head/mid/tail), ``provider`` (when the items table
            has one) or ``category``; columns ``exposure_share, catalog_share,
            interaction_share, exposure_ratio`` (position-weighted exposure).
        exposure_gap: per dimension, the total-variation distance between
            exposure and catalog shares, ``0.5 * sum_g |exposure_g - catalog_g|``
            (0 = exposure proportional to catalog size; for two providers it is
            the over-exposed provider's excess share).
        lorenz: Lorenz curve of recommendation counts over the catalog (``x, y``).
        per_user: one row per evaluated user: ``u`` (internal), ``user_id``,
            ``n_relevant``, accuracy columns, per-user beyond-accuracy columns
            and one column per group variable.
        settings: the audit's parameters and definitions, JSON-ready.
        tradeoff: the sweep table when ``sweep`` was given (see :func:`run_audit`).
        baseline: when ``rerank`` was given, ``accuracy``, ``beyond_accuracy``
            and ``exposure_gap`` of the plain (not re-ranked) lists.
        seconds: wall time of the audit.
    """

    beyond_accuracy: dict[str, float]
    accuracy: dict[str, float]
    groups: pd.DataFrame
    disparities: pd.DataFrame
    exposure: pd.DataFrame
    exposure_gap: dict[str, float]
    lorenz: pd.DataFrame
    per_user: pd.DataFrame
    settings: dict[str, Any]
    tradeoff: pd.DataFrame | None = None
    baseline: dict[str, Any] | None = None
    seconds: float = float("nan")

    def to_dict(self, *, per_user: bool = False, lorenz: bool = False) -> dict[str, Any]:
        """JSON-ready nested dict (NaN becomes None, numpy scalars become Python numbers).

        Keys: ``beyond_accuracy``, ``accuracy``, ``groups`` (``{feature:
        {"groups": {label: {"size", "too_small", "metrics": {metric: {"value",
        "ci_low", "ci_high"}}}}, "disparity": {metric: {...}}}}``), ``exposure``
        (``{dimension: {"gap", "groups": [rows]}}``), ``tradeoff`` (list of
        rows, only when swept), ``baseline`` (only when re-ranked),
        ``settings`` and ``seconds``.

        Args:
            per_user: include the per-user table as a list of rows (default: False).
            lorenz: include the Lorenz curve as ``{"x": [...], "y": [...]}`` (default: False).
        """
        out: dict[str, Any] = {
            "beyond_accuracy": dict(self.beyond_accuracy),
            "accuracy": dict(self.accuracy),
            "groups": _groups_dict(self.groups, self.disparities),
            "exposure": {
                dim: {
                    "gap": self.exposure_gap.get(dim),
                    "groups": frame.drop(columns="dimension").to_dict("records"),
                }
                for dim, frame in self.exposure.groupby("dimension", sort=False)
            },
        }
        if self.tradeoff is not None:
            out["tradeoff"] = self.tradeoff.to_dict("records")
        if self.baseline is not None:
            out["baseline"] = self.baseline
        if lorenz:
            out["lorenz"] = {"x": self.lorenz["x"].tolist(), "y": self.lorenz["y"].tolist()}
        if per_user:
            out["per_user"] = self.per_user.to_dict("records")
        out["settings"] = dict(self.settings)
        out["seconds"] = self.seconds
        return jsonable(out)


def disparity_table(gf: GroupFrame) -> pd.DataFrame:
    """Gap and ratio between the best and the worst judged group, per (feature, metric), with CIs.

    The difference and its CI are :meth:`GroupFrame.difference_ci` (the same
    two groups in every resample). ``significant``: the difference CI
    excludes 0. ``cis_overlap``: the two groups' own CIs overlap (a stricter,
    conservative reading). ``ratio = min_group / max_group`` and its CI come
    from the same resamples.
    """
    table = gf.difference_ci()
    ratio = gf.ratio()
    ci = gf.ci()
    table["significant"] = table["ci_low"] > 0
    table["cis_overlap"] = pd.Series(pd.NA, index=table.index, dtype="boolean")
    table["ratio"] = np.nan
    table["ratio_ci_low"] = np.nan
    table["ratio_ci_high"] = np.nan
    features = {f.name: f for f in gf._features}
    for row in table.itertuples():
        if pd.isna(row.max_group) or pd.isna(row.difference):
            continue
        table.at[row.Index, "ratio"] = ratio.loc[row.feature, row.metric]
        lo_max = ci.loc[(row.feature, row.max_group), (row.metric, "lower")]
        hi_min = ci.loc[(row.feature, row.min_group), (row.metric, "upper")]
        if np.isfinite(lo_max) and np.isfinite(hi_min):
            table.at[row.Index, "cis_overlap"] = bool(lo_max <= hi_min)
        feature = features[row.feature]
        boot = gf._replicates(feature)
        if boot is None:
            continue
        labels = list(feature.labels)
        g_max, g_min = labels.index(row.max_group), labels.index(row.min_group)
        m = gf.metrics.index(row.metric)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = boot[:, g_min, m] / boot[:, g_max, m]
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            lo, hi = gf._quantiles(ratios)
            table.at[row.Index, "ratio_ci_low"], table.at[row.Index, "ratio_ci_high"] = float(lo), float(hi)
    table["significant"] = table["significant"].where(table["ci_low"].notna(), False).astype(bool)
    for column in ("max_group", "min_group"):  # object dtype keeps "no group" as None, not NaN
        table[column] = pd.Series([None if pd.isna(g) else str(g) for g in table[column]], dtype=object)
    return table


def _groups_dict(groups: pd.DataFrame, disparities: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for feature, frame in groups.groupby("feature", sort=False):
        labels: dict[str, Any] = {}
        for row in frame.itertuples():
            entry = labels.setdefault(
                str(row.group), {"size": int(row.size), "too_small": bool(row.too_small), "metrics": {}}
            )
            entry["metrics"][row.metric] = {"value": row.value, "ci_low": row.ci_low, "ci_high": row.ci_high}
        disparity = {
            str(r["metric"]): {key: r[key] for key in r.index if key not in ("feature", "metric")}
            for _, r in disparities[disparities["feature"] == feature].iterrows()
        }
        out[str(feature)] = {"groups": labels, "disparity": disparity}
    return out


def jsonable(obj: Any) -> Any:
    """Recursively convert to JSON types; non-finite floats and pandas NA become None."""
    if isinstance(obj, Mapping):
        return {str(key): jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(value) for value in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, str):
        return obj
    return str(obj)


def group_tables(
    per_user: pd.DataFrame,
    metrics: list[str],
    features: pd.DataFrame,
    *,
    n_boot: int,
    ci: float,
    min_group_size: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-group means with bootstrap CIs (long frame) and the disparity table, for ``metrics``.

    Args:
        per_user: one row per evaluated user, aligned with ``features``; holds every metric column.
        metrics: the columns to break down by group.
        features: one column per group variable, indexed by internal user index.
        n_boot: bootstrap resamples (0: no CIs).
        ci: confidence level.
        min_group_size: smaller groups are flagged and not compared.
        seed: bootstrap seed.
    """
    missing = [m for m in metrics if m not in per_user.columns]
    if missing:
        raise ValueError(f"metric(s) {missing!r} are not available for this model and dataset")
    values = per_user[metrics].set_axis(features.index)
    bad = [m for m in metrics if not np.isfinite(values[m].to_numpy(dtype=np.float64)).all()]
    if bad:
        raise ValueError(f"metric(s) {bad!r} are undefined for some users (e.g. lists shorter than 2); pick others")
    gf = GroupFrame(
        values, sensitive_features=features, n_boot=int(n_boot), ci=ci, min_group_size=min_group_size, seed=seed
    )
    return gf.to_frame(), disparity_table(gf)
