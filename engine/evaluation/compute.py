"""Every registered list metric at once: per user (for group breakdowns) and overall.

The metrics themselves, their names and definitions are in the registry
(:mod:`engine.evaluation.metrics`); this module only feeds them one validated
:class:`~engine.evaluation.lists.ListContext` and collects what comes back.
A metric whose required inputs are missing is skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.evaluation.lists import ListContext, nanmean
from engine.evaluation.metrics import all_metrics


def user_metrics(ctx: ListContext, users: np.ndarray | None = None) -> pd.DataFrame:
    """One row per list, one column per available ``"user"``-scope metric (``u`` first when given).

    Args:
        ctx: the lists and their inputs.
        users: internal user index of each row (default: None, no ``u`` column).
    """
    cols: dict[str, np.ndarray] = {}
    if users is not None:
        users = np.asarray(users)
        if users.shape != (ctx.topk.shape[0],):
            raise ValueError(
                f"users must have one entry per topk row ({ctx.topk.shape[0]}) (got shape {users.shape!r})"
            )
        cols["u"] = users
    for metric in all_metrics("user"):
        if metric.available(ctx):
            values = np.asarray(metric.fn(ctx), dtype=np.float64)
            if values.shape != (ctx.topk.shape[0],):
                raise ValueError(
                    f"metric {metric.key!r} returned shape {values.shape}; expected ({ctx.topk.shape[0]},)"
                )
            cols[metric.key] = values
    return pd.DataFrame(cols)


def list_metrics(ctx: ListContext, per_user: pd.DataFrame | None = None) -> dict[str, float]:
    """Every available ``"catalog"`` metric, then the mean over users of every ``"user"`` metric.

    Args:
        ctx: the lists and their inputs.
        per_user: :func:`user_metrics` of ``ctx`` when already computed (default: None).
    """
    out = {m.key: float(m.fn(ctx)) for m in all_metrics("catalog") if m.available(ctx)}
    frame = user_metrics(ctx) if per_user is None else per_user
    out.update({c: nanmean(frame[c].to_numpy()) for c in frame.columns if c != "u"})
    return out


def per_user_beyond(
    topk: np.ndarray, item_popularity: np.ndarray, *, users: np.ndarray | None = None, **inputs: Any
) -> pd.DataFrame:
    """Per-user beyond-accuracy metrics, one row per row of ``topk``.

    Columns: every registered ``"user"`` metric whose inputs are given (by
    default ``arp``, ``aplt``, ``novelty`` always; ``ild_categories`` with
    categories; ``calibration_kl`` with categories and history;
    ``ild_embeddings`` with embeddings; ``serendipity`` with relevant items),
    ``u`` first when ``users`` is given. Undefined values are NaN (e.g. ILD of
    a list with fewer than two items).

    Args:
        topk: ``[n_users_eval, K]`` internal item indices, ``-1`` = padding.
        item_popularity: training interaction count per item ``[n_items]``.
        users: internal user index of each row (default: None, no ``u`` column).
        **inputs: ``n_users`` (required) and the optional inputs of
            :meth:`~engine.evaluation.lists.ListContext.build` (``item_categories``,
            ``item_embeddings``, ``history``, ``relevant``, ``alpha``).
    """
    return user_metrics(ListContext.build(topk, item_popularity, **inputs), users)


def beyond_accuracy(topk: np.ndarray, item_popularity: np.ndarray, **inputs: Any) -> dict[str, float]:
    """Every beyond-accuracy metric the inputs allow, as one flat dict keyed by registry key.

    With the default registry: always ``catalog_coverage``,
    ``distributional_coverage`` (bits), ``gini_index``, ``personalization``,
    ``arp``, ``aplt``, ``novelty`` (bits); with ``history``: ``pop_rsp``; with
    ``relevant``: ``pop_reo``, ``serendipity``; with ``item_categories``:
    ``ild_categories`` (plus ``calibration_kl`` with ``history``); with
    ``item_embeddings``: ``ild_embeddings``. Per-user metrics are the means of
    :func:`per_user_beyond`'s columns.

    Args:
        topk: ``[n_users_eval, K]`` internal item indices, ``-1`` = padding.
        item_popularity: training interaction count per item ``[n_items]``
            (distinct users per item; defines ``n_items``).
        **inputs: ``n_users`` (training users, novelty's denominator; required)
            and optionally ``item_categories`` (multi-hot ``[n_items, C]`` or 1-D
            ids), ``item_embeddings`` (``[n_items, D]``), ``history`` and
            ``relevant`` (``[n_users_eval, n_items]``, rows aligned with ``topk``)
            and ``alpha`` (calibration smoothing, default 0.01), as in
            :meth:`~engine.evaluation.lists.ListContext.build` (each default: None).
    """
    return list_metrics(ListContext.build(topk, item_popularity, **inputs))
