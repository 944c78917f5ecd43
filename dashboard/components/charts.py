"""Pure figure builders: tidy DataFrames in, plotly Figures out (no Streamlit, no engine).

Plotly renders a small set of tags inside text, so every data string placed in a
title, axis label or hover text is HTML-escaped first (plotly turns the entities back
into characters). Colours are left to the Streamlit theme where possible, so the
same figure reads well in light and dark mode.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

ACCENT = "#5b5bd6"
ACCENT_2 = "#14b8a6"
WARN = "#f59e0b"
NEGATIVE = "#ef4444"
MUTED = "#94a3b8"
_HEIGHT = 300


def _e(value: Any) -> str:
    return html.escape(str(value), quote=False)


def _layout(fig: go.Figure, title: str | None = None, height: int = _HEIGHT, **kw: Any) -> go.Figure:
    """Title top left, legend in its own row under the title (never on an axis title), axis titles
    and tick labels given the room they need (``automargin``), so nothing overlaps or is clipped
    in the app or in the standalone HTML report."""
    legend = sum(1 for t in fig.data if t.showlegend is not False) > 1
    top = (34 if title else 8) + (30 if legend else 0)
    fig.update_layout(
        title={
            "text": _e(title),
            "x": 0,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 8},
            "font": {"size": 14},
        }
        if title
        else None,
        height=height + (30 if legend else 0),
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom", "title": None},
        showlegend=legend,
        **kw,
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def long_tail(item_popularity: Sequence[float] | np.ndarray, tiers: Sequence[str] | None = None) -> go.Figure:
    """Interactions per item, most popular first, coloured by popularity tier (head / mid / long tail).

    Args:
        item_popularity: interactions per item (any order).
        tiers: each item's tier (``"head"``, ``"mid"``, ``"tail"``), aligned with ``item_popularity``:
            the engine's one definition (``service.popularity_tiers``); without it the whole
            curve is drawn in one colour (default: None).
    """
    pop = np.asarray(item_popularity, dtype=float)
    labels = np.asarray(tiers if tiers is not None else ["all"] * len(pop), dtype=object)
    order = np.argsort(-pop, kind="stable")
    pop, labels = pop[order], labels[order]
    x = np.arange(1, len(pop) + 1)
    total = pop.sum() or 1.0
    fig = go.Figure()
    parts = []
    for tier, name, color in (("head", "head", ACCENT), ("mid", "mid", "#a5b4fc"), ("tail", "long tail", ACCENT_2),
                              ("all", "items", ACCENT)):  # fmt: skip
        mask = labels == tier
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        lo, hi = idx[0], idx[-1] + 1
        share_items, share_inter = mask.mean(), pop[mask].sum() / total
        fig.add_trace(
            go.Scatter(
                x=x[max(lo - 1, 0) : hi] if tier != "head" else x[lo:hi],
                y=pop[max(lo - 1, 0) : hi] if tier != "head" else pop[lo:hi],
                fill="tozeroy",
                mode="lines",
                name=name,
                line={"color": color},
                hovertemplate=(
                    f"{name} ({share_items:.0%} of items, {share_inter:.0%} of interactions)<br>"
                    "item #%{x}: %{y:,.0f} interactions<extra></extra>"
                ),
            )
        )
        parts.append((name, share_items, share_inter))
    fig.update_xaxes(title="items, most popular first", rangemode="tozero")
    fig.update_yaxes(title="training interactions", rangemode="tozero", tickformat=",d")
    head = next((p for p in parts if p[0] == "head"), None)
    # the long tail's shares are in the legend's hover and the page's caption: a title must fit one line
    title = f"Head: {_pct(head[1])} of items hold {_pct(head[2])} of interactions" if head else "Interactions per item"
    return _layout(fig, title)


def rating_histogram(histogram: dict[str, int]) -> go.Figure:
    """Bar chart of ``{rating: count}``."""
    keys = list(histogram)
    fig = go.Figure(go.Bar(x=[_e(k) for k in keys], y=[histogram[k] for k in keys], marker_color=ACCENT))
    fig.update_xaxes(title="rating", type="category")
    fig.update_yaxes(title="interactions")
    return _layout(fig, "Ratings", height=240)


def training_curve(curve: Sequence[dict[str, Any]]) -> go.Figure:
    """Training loss and validation NDCG@10 per epoch (two y axes)."""
    frame = pd.DataFrame(list(curve))
    fig = go.Figure()
    if not frame.empty and "loss" in frame:
        fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["loss"], name="BPR loss", line={"color": MUTED}))
    if not frame.empty and "valid_ndcg@10" in frame:
        valid = frame.dropna(subset=["valid_ndcg@10"])
        fig.add_trace(
            go.Scatter(
                x=valid["epoch"],
                y=valid["valid_ndcg@10"],
                name="valid NDCG@10",
                yaxis="y2",
                line={"color": ACCENT, "width": 3},
            )
        )
    fig.update_layout(
        xaxis={"title": "epoch", "tickformat": "d"},
        yaxis={"title": "loss", "tickformat": ".3~f"},
        yaxis2={
            "title": "validation NDCG@10",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickformat": ".3~f",
            # plotly syncs an overlaying axis's ticks to the first axis's grid by default, which gives
            # odd values (0.0983, 0.131); its own round ticks read better (it draws no grid of its own)
            "tickmode": "auto",
            "automargin": True,
        },
    )
    stages = set(frame["stage"].dropna()) if "stage" in frame else set()
    # A staged fit (gat) trains only its taste part by epochs: say so, or the curve reads as the model's.
    title = "Training curve of the taste part (LightGCN)" if stages == {"taste"} else "Training curve"
    return _layout(fig, title)


def metric_bars(
    frame: pd.DataFrame,
    *,
    current: str | None = None,
    title: str = "Test metrics",
    colors: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> go.Figure:
    """Grouped bars of ``metric`` values per ``model`` (columns ``model``, ``metric``, ``value``).

    Args:
        frame: long frame, one row per (model, metric).
        current: the selected model, drawn with an outline and named "(selected)" (default: none).
        title: chart title (default: "Test metrics").
        colors: model -> colour, the one mapping of :mod:`dashboard.components.colors` (default: grey).
        labels: metric key -> plain label for the x axis (default: the keys).
    """
    colors, labels = colors or {}, labels or {}
    fig = go.Figure()
    for model, part in frame.groupby("model", sort=False):
        selected = model == current
        fig.add_trace(
            go.Bar(
                x=[_e(labels.get(m, m)) for m in part["metric"]],
                y=part["value"],
                name=_e(model),
                marker={"color": colors.get(model, MUTED), "line": {"width": 2 if selected else 0, "color": "#1f2430"}},
                texttemplate="%{y:.3f}",
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"{_e(model)}<br>%{{x}}: %{{y:.4f}}<extra></extra>",
            )
        )
    top = float(frame["value"].max()) if len(frame) else 1.0
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_yaxes(title="test value (higher is better)", tickformat=".2~f", nticks=6, range=[0, top * 1.18])
    return _layout(fig, title)


def attribution_bars(
    frame: pd.DataFrame,
    *,
    label: str = "label",
    value: str = "value",
    title: str = "Attribution",
    max_rows: int = 12,
    x_title: str = "Attribution",
    y_title: str | None = None,
    percent: bool = False,
) -> go.Figure:
    """Horizontal signed bars, largest magnitude on top (negative values in red), with axis titles.

    Args:
        frame: a frame with a label column and a numeric column.
        label: label column (default: ``"label"``).
        value: value column (default: ``"value"``).
        title: chart title (default: "Attribution").
        max_rows: bars shown (default: 12).
        x_title: the value axis title (default: "Attribution").
        y_title: the label axis title (default: none).
        percent: the values are shares of one whole: percent ticks, and the axis always spans
            0 to the largest share, so two such charts read on the same footing (default: False).
    """
    top = frame.reindex(frame[value].abs().sort_values(ascending=False).index).head(max_rows).iloc[::-1]
    labels = [_e(_shorten(v)) for v in top[label]]
    colors = [ACCENT if v >= 0 else NEGATIVE for v in top[value]]
    fig = go.Figure(
        go.Bar(
            x=top[value],
            y=labels,
            orientation="h",
            marker_color=colors,
            hovertext=[_e(v) for v in top[label]],
            hoverinfo="text+x",
        )
    )
    fig.update_xaxes(title_text=_e(x_title))
    if y_title:
        fig.update_yaxes(title_text=_e(y_title))
    if percent and len(top):
        values = top[value].astype(float)
        low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
        pad = 0.05 * ((high - low) or 1.0)
        # Whole percents repeat ticks below 10 % ("1%, 1%, 2%"): one decimal there.
        tick = ".0%" if high - low >= 0.1 else ".1%"
        fig.update_xaxes(tickformat=tick, range=[low - (pad if low < 0 else 0), high + pad], zeroline=True)
    fig.update_yaxes(automargin=True)
    return _layout(fig, title, height=max(220, 28 * len(top) + 80))


def group_intervals(frame: pd.DataFrame, *, metric: str, feature: str, percent: bool = False) -> go.Figure:
    """Group means with 95% confidence intervals (columns ``group``, ``value``, ``ci_low``,
    ``ci_high``, ``size``, ``too_small``); groups too small to judge are drawn hollow in grey.

    Args:
        frame: one row per group, in the groups' own order.
        metric: the metric's plain label (axis title and chart title).
        feature: the grouping's name.
        percent: the metric is a share shown in percent (default: False).
    """
    small = frame["too_small"].fillna(False).astype(bool) if "too_small" in frame else pd.Series(False, frame.index)
    value_fmt = ".1%" if percent else ".4f"
    fig = go.Figure()
    for flag, name, color in ((False, "group", ACCENT), (True, "too small to judge", MUTED)):
        part = frame[small == flag]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part["value"],
                y=[_e(g) for g in part["group"]],
                mode="markers",
                name=name,
                marker={"size": 11, "color": color, "symbol": "circle-open" if flag else "circle"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": part["ci_high"] - part["value"],
                    "arrayminus": part["value"] - part["ci_low"],
                    "color": color,
                },
                customdata=part[["size", "ci_low", "ci_high"]].to_numpy(),
                hovertemplate=(
                    f"%{{y}}: %{{x:{value_fmt}}} (95% CI %{{customdata[1]:{value_fmt}}} to "
                    f"%{{customdata[2]:{value_fmt}}}, %{{customdata[0]}} users)<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(title=_e(f"{metric} (dot: group mean; bar: 95% confidence interval)"),
                     tickformat=".0%" if percent else None, nticks=8)  # fmt: skip
    # Keep the groups' own order (age bands, activity levels), first group on top; full names.
    order = [_e(g) for g in frame["group"]][::-1]
    fig.update_yaxes(type="category", automargin=True, categoryorder="array", categoryarray=order)
    return _layout(fig, f"{metric} by {feature} (95% CI)", height=max(200, 50 * len(frame) + 80))


def exposure_bars(frame: pd.DataFrame, *, title: str = "Exposure vs catalog") -> go.Figure:
    """Exposure share of each item group beside its catalog and interaction shares.

    ``frame`` has a ``group`` column and any of ``exposure_share``, ``catalog_share``,
    ``interaction_share``.
    """
    fig = go.Figure()
    for column, name, color in (
        ("exposure_share", "exposure in top-K", ACCENT),
        ("catalog_share", "share of catalog", MUTED),
        ("interaction_share", "share of interactions", ACCENT_2),
    ):
        if column in frame:
            fig.add_trace(go.Bar(x=[_e(g) for g in frame["group"]], y=frame[column], name=name, marker_color=color))
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, title)


def lorenz(frame: pd.DataFrame, *, gini: float | None = None) -> go.Figure:
    """Lorenz curve of exposure (columns ``x``, ``y``) against the line of equality."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="equal exposure", line={"color": MUTED, "dash": "dash"})
    )
    fig.add_trace(
        go.Scatter(
            x=frame["x"],
            y=frame["y"],
            mode="lines",
            name="recommendations",
            fill="tonexty",
            line={"color": ACCENT, "width": 3},
        )
    )
    fig.update_xaxes(title="share of items (least exposed first)", tickformat=".0%")
    fig.update_yaxes(title="share of exposure", tickformat=".0%")
    title = "Exposure concentration" + (f" — Gini {gini:.3f}" if gini is not None else "")
    return _layout(fig, title)


def tradeoff(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    strength: str = "strength",
    selected: float | None = None,
    title: str = "Re-ranking trade-off",
    x_title: str | None = None,
    y_title: str | None = None,
    x_percent: bool = False,
    names: dict[str, str] | None = None,
) -> go.Figure:
    """Accuracy against a beyond-accuracy metric along a re-ranker strength sweep.

    Args:
        frame: one row per strength (and optionally per ``reranker``).
        x: column on the x axis (e.g. a long-tail share).
        y: column on the y axis (e.g. NDCG@10).
        strength: the strength column (default: ``"strength"``).
        selected: strength to mark (default: none).
        title: chart title.
        x_title: x axis title, e.g. the metric's plain label (default: ``x``).
        y_title: y axis title (default: ``y``).
        x_percent: the x metric is a share shown in percent, as everywhere else (default: False).
        names: re-ranker key -> the name the picker shows, used in the legend (default: the keys).
    """
    names = names or {}
    x_title, y_title = x_title or x, y_title or y
    x_fmt = ".1%" if x_percent else ".4f"
    fig = go.Figure()
    groups = frame.groupby("reranker", sort=False) if "reranker" in frame else [("", frame)]
    for name, part in groups:
        part = part.sort_values(strength)
        shown = names.get(str(name), str(name))
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part[y],
                mode="lines+markers",
                name=_e(shown) or "sweep",
                text=[f"{s:g}" for s in part[strength]],
                hovertemplate=(
                    f"{_e(shown)} at strength %{{text}}<br>{_e(x_title)} %{{x:{x_fmt}}}<br>"
                    f"{_e(y_title)} %{{y:.4f}}<extra></extra>"
                ),
            )
        )
    if selected is not None:
        pick = frame.iloc[(frame[strength] - selected).abs().argsort()[:1]]
        fig.add_trace(
            go.Scatter(
                x=pick[x],
                y=pick[y],
                mode="markers",
                name=f"strength {selected:g}",
                marker={"size": 16, "color": WARN, "symbol": "star"},
            )
        )
    fig.update_xaxes(title=_e(x_title), tickformat=".0%" if x_percent else None, nticks=7)
    fig.update_yaxes(title=_e(y_title), tickformat=".3f", nticks=6)
    return _layout(fig, title)


def rank_overlap(
    ranks_a: Sequence[Any],
    ranks_b: Sequence[Any],
    labels: tuple[str, str],
    *,
    titles: dict[str, str] | None = None,
    colors: tuple[str, str] = (ACCENT, ACCENT_2),
    title: str | None = None,
) -> go.Figure:
    """Two top-K lists side by side as ranks, with a line joining each item both recommend.

    Reads without a legend: model A's list is the left column, model B's the right one, rank 1
    on top; a line means "both recommend it" and its slope shows how differently they rank it;
    items only one model recommends are hollow grey. No scores: the two models' raw scores are
    on different scales and are never compared.

    Args:
        ranks_a: model A's item ids, best first.
        ranks_b: model B's item ids, best first.
        labels: the two models' names.
        titles: item id -> title for the labels (default: the ids).
        colors: the two models' colours (:mod:`dashboard.components.colors`).
        title: chart title (default: none; the model names head the two columns).
    """
    titles = titles or {}
    a, b = [str(i) for i in ranks_a], [str(i) for i in ranks_b]
    pos_b = {item: n + 1 for n, item in enumerate(b)}
    pos_a = {item: n + 1 for n, item in enumerate(a)}
    fig = go.Figure()
    for item, ra in pos_a.items():
        if item in pos_b:
            fig.add_trace(
                go.Scatter(
                    x=[0, 1], y=[ra, pos_b[item]], mode="lines", line={"color": MUTED, "width": 2},
                    hoverinfo="skip", showlegend=False,
                )
            )  # fmt: skip
    for side, items, other, color, name in (
        (0, a, pos_b, colors[0], labels[0]),
        (1, b, pos_a, colors[1], labels[1]),
    ):
        shared = [i in other for i in items]
        fig.add_trace(
            go.Scatter(
                x=[side] * len(items),
                y=list(range(1, len(items) + 1)),
                mode="markers+text",
                marker={
                    "size": 14,
                    "color": [color if s else "rgba(0,0,0,0)" for s in shared],
                    "line": {"color": [color if s else MUTED for s in shared], "width": 2},
                },
                text=[_e(_shorten(titles.get(i, i), 34)) for i in items],
                textposition="middle left" if side == 0 else "middle right",
                customdata=[
                    [_e(titles.get(i, i)), f"#{other[i]} in the other list" if i in other else "only in this list"]
                    for i in items
                ],
                hovertemplate=f"{_e(name)} #%{{y}}: %{{customdata[0]}}<br>%{{customdata[1]}}<extra></extra>",
                showlegend=False,
            )
        )
    n = max(len(a), len(b), 1)
    fig.update_xaxes(
        range=[-1.4, 2.4], tickvals=[0, 1], ticktext=[_e(labels[0]), _e(labels[1])], side="top", showgrid=False,
        zeroline=False, tickfont={"size": 13},
    )  # fmt: skip
    fig.update_yaxes(range=[n + 0.7, 0.3], title="rank", tickvals=list(range(1, n + 1)), showgrid=False, zeroline=False)
    return _layout(fig, title, height=max(220, 26 * n + 60))


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.1 or x == 0 else f"{x:.1%}"


def _shorten(text: Any, limit: int = 48) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
