"""The Recommendations page's item cards: rank, title, chips, the score in words and the reason.

A model's raw score (a logit such as ``20.580``) means nothing to a reader, so a card never shows
it: the right column says what the list knows about the item in words (which of the item's
categories the user's history has, how much it is played), and the reason is the full
sentence the explanation wrote, wrapped, never cut. :func:`reason_numbers` turns an
explanation into the small table behind that sentence. Every data string is escaped
(:func:`dashboard.components.html.esc`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from dashboard.components.html import chips, esc
from dashboard.components.words import audience_words, participle

# What the reason line of a card says while it waits, or when there is none for that card.
PENDING = "pending"
MISSING = "missing"


def popularity_words(n: int, better_than: float, verb: str = "watched") -> str:
    """``"watched by 455 · top 2 % most watched"`` or ``"chosen by 3 · chosen less than most items"``.

    A shop's products are chosen, not played: the words follow the dataset's verb.

    Args:
        n: the item's training interactions (one per user).
        better_than: share of the catalog with strictly fewer (0..1).
        verb: the dataset's interaction verb (default: ``"watched"``, the demo world's).
    """
    top = max(1, math.ceil(100 * (1.0 - better_than)))
    done = participle(verb)
    who = audience_words(n, verb)
    return f"{who} · top {top} % most {done}" if top <= 50 else f"{who} · {done} less than most items"


def match_words(item_categories: Sequence[str], history_categories: Iterable[str]) -> str | None:
    """``"matches Drama, Comedy"`` (the item's categories the history has), ``"new genre for them"``, or None."""
    cats = [str(c) for c in item_categories]
    if not cats:
        return None
    seen = set(history_categories)
    shared = [c for c in cats if c in seen]
    if not shared:
        return "a genre new to their history"
    return "matches " + ", ".join(shared[:3]) + (f" +{len(shared) - 3}" if len(shared) > 3 else "")


def item_card(
    row: Any,
    *,
    facts: tuple[str, str],
    reason: str | None = None,
    link: str | None = None,
    delta: str | None = None,
) -> str:
    """One recommendation as a card.

    Args:
        row: a row of ``Recommendations.items`` (``rank``, ``item_id``, ``title``, ``categories``).
        facts: the right column ``(bold line, small line)``, e.g.
            ``("matches Drama", "watched by 455 · top 2 % most watched")``.
        reason: the full reason sentence; :data:`PENDING` shows "working out why…", :data:`MISSING`
            or None shows no reason line.
        link: the "Why this item?" deep link for the title (default: none).
        delta: a rank-change marker such as ``"▲2"`` (default: none).
    """
    item_id = str(row.item_id)
    title = esc(row.title)
    if link:
        title = f'<a href="{esc(link)}" target="_self">{title}</a>'
    if reason == PENDING:
        line = '<div class="gl-reason gl-pending">Working out why this is recommended…</div>'
    elif reason in (None, MISSING, ""):
        line = ""
    else:
        line = f'<div class="gl-reason">{esc(reason)}</div>'
    marker = f' <span class="gl-delta">{esc(delta)}</span>' if delta else ""
    bold, small = facts
    return (
        f'<div class="gl-card" data-item="{esc(item_id)}">'
        f'<div class="gl-rank">{int(row.rank)}</div>'
        f'<div class="gl-body"><div class="gl-title">{title}{marker}</div>'
        f'<div class="gl-chips">{chips(row.categories)}</div>{line}</div>'
        f'<div class="gl-score"><b>{esc(bold)}</b><span>{esc(small)}</span></div></div>'
    )


def delta_legend(describe: str) -> str:
    """What the ▲/▼ markers compare, in one line (escaped)."""
    return (
        '<div class="gl-legend-line"><b>▲n</b> moved up n places, <b>▼n</b> moved down, <b>=</b> unchanged: '
        f"each card's place in this list against the model's own ranking before {esc(describe)}.</div>"
    )


def _percent(x: float) -> str:
    return f"{abs(100 * x):.0f} %" if abs(x) >= 0.005 else "<1 %"


def reason_numbers(exp: Any, *, top: int = 5) -> tuple[pd.DataFrame, str | None]:
    """The numbers behind a reason: the past interactions that carry the score, in words and percent.

    Args:
        exp: an :class:`engine.explain.Explanation` (``history_influence`` with ``title``,
            ``rating``, ``attribution``, ``share_of_history``; ``feature_groups`` with ``label``,
            ``share``).
        top: interactions listed by name; the rest are summed in one row (default: 5).

    Returns:
        ``(table, inputs)``: columns ``past title``, ``rating``, ``effect`` (e.g. "raises it · 32 %"
        of the push of the whole history), and a sentence on the kinds of input that carry the
        score (None when the explanation has no feature groups).
    """
    hist = getattr(exp, "history_influence", None)
    rows: list[dict[str, str]] = []
    if hist is not None and len(hist) and "attribution" in hist:
        frame = hist.assign(_abs=hist["attribution"].abs()).sort_values("_abs", ascending=False, kind="stable")
        share = frame["share_of_history"] if "share_of_history" in frame else frame["attribution"] * 0.0
        for (_, r), s in zip(frame.head(top).iterrows(), share.head(top), strict=True):
            a = float(r["attribution"]) if pd.notna(r["attribution"]) else 0.0
            verb = "raises it" if a > 0 else "lowers it" if a < 0 else "no effect"
            rating = r.get("rating")
            rows.append(
                {
                    "past title": str(r["title"]),
                    "rating": f"{float(rating):.1f} ★" if rating is not None and pd.notna(rating) else "–",
                    "effect": verb if a == 0 else f"{verb} · {_percent(float(s))}",
                }
            )
        rest = frame.iloc[top:]
        if len(rest):
            net = float(share.iloc[top:].sum())
            rows.append(
                {
                    "past title": f"the other {len(rest)} past titles together",
                    "rating": "",
                    "effect": ("raise it" if net >= 0 else "lower it") + f" · {_percent(net)}",
                }
            )
    inputs = None
    groups = getattr(exp, "feature_groups", None)
    if groups is not None and len(groups) and {"label", "share"} <= set(groups.columns):
        usable = groups[groups.get("available", True) != False]  # noqa: E712 (a column or a scalar)
        usable = usable[usable["share"].abs() >= 0.005].sort_values("share", ascending=False, key=abs)
        if len(usable):
            inputs = "By kind of input: " + ", ".join(
                f"{label} {_percent(float(s))}" for label, s in zip(usable["label"], usable["share"], strict=True)
            )
    return pd.DataFrame(rows, columns=["past title", "rating", "effect"]), inputs
