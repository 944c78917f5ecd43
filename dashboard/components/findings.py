"""The audit's findings as an HTML panel: significant group gaps, largest first, then exposure verdicts.

The rows come from ``engine.service.audit_findings`` (one frame, the same for the page, the HTML
report and the CLI). This module only lays them out: a table of gaps with their confidence
intervals, and one sentence per exposure verdict with the threshold it was judged by. Every
data string (group names come from the users table) is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from dashboard.components.text import html_text

_TONE = {"strong": "#dc2626", "moderate": "#d97706", "ok": "#059669"}
STYLE = (
    "<style>.gl-find{width:100%;border-collapse:collapse;font-size:.88rem;margin:.3rem 0 .5rem}"
    ".gl-find th{text-align:left;background:none;border:none;font-weight:600;opacity:.8;"
    "border-bottom:1px solid rgba(127,127,127,.4);padding:.3rem .5rem}"
    ".gl-find td{text-align:left;border:none;border-bottom:1px solid rgba(127,127,127,.15);padding:.35rem .5rem;"
    "vertical-align:top}.gl-find td.gl-n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".gl-find tr.gl-first td{background:rgba(220,38,38,.07)}"
    ".gl-find tr.gl-section td{font-size:.75rem;font-weight:700;text-transform:uppercase;letter-spacing:.04em;"
    "opacity:.7;padding-top:.6rem;border-bottom:none}"
    ".gl-verdict{margin:.35rem 0;padding:.45rem .7rem;border-left:4px solid;border-radius:.35rem;"
    "background:rgba(127,127,127,.06);font-size:.9rem}.gl-verdict b{margin-right:.3rem}"
    ".gl-sev{display:inline-block;font-size:.72rem;font-weight:700;padding:.05rem .45rem;border-radius:1rem;"
    "color:#fff}</style>"
)


def _sev(severity: str) -> str:
    color = _TONE.get(str(severity), "#64748b")
    return f'<span class="gl-sev" style="background:{color}">{html_text(severity)}</span>'


def findings_html(
    findings: pd.DataFrame,
    *,
    fmt: Callable[[str, Any], str],
    fmt_diff: Callable[[str, Any], str] | None = None,
    link: Callable[[Any], str | None] | None = None,
    limit: int | None = None,
    style: bool = True,
) -> str:
    """The findings panel.

    Args:
        findings: ``service.audit_findings(report)``.
        fmt: ``fmt(metric_key, value)`` -> text in the metric's registry format.
        fmt_diff: the same for a difference (e.g. percentage points for a percent metric; default: ``fmt``).
        link: a row -> a deep link that opens the grouping (default: no links, e.g. in the report).
        limit: show at most this many gaps and say how many more there are (default: all).
        style: include the CSS (default: True).
    """
    gaps = findings[findings["kind"] == "group gap"]
    verdicts = findings[findings["kind"] != "group gap"]
    parts = [STYLE] if style else []
    if gaps.empty:
        parts.append(
            '<p class="gl-verdict" style="border-color:#059669">No significant gap between user groups: '
            "every difference's 95% confidence interval includes zero (or the groups are too small to judge)."
            "</p>"
        )
    else:
        shown = gaps if limit is None else gaps.head(limit)
        rows = []
        section = None
        for n, r in enumerate(shown.itertuples(index=False)):
            if getattr(r, "section", None) and r.section != section:
                section = r.section
                rows.append(f'<tr class="gl-section"><td colspan="8">{html_text(section)}</td></tr>')
            feature = html_text(r.feature)
            href = link(r) if link else None
            if href:
                feature = f'<a href="{html_text(href)}" target="_self">{feature}</a>'
            rows.append(
                "<tr" + (' class="gl-first"' if n == 0 else "") + f' data-feature="{html_text(r.feature)}" '
                f'data-metric="{html_text(r.metric)}">'
                f"<td>{n + 1}</td><td>{feature}</td><td>{html_text(r.metric_label)}</td>"
                f"<td><b>{html_text(r.low_group)}</b> {html_text(fmt(r.metric, r.low_value))}</td>"
                f"<td>{html_text(r.high_group)} {html_text(fmt(r.metric, r.high_value))}</td>"
                f'<td class="gl-n">{html_text(_gap(r, fmt_diff or fmt))}</td>'
                f'<td class="gl-n">{html_text(f"{r.relative:.0%}")} lower</td>'
                f"<td>{_sev(r.severity)}</td></tr>"
            )
        head = (
            "<tr><th>#</th><th>Grouping</th><th>Metric</th><th>Lower group</th><th>Higher group</th>"
            '<th title="Higher minus lower, with the 95% bootstrap confidence interval of the difference">'
            "Gap (95% CI)</th>"
            '<th title="How much lower the lower group is, relative to the higher one">Relative</th>'
            '<th title="strong: the lower group is at least 25% below the higher one">Size</th></tr>'
        )
        parts.append(f'<table class="gl-find"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>')
        if limit is not None and len(gaps) > limit:
            parts.append(f'<p style="font-size:.82rem;opacity:.75">+{len(gaps) - limit} more significant gaps</p>')
    for r in verdicts.itertuples(index=False):
        color = _TONE.get(str(r.severity), "#64748b")
        parts.append(
            f'<p class="gl-verdict" style="border-color:{color}" data-kind="{html_text(r.kind)}">'
            f"<b>{html_text(str(r.kind).capitalize())}:</b>{html_text(r.text)}</p>"
        )
    return "".join(parts)


def _gap(r: Any, fmt: Callable[[str, Any], str]) -> str:
    return f"{fmt(r.metric, r.difference)} ({fmt(r.metric, r.ci_low)} to {fmt(r.metric, r.ci_high)})"
