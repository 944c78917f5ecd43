"""What an audit found, in plain sentences: significant group gaps and exposure verdicts.

:func:`audit_findings` turns an :class:`~engine.fairness.audit_report.AuditReport` into one
tidy frame that the CLI, the dashboard's findings panel and the HTML report all read, so the
three say the same thing in the same order.

* **Group gaps**: every (grouping, metric) whose best-minus-worst difference has a 95%
  bootstrap CI above 0 (the report's ``significant`` flag). Their size is the *relative*
  gap, how much lower the lower group's value is than the higher group's (``1 - ratio``):
  unit-free, so a gap in NDCG and one in novelty (bits) compare. Order: accuracy gaps
  between groups of a users-table attribute (who the users are: the fairness question)
  first, then accuracy gaps between usage segments (activity, mainstreamness: partly a
  matter of how much data a user gives), then gaps in what the lists look like (long-tail
  share, novelty), each by relative size, largest first.
* **Exposure verdicts**: how concentrated recommendations are on few items (the exposure
  Gini against :data:`GINI_THRESHOLDS`) and whether the long tail gets its share of the
  slots (the long-tail share of recommended items against the long tail's share of the
  catalog, :data:`TAIL_THRESHOLDS`). The thresholds are stated in every sentence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from engine.evaluation.metrics import find, format_value, label
from engine.fairness.audit_inputs import ACTIVITY, MAINSTREAMNESS

GAP, CONCENTRATION, LONG_TAIL = "group gap", "exposure concentration", "long-tail exposure"
ATTRIBUTE, USAGE = "user attribute", "usage segment"
STRONG, MODERATE, OK = "strong", "moderate", "ok"
STRONG_GAP = 0.25
"""A significant gap whose lower group is at least this much (relatively) below the higher one is *strong*."""
GINI_THRESHOLDS = (0.5, 0.8)
"""Exposure Gini at or above the first value is *concentrated*, at or above the second *strongly concentrated*."""
TAIL_THRESHOLDS = (0.25, 0.75)
"""Long-tail share of the slots over the long tail's share of the catalog: below the second value
the tail is *under-exposed*, below the first *strongly under-exposed*."""
SECTIONS = (
    "Accuracy gaps between user attributes",
    "Accuracy gaps between usage segments",
    "Differences in the lists between user attributes",
    "Differences in the lists between usage segments",
)
"""The order of the gap findings (``section``), each section sorted by relative size."""
COLUMNS = [
    "kind",
    "section",
    "feature",
    "feature_kind",
    "metric",
    "metric_label",
    "low_group",
    "high_group",
    "low_value",
    "high_value",
    "difference",
    "ci_low",
    "ci_high",
    "relative",
    "severity",
    "verdict",
    "threshold",
    "text",
]


def audit_findings(report: Any) -> pd.DataFrame:
    """The audit's findings, most important first (see the module docstring for the order).

    Args:
        report: an :class:`~engine.fairness.audit_report.AuditReport`.

    Returns:
        One row per finding with the columns of :data:`COLUMNS`: ``kind`` (:data:`GAP`,
        :data:`CONCENTRATION` or :data:`LONG_TAIL`); for gaps ``section`` (one of :data:`SECTIONS`),
        ``feature`` (the grouping),
        ``feature_kind`` (:data:`ATTRIBUTE` / :data:`USAGE`), ``metric`` (result key) and its
        ``metric_label``, ``low_group`` / ``high_group`` with their ``low_value`` /
        ``high_value``, ``difference`` with its 95% CI (``ci_low``, ``ci_high``) and
        ``relative`` (``difference / high_value``); for verdicts ``metric`` is the measured
        key and ``low_value`` the measured value. Every row has ``severity`` (:data:`STRONG`,
        :data:`MODERATE`, :data:`OK`), a short ``verdict``, the ``threshold`` it was judged by
        (empty for gaps: significance is the test) and one plain sentence, ``text``.
    """
    rows = _gap_rows(report.disparities, report.groups)
    rows += _exposure_rows(report)
    return pd.DataFrame(rows, columns=COLUMNS)


def _gap_rows(disparities: pd.DataFrame, groups: pd.DataFrame) -> list[dict[str, Any]]:
    if disparities is None or disparities.empty:
        return []
    sig = disparities[disparities["significant"].fillna(False).astype(bool)]
    values = groups.set_index(["feature", "metric", "group"])["value"] if groups is not None and len(groups) else None
    rows = []
    for r in sig.itertuples(index=False):
        low, high = (_value(values, r.feature, r.metric, g) for g in (r.min_group, r.max_group))
        relative = 1.0 - float(r.ratio) if _finite(r.ratio) else float("nan")
        feature_kind = USAGE if r.feature in (ACTIVITY, MAINSTREAMNESS) else ATTRIBUTE
        metric = find(str(r.metric))
        accuracy = metric is not None and metric.scope == "accuracy"
        order = (0 if accuracy else 2) + (0 if feature_kind == ATTRIBUTE else 1)
        rows.append(
            {
                "kind": GAP,
                "section": SECTIONS[order],
                "feature": str(r.feature),
                "feature_kind": feature_kind,
                "metric": str(r.metric),
                "metric_label": label(str(r.metric)),
                "low_group": str(r.min_group),
                "high_group": str(r.max_group),
                "low_value": low,
                "high_value": high,
                "difference": float(r.difference),
                "ci_low": float(r.ci_low),
                "ci_high": float(r.ci_high),
                "relative": relative,
                "severity": STRONG if _finite(relative) and relative >= STRONG_GAP else MODERATE,
                "verdict": "significant gap",
                "threshold": "",
                "text": _gap_sentence(r, low, high, relative),
                "_order": order,
            }
        )
    rows.sort(key=lambda row: (row["_order"], -(row["relative"] if _finite(row["relative"]) else 0.0)))
    for row in rows:
        del row["_order"]
    return rows


def _value(values: pd.Series | None, feature: Any, metric: Any, group: Any) -> float:
    try:
        return float(values.loc[(feature, metric, group)]) if values is not None else float("nan")
    except KeyError:
        return float("nan")


def _gap_sentence(r: Any, low: float, high: float, relative: float) -> str:
    metric = str(r.metric)
    values = (
        f"{format_value(metric, low)} vs {format_value(metric, high)}"
        if _finite(low) and _finite(high)
        else f"lower by {format_value(metric, r.difference)}"
    )
    size = f" ({relative:.0%} lower)" if _finite(relative) else ""
    return (
        f"By {r.feature}: {r.min_group} users get {label(metric)} {values} for {r.max_group}{size}; "
        f"difference {difference_text(metric, r.difference)}, 95% CI {difference_text(metric, r.ci_low)} "
        f"to {difference_text(metric, r.ci_high)}."
    )


def difference_text(metric: str, value: Any) -> str:
    """A difference of ``metric`` values as text: percentage points for a percent metric (``23.2 pp``),
    the metric's own format otherwise."""
    entry = find(metric)
    if entry is not None and entry.fmt.kind == "percent" and _finite(value):
        return f"{float(value) * 100:.{entry.fmt.digits}f} pp"
    return format_value(metric, value)


def _exposure_rows(report: Any) -> list[dict[str, Any]]:
    rows = []
    beyond = report.beyond_accuracy
    gini = beyond.get("gini_index")
    if _finite(gini):
        lo, hi = GINI_THRESHOLDS
        severity = STRONG if gini >= hi else MODERATE if gini >= lo else OK
        verdict = {STRONG: "strongly concentrated", MODERATE: "concentrated", OK: "spread out"}[severity]
        coverage = beyond.get("catalog_coverage")
        covered = f"; {pct(coverage)} of the catalog is recommended to anyone" if _finite(coverage) else ""
        threshold = f"Gini {lo:g}–{hi:g} is concentrated, {hi:g} or more strongly concentrated"
        rows.append(
            _verdict_row(
                CONCENTRATION,
                "gini_index",
                float(gini),
                severity,
                verdict,
                threshold,
                f"Recommendations are {verdict} on few items: exposure Gini {gini:.2f} "
                f"(0 = every item equally often, 1 = one item gets everything){covered}. "
                f"Threshold: {threshold}.",
            )
        )
    aplt = beyond.get("aplt", report.accuracy.get("aplt"))
    tail_catalog = _tail_catalog_share(report.exposure)
    if _finite(aplt) and _finite(tail_catalog) and tail_catalog > 0:
        lo, hi = TAIL_THRESHOLDS
        ratio = float(aplt) / tail_catalog
        severity = STRONG if ratio < lo else MODERATE if ratio < hi else OK
        verdict = {STRONG: "strongly under-exposed", MODERATE: "under-exposed", OK: "fairly exposed"}[severity]
        threshold = (
            f"a long-tail share under {hi:.0%} of the tail's catalog share is under-exposed, "
            f"under {lo:.0%} strongly under-exposed"
        )
        rows.append(
            _verdict_row(
                LONG_TAIL,
                "aplt",
                float(aplt),
                severity,
                verdict,
                threshold,
                f"Long-tail items are {pct(tail_catalog)} of the catalog but get {pct(aplt)} of the "
                f"recommendation slots: {verdict}. Threshold: {threshold}.",
                reference=tail_catalog,
            )
        )
    return rows


def _verdict_row(
    kind: str,
    metric: str,
    value: float,
    severity: str,
    verdict: str,
    threshold: str,
    text: str,
    reference: float = float("nan"),
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, None)
    row.update(
        kind=kind,
        metric=metric,
        metric_label=label(metric),
        low_value=value,
        high_value=reference,
        severity=severity,
        verdict=verdict,
        threshold=threshold,
        text=text,
    )
    return row


def _tail_catalog_share(exposure: pd.DataFrame) -> float:
    if exposure is None or exposure.empty:
        return float("nan")
    tail = exposure[(exposure["dimension"] == "popularity") & (exposure["group"] == "tail")]
    return float(tail["catalog_share"].iloc[0]) if len(tail) else float("nan")


def pct(value: Any) -> str:
    """A share as a percentage with enough digits to be non-zero: ``52%``, ``2.4%``, ``0.02%``, ``<0.01%``."""
    x = float(value)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0%"
    if abs(x) < 1e-4:
        return "<0.01%"
    digits = 0 if abs(x) >= 0.1 else 1 if abs(x) >= 0.01 else 2
    return f"{x:.{digits}%}"


def _finite(value: Any) -> bool:
    try:
        return value is not None and bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False
