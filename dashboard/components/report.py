"""One self-contained HTML audit report: plotly.js inlined once, tables escaped, no network needed."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import pandas as pd

import engine.service as service
from dashboard.adapters import RERANKERS as RERANKER_NAMES
from dashboard.components import charts
from dashboard.components.findings import findings_html
from dashboard.components.tables import PLAIN_COLUMNS

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2rem auto;
       padding: 0 1rem; color: #1f2430; }
h1 { color: #5b5bd6; } h2 { border-bottom: 1px solid #e5e7eb; padding-bottom: .3rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { border: 1px solid #e5e7eb; padding: .25rem .5rem; text-align: right; }
th { background: #f4f5fb; } td:first-child, th:first-child { text-align: left; }
.meta { color: #6b7280; font-size: .85rem; }
table.gl-defs td:last-child, table.gl-defs th:last-child { text-align: left; }
"""


def _table(frame: pd.DataFrame, floats: str = "{:.4f}", classes: str = "") -> str:
    # pandas escapes cell text by default (escape=True); keep it that way: group names are data.
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:  # None in a text column (e.g. no group to judge) is a dash, not "None"
            frame[column] = [
                ("—" if v is None or v == "–" or (isinstance(v, float) and v != v) else v) for v in frame[column]
            ]
    return frame.to_html(
        index=False, escape=True, float_format=floats.format, border=0, na_rep="—", classes=classes or None
    )


def _metrics_table(values: dict[str, Any]) -> str:
    """Registered metrics with plain names, formatted values, direction and definition (the registry's)."""
    table = service.values_table(values)
    shown = table[["label", "text", "direction", "definition"]]
    return _table(shown.set_axis(["Metric", "Value", "Better", "What it means"], axis=1), classes="gl-defs")


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain column names and labels: metric keys in a ``metric`` column and metric-named columns get the
    registry's labels, the audit's own columns (``ci_low``, ``too_small``, …) their plain names, and
    re-rankers the names the dashboard's picker uses."""
    out = frame.copy()
    if "metric" in out:
        out["metric"] = out["metric"].map(service.metric_label)
    if "reranker" in out:
        out["reranker"] = out["reranker"].map(lambda r: RERANKER_NAMES.get(str(r), str(r)))
    return out.rename(columns={c: _column_name(str(c)) for c in out.columns})


def _column_name(column: str) -> str:
    if column in PLAIN_COLUMNS:
        return PLAIN_COLUMNS[column]
    base, cost, since = column.partition("_cost_per_aplt")
    if cost:
        what = "since strength 0" if since else "since the previous strength"
        return f"{service.metric_label(base)} lost per unit of long-tail share ({what})"
    return service.metric_label(column)


def _by_metric(frame: pd.DataFrame, columns: tuple[str, ...], *, differences: bool = False) -> pd.DataFrame:
    """Each row's ``columns`` as text in the format of the row's ``metric`` (a share in percent, like the page)."""
    out = frame.copy()
    for column in columns:
        if column in out:
            fmt = service.difference_text if differences else service.format_value
            out[column] = [fmt(str(m), v) for m, v in zip(out["metric"], out[column], strict=True)]
    return out


def _percent_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Shares the registry prints in percent (long-tail share, coverage) as percent text, as on the page."""
    out = frame.copy()
    for column in out.columns:
        if service.metric_help(str(column)) is not None and service.table_format(str(column)) == "percent":
            out[column] = [service.format_value(str(column), v) for v in out[column]]
    return out


_DEFINED = {"exposure_gap": "Exposure gap (how it is computed)"}


def _glossary(report: Any) -> str:
    """Every metric in the report, defined in plain words, plus the report's own definitions."""
    e = html.escape
    keys = [*report.accuracy, *report.beyond_accuracy, *[f"{d}_gap" for d in getattr(report, "exposure_gap", {})]]
    rows = service.metric_glossary(keys)
    items = [
        f"<li><b>{e(r.label)}</b> ({e(r.direction)}): {e(r.definition)} <i>{e(r.reference)}</i></li>"
        for r in rows.itertuples()
    ]
    items.append(f"<li><b>Popularity tiers</b>: {e(service.TIERS_DEFINITION)}</li>")
    defs = report.settings.get("definitions", {})
    items += [
        f"<li><b>{e(_DEFINED.get(str(k), str(k)))}</b>: {e(str(v))}</li>"
        for k, v in defs.items()
        if k != "popularity_tiers"
    ]
    return "<h2>Glossary</h2><ul>" + "".join(items) + "</ul>"


def audit_report_html(report: Any, *, title: str = "GATLens audit") -> str:
    """Render an :class:`engine.fairness.audit.AuditReport` as one standalone HTML document.

    Args:
        report: the audit report.
        title: document title (escaped).

    Returns:
        HTML text (about 4.5 MB: plotly.js is inlined once so the file opens offline).
    """
    settings = report.settings
    e = html.escape
    # (heading, tables, figures) in reading order; figures are rendered after the layout is known.
    sections: list[tuple[str, list[str], list[Any]]] = [
        ("Accuracy", [_metrics_table(report.accuracy)], []),
        ("Beyond accuracy", [_metrics_table(report.beyond_accuracy)], []),
        ("Exposure concentration", [], [charts.lorenz(report.lorenz, gini=report.beyond_accuracy.get("gini_index"))]),
        (
            "Item exposure",
            [_table(_labelled(report.exposure))],
            [
                charts.exposure_bars(part, title=f"Exposure by {dim}")
                for dim, part in report.exposure.groupby("dimension", sort=False)
            ],
        ),
    ]
    disparities = getattr(report, "disparities", None)
    sections.append(
        (
            "User groups",
            [_table(_labelled(_by_metric(report.groups, ("value", "ci_low", "ci_high"))))]
            + (
                [_table(_labelled(_by_metric(disparities, ("difference", "ci_low", "ci_high"), differences=True)))]
                if disparities is not None
                else []
            ),
            [
                charts.group_intervals(
                    part,
                    metric=service.metric_label(str(metric)),
                    feature=str(feature),
                    percent=service.table_format(str(metric)) == "percent",
                )
                for (feature, metric), part in report.groups.groupby(["feature", "metric"], sort=False)
            ],
        )
    )
    if report.tradeoff is not None and not report.tradeoff.empty:
        first = next((c for c in report.tradeoff.columns if "@" in c and "cost" not in c), None)
        figs = (
            [
                charts.tradeoff(
                    report.tradeoff,
                    x="aplt",
                    y=first,
                    title="Accuracy vs long-tail share",
                    x_title=service.metric_label("aplt"),
                    y_title=service.metric_label(first),
                    x_percent=service.table_format("aplt") == "percent",
                    names=RERANKER_NAMES,
                )
            ]
            if first
            else []
        )
        sections.append(("Re-ranking trade-off", [_table(_labelled(_percent_columns(report.tradeoff)))], figs))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p class='meta'>Dataset {e(str(settings.get('dataset')))} · model {e(str(settings.get('model')))} · "
        f"K={e(str(settings.get('k')))} · re-ranker {e(str(settings.get('rerank') or 'none'))} · "
        f"{e(str(settings.get('n_users_evaluated')))} test users · {e(str(settings.get('n_boot')))} bootstrap "
        f"resamples · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
    ]
    findings = service.audit_findings(report)
    parts.append("<h2>Findings</h2>")
    parts.append(
        "<p class='meta'>Significant gaps between user groups (the 95% bootstrap confidence interval of the "
        "difference excludes zero), sorted by relative size: accuracy gaps between user attributes first, then "
        "usage segments, then differences in the lists. Then plain verdicts on exposure, with their thresholds.</p>"
    )
    parts.append(
        findings_html(
            findings,
            fmt=lambda m, v: service.format_value(m, v),
            fmt_diff=service.difference_text,
        )
    )
    first_plot = True
    for heading, tables, figs in sections:
        parts.append(f"<h2>{e(heading)}</h2>")
        parts += tables
        for fig in figs:
            # plotly.js is inlined once, with the first figure; later figures reuse it.
            parts.append(
                fig.to_html(
                    full_html=False, include_plotlyjs="inline" if first_plot else False, config={"displaylogo": False}
                )
            )
            first_plot = False
    parts.append(_glossary(report))
    parts.append("</body></html>")
    return "\n".join(parts)
