"""The models trained on one dataset as a small leaderboard: newest version per model, and which beats which.

Pure functions over :func:`dashboard.state.list_models` rows (``model``, ``key``, ``metrics`` with
``test_ndcg@10`` …); no Streamlit, no engine. The Overview and Compare pages use them to say,
visibly, when another trained model scores higher than the selected one.
"""

from __future__ import annotations

import math
from typing import Any

HEADLINE = "test_ndcg@10"


def loadable(row: dict[str, Any]) -> bool:
    """Whether a row can be opened: not a model that an older engine trained (``current`` False)."""
    return row.get("current", True) is not False


def latest_per_model(rows: list[dict[str, Any]], current: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Model name -> its newest loadable version (rows are newest first); the selected row stands for its model."""
    latest: dict[str, dict[str, Any]] = {}
    for row in filter(loadable, rows):
        latest.setdefault(str(row.get("model")), row)
    if current is not None:
        latest[str(current.get("model"))] = current
    return latest


def _score(row: dict[str, Any], metric: str) -> float | None:
    value = (row.get("metrics") or {}).get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def better_models(
    rows: list[dict[str, Any]], current: dict[str, Any], metric: str = HEADLINE
) -> list[tuple[dict[str, Any], float]]:
    """Other stored models on the dataset whose ``metric`` beats the selected one's, best first.

    Every stored version counts (not only the newest per model), so a better older version is named
    too, unless an older engine trained it (it cannot be opened: :func:`loadable`).

    Returns:
        ``(row, value)`` pairs; empty when the selected model has no such figure or is the best.
    """
    mine = _score(current, metric)
    if mine is None:
        return []
    seen: dict[str, tuple[dict[str, Any], float]] = {}
    for row in rows:
        value = _score(row, metric)
        if row.get("key") == current.get("key") or value is None or value <= mine or not loadable(row):
            continue
        name = str(row.get("key"))
        seen.setdefault(name, (row, value))
    return sorted(seen.values(), key=lambda pair: -pair[1])


def better_model_note(rows: list[dict[str, Any]], current: dict[str, Any], metric: str = HEADLINE) -> str | None:
    """Plain text (escape it for the renderer) naming the best model that beats the selected one, or None."""
    better = better_models(rows, current, metric)
    if not better:
        return None
    row, value = better[0]
    mine = _score(current, metric)
    label = metric.removeprefix("test_").upper()
    more = (
        f" ({len(better) - 1} more model{'s' if len(better) > 2 else ''} also score higher)" if len(better) > 1 else ""
    )
    return (
        f"Another trained model scores higher on test {label}: {row.get('model')} ({row.get('key')}) reaches "
        f"{value:.4f} against {mine:.4f} for the selected {current.get('model')}{more}. "
        "Pick it in the sidebar's model list to use it."
    )
