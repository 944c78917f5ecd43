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
    fig.update_layout(
        title={"text": _e(title), "x": 0, "font": {"size": 14}} if title else None,
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        legend={"orientation": "h", "y": -0.2},
        **kw,
    )
    return fig


def long_tail(item_popularity: Sequence[float] | np.ndarray, head_share: float = 0.2) -> go.Figure:
    """Interactions per item, most popular first, with the head that holds ``head_share`` of the catalog.

    Args:
        item_popularity: interactions per item (any order).
        head_share: share of items counted as the head (default: 0.2).
    """
    pop = np.sort(np.asarray(item_popularity, dtype=float))[::-1]
    n = len(pop)
    n_head = max(1, round(head_share * n)) if n else 0
    held = pop[:n_head].sum() / pop.sum() if pop.sum() > 0 else 0.0
    x = np.arange(1, n + 1)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x[:n_head], y=pop[:n_head], fill="tozeroy", mode="lines", name="head", line={"color": ACCENT})
    )
    fig.add_trace(
        go.Scatter(
            x=x[n_head - 1 :],
            y=pop[n_head - 1 :],
            fill="tozeroy",
            mode="lines",
            name="long tail",
            line={"color": ACCENT_2},
        )
    )
    fig.update_xaxes(title="items, most popular first")
    fig.update_yaxes(title="training interactions")
    return _layout(fig, f"Long tail: the top {head_share:.0%} of items hold {held:.0%} of interactions")


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
        xaxis={"title": "epoch"},
        yaxis={"title": "loss"},
        yaxis2={"title": "NDCG@10", "overlaying": "y", "side": "right", "showgrid": False},
    )
    return _layout(fig, "Training curve")


def metric_bars(frame: pd.DataFrame, *, current: str | None = None, title: str = "Test metrics") -> go.Figure:
    """Grouped bars of ``metric`` values per ``model`` (columns ``model``, ``metric``, ``value``).

    Args:
        frame: long frame, one row per (model, metric).
        current: the model label to draw in the accent colour (default: none).
        title: chart title (default: "Test metrics").
    """
    fig = go.Figure()
    palette = [MUTED, "#64748b", "#a78bfa", "#f472b6", "#22d3ee", "#84cc16", "#fb923c"]
    for n, (model, part) in enumerate(frame.groupby("model", sort=False)):
        color = ACCENT if model == current else palette[n % len(palette)]
        fig.add_trace(
            go.Bar(
                x=[_e(m) for m in part["metric"]],
                y=part["value"],
                name=_e(model),
                marker_color=color,
                texttemplate="%{y:.3f}",
                textposition="outside",
            )
        )
    fig.update_layout(barmode="group")
    return _layout(fig, title)


def attribution_bars(
    frame: pd.DataFrame, *, label: str = "label", value: str = "value", title: str = "Attribution", max_rows: int = 12
) -> go.Figure:
    """Horizontal signed bars, largest magnitude on top (negative values in red).

    Args:
        frame: a frame with a label column and a numeric column.
        label: label column (default: ``"label"``).
        value: value column (default: ``"value"``).
        title: chart title (default: "Attribution").
        max_rows: bars shown (default: 12).
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
    fig.update_yaxes(automargin=True)
    return _layout(fig, title, height=max(220, 28 * len(top) + 60))


def group_intervals(frame: pd.DataFrame, *, metric: str, feature: str) -> go.Figure:
    """Group means with 95% confidence intervals (columns ``group``, ``value``, ``ci_low``,
    ``ci_high``, ``size``, ``too_small``); groups too small to judge are drawn hollow in grey."""
    small = frame["too_small"].fillna(False).astype(bool) if "too_small" in frame else pd.Series(False, frame.index)
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
                customdata=part[["size"]].to_numpy(),
                hovertemplate="%{y}: %{x:.4f} (n=%{customdata[0]})<extra></extra>",
            )
        )
    fig.update_xaxes(title=_e(metric))
    # Keep the groups' own order (age bands, activity levels), first group on top.
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
) -> go.Figure:
    """Accuracy against a beyond-accuracy metric along a re-ranker strength sweep.

    Args:
        frame: one row per strength (and optionally per ``reranker``).
        x: column on the x axis (e.g. a long-tail share).
        y: column on the y axis (e.g. NDCG@10).
        strength: the strength column (default: ``"strength"``).
        selected: strength to mark (default: none).
        title: chart title.
    """
    fig = go.Figure()
    groups = frame.groupby("reranker", sort=False) if "reranker" in frame else [("", frame)]
    for name, part in groups:
        part = part.sort_values(strength)
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part[y],
                mode="lines+markers",
                name=_e(name) or "sweep",
                text=[f"{s:g}" for s in part[strength]],
                hovertemplate=f"strength %{{text}}<br>{_e(x)} %{{x:.4f}}<br>{_e(y)} %{{y:.4f}}<extra></extra>",
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
    fig.update_xaxes(title=_e(x))
    fig.update_yaxes(title=_e(y))
    return _layout(fig, title)


def overlap_venn(n_a: int, n_b: int, n_both: int, labels: tuple[str, str]) -> go.Figure:
    """Stacked bar: items only in A, in both, only in B."""
    fig = go.Figure()
    for value, name, color in (
        (n_a - n_both, f"only {labels[0]}", ACCENT),
        (n_both, "both", ACCENT_2),
        (n_b - n_both, f"only {labels[1]}", WARN),
    ):
        fig.add_trace(
            go.Bar(
                x=[value],
                y=["top-K"],
                orientation="h",
                name=_e(name),
                marker_color=color,
                text=[value],
                textposition="inside",
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=130)


def _shorten(text: Any, limit: int = 48) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
