"""Small HTML fragments (cards, chips, badges, tiles) with every data string escaped.

Item titles, categories and ids come from data files, so each one passes through
:func:`esc` before it touches markup; only the fixed markup below is trusted. The
fragments are shown with ``st.html``, which sanitises once more in the browser. (Text shown
through Markdown, such as ``st.warning``, needs :func:`dashboard.components.text.md` instead.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from dashboard.components.text import html_text
from dashboard.components.words import audience_words

# The short name the fragments below (and the pages) use; the escaping itself lives with the
# Markdown escaping in ``components/text.py``, one function per renderer.
esc = html_text


def deep_link(page: str, params: Mapping[str, Any]) -> str:
    """A relative URL to ``page`` with the query parameters that reproduce a view."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{page}?{query}" if query else page


def chips(values: Iterable[Any], cls: str = "gl-chip") -> str:
    """Category chips."""
    return "".join(f'<span class="{cls}">{esc(v)}</span>' for v in values)


def badge(text: str, tone: str = "neutral", title: str | None = None) -> str:
    """A coloured pill; ``tone`` is one of ``good``, ``warn``, ``bad``, ``neutral``."""
    tip = f' title="{esc(title)}"' if title else ""
    return f'<span class="gl-badge gl-{esc(tone)}"{tip}>{esc(text)}</span>'


def tiles(items: Sequence[tuple[str, Any, str | None]]) -> str:
    """A row of metric tiles: ``(label, value, hint)`` each."""
    cells = "".join(
        f'<div class="gl-tile"><div class="gl-tile-label">{esc(label)}</div>'
        f'<div class="gl-tile-value">{esc(value)}</div>'
        + (f'<div class="gl-tile-hint">{esc(hint)}</div>' if hint else "")
        + "</div>"
        for label, value, hint in items
    )
    return f'<div class="gl-tiles">{cells}</div>'


def rec_cards(
    items: pd.DataFrame,
    *,
    reasons: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
    deltas: Mapping[str, str] | None = None,
    highlight: set[str] | None = None,
    verb: str = "watched",
) -> str:
    """The top-K list as cards: rank, title (linked to "Why this item?"), chips, score, reason.

    Args:
        items: ``Recommendations.items`` (``rank``, ``item_id``, ``title``, ``categories``,
            ``score``, ``popularity``).
        reasons: item id -> one-line reason (default: none shown).
        links: item id -> deep link for the title (default: no links).
        deltas: item id -> a short rank-change label such as ``"▲2"`` (default: none).
        highlight: item ids to mark, e.g. items only one model recommends (default: none).
        verb: the dataset's interaction verb, for "watched by 455" (default: ``"watched"``).
    """
    reasons, links, deltas, highlight = reasons or {}, links or {}, deltas or {}, highlight or set()
    rows = []
    for row in items.itertuples(index=False):
        item_id = str(row.item_id)
        title = esc(row.title)
        if item_id in links:
            title = f'<a href="{esc(links[item_id])}" target="_self">{title}</a>'
        reason = reasons.get(item_id)
        delta = deltas.get(item_id)
        cls = "gl-card gl-mark" if item_id in highlight else "gl-card"
        rows.append(
            f'<div class="{cls}" data-item="{esc(item_id)}">'
            f'<div class="gl-rank">{int(row.rank)}</div>'
            f'<div class="gl-body"><div class="gl-title">{title}'
            + (f' <span class="gl-delta">{esc(delta)}</span>' if delta else "")
            + f'</div><div class="gl-chips">{chips(row.categories)}</div>'
            + (f'<div class="gl-reason" title="{esc(reason)}">{esc(reason)}</div>' if reason else "")
            + f'</div><div class="gl-score"><b>{float(row.score):.3f}</b>'
            f"<span>{esc(audience_words(int(row.popularity), verb))}</span></div></div>"
        )
    return f'<div class="gl-list">{"".join(rows)}</div>'


def table(frame: pd.DataFrame, formats: Mapping[str, str] | None = None) -> str:
    """A small read-only table (every cell escaped); ``formats`` maps a column to a format spec.

    For a handful of rows this is lighter than ``st.dataframe``, whose grid component the
    browser must load and lay out on every new session.
    """
    formats = formats or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{esc(format(v, formats[c]) if c in formats and pd.notna(v) else v)}</td>"
            for c, v in zip(frame.columns, row, strict=True)
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<table class="gl-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def headline(prefix: str, subject: Any, suffix: str = "") -> str:
    """A heading with an escaped data string in the middle, e.g. ``Why <title> for u0042?``."""
    return f'<div class="gl-headline">{esc(prefix)}<span class="gl-subject">{esc(subject)}</span>{esc(suffix)}</div>'


def note(text: str, tone: str = "neutral") -> str:
    """A boxed sentence (escaped)."""
    return f'<div class="gl-note gl-{esc(tone)}">{esc(text)}</div>'


def legend(entries: Sequence[tuple[str, str]]) -> str:
    """Colour legend: ``(label, css colour)`` pairs."""
    dots = "".join(
        f'<span class="gl-legend-item"><span class="gl-dot" style="background:{esc(color)}"></span>{esc(label)}</span>'
        for label, color in entries
    )
    return f'<div class="gl-legend">{dots}</div>'
