"""Read-only HTML tables with plain column names, definition tooltips and the best value per column marked.

``st.dataframe`` truncates long cells, hides columns behind a horizontal scroll in a narrow
column and prints a missing value as "None"; these small tables wrap instead, show "—" for a
missing value, carry each column's definition as a tooltip on its header and mark the best
value of a column (by the metric's direction: higher or lower is better) in bold with a ★.
Every cell and header is escaped (group names and titles are data). No engine import: the
page passes labels, definitions and formatters from the metric registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.components.text import html_text

HIGHER, LOWER = "higher", "lower"
MISSING = "—"
# Inline so the same table reads the same in the app and in the standalone HTML report.
STYLE = (
    "<style>.gl-mtable{width:100%;border-collapse:collapse;font-size:.86rem;margin:.2rem 0 .6rem}"
    ".gl-mtable th{text-align:right;font-weight:600;border-bottom:1px solid rgba(127,127,127,.4);"
    "padding:.3rem .5rem;vertical-align:bottom}"
    ".gl-mtable td{text-align:right;border-bottom:1px solid rgba(127,127,127,.15);padding:.3rem .5rem;"
    "font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".gl-mtable th.gl-l,.gl-mtable td.gl-l{text-align:left}"
    ".gl-mtable th[title]{text-decoration:underline dotted rgba(127,127,127,.6);cursor:help}"
    ".gl-mtable td.gl-best{font-weight:700;background:rgba(91,91,214,.12)}"
    ".gl-mtable tr.gl-row-mark td{background:rgba(245,158,11,.14)}</style>"
)


@dataclass(frozen=True)
class Col:
    """One column: the frame's ``key``, its shown ``label``, a ``help`` tooltip, a formatter,
    the direction that is better (``"higher"``, ``"lower"`` or None: no best marked), text alignment."""

    key: str
    label: str
    help: str | None = None
    fmt: Callable[[Any], str] | None = None
    better: str | None = None
    text: bool = False


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return isinstance(value, float) and math.isnan(value)
    except TypeError:
        return False


def best_rows(values: Sequence[Any], better: str | None) -> set[int]:
    """Positions holding the best value (ties all count); none when fewer than two values compare."""
    if better not in (HIGHER, LOWER):
        return set()
    numbers = [(i, float(v)) for i, v in enumerate(values) if not _missing(v)]
    if len(numbers) < 2:
        return set()
    target = max(v for _, v in numbers) if better == HIGHER else min(v for _, v in numbers)
    if all(v == target for _, v in numbers):
        return set()  # everyone equal: nothing to point at
    return {i for i, v in numbers if v == target}


def metric_table(
    frame: pd.DataFrame,
    columns: Sequence[Col],
    *,
    mark_best: bool = True,
    marked_rows: Sequence[int] = (),
    style: bool = True,
    key: str = "",
) -> str:
    """An escaped HTML table of ``frame``'s ``columns``, the best value per metric column marked.

    Args:
        frame: the rows, in display order.
        columns: which columns to show and how.
        mark_best: mark the best value of every column with a ``better`` direction (default: True).
        marked_rows: row positions to highlight as a whole (e.g. the selected re-ranker strength).
        style: include the table's CSS (default: True; pass False after the first table of a page).
        key: a ``data-table`` attribute for tests and screenshots (default: none).
    """
    best = {c.key: best_rows(list(frame[c.key]), c.better) if mark_best else set() for c in columns}
    head = "".join(
        "<th"
        + (' class="gl-l"' if c.text else "")
        + (f' title="{html_text(c.help)}"' if c.help else "")
        + f">{html_text(c.label)}</th>"
        for c in columns
    )
    body = []
    marked = set(marked_rows)
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row, strict=True))
        cells = []
        for c in columns:
            value = values[c.key]
            text = MISSING if _missing(value) else (c.fmt(value) if c.fmt else str(value))
            classes = [name for name, on in (("gl-l", c.text), ("gl-best", i in best[c.key])) if on]
            cls = f' class="{" ".join(classes)}"' if classes else ""
            star = " ★" if i in best[c.key] else ""
            cells.append(f"<td{cls}>{html_text(text)}{star}</td>")
        row_cls = ' class="gl-row-mark"' if i in marked else ""
        body.append(f"<tr{row_cls}>{''.join(cells)}</tr>")
    attr = f' data-table="{html_text(key)}"' if key else ""
    table = f'<table class="gl-mtable"{attr}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return (STYLE if style else "") + table


# Plain names of the audit frames' non-metric columns (metric columns take the registry's labels).
PLAIN_COLUMNS: Mapping[str, str] = {
    "feature": "Grouping",
    "group": "Group",
    "metric": "Metric",
    "value": "Value",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "size": "Users",
    "too_small": "Too small to judge",
    "max_group": "Higher group",
    "min_group": "Lower group",
    "n_groups": "Groups judged",
    "difference": "Difference",
    "significant": "Significant",
    "cis_overlap": "Group CIs overlap",
    "ratio": "Ratio (lower / higher)",
    "ratio_ci_low": "Ratio 95% CI low",
    "ratio_ci_high": "Ratio 95% CI high",
    "dimension": "Item grouping",
    "exposure_share": "Share of exposure",
    "catalog_share": "Share of catalog",
    "interaction_share": "Share of interactions",
    "exposure_ratio": "Exposure / catalog share",
    "reranker": "Re-ranker",
    "strength": "Strength",
}
