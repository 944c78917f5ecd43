"""Thin adapters from engine results to what the pages draw (no Streamlit, no torch imports).

The explanation and audit objects come from :meth:`Recommender.explain` and
:meth:`Recommender.audit`; these helpers pick out the frames the components take,
and turn "this engine feature is not installed / not built yet" into a message
instead of a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

UNAVAILABLE = (ImportError, NotImplementedError, AttributeError)


class FeatureUnavailable(RuntimeError):
    """An engine feature the page needs is missing (e.g. explanations for a non-graph model)."""


def explain(rec: Any, user: str, item: str, **kwargs: Any) -> Any:
    """``rec.explain(user, item, **kwargs)``, with missing features reported as :class:`FeatureUnavailable`.

    Raises:
        FeatureUnavailable: the explanation module is absent or cannot explain this model.
    """
    try:
        return rec.explain(user, item, **kwargs)
    except UNAVAILABLE as exc:
        raise FeatureUnavailable(
            f"Explanations are not available for this model yet ({type(exc).__name__}: {exc})."
        ) from exc
    except TypeError as exc:  # e.g. a model without attention / embeddings the explainer needs
        raise FeatureUnavailable(f"This model cannot be explained ({exc}).") from exc


def reason(rec: Any, user: str, item: str, **kwargs: Any) -> str | None:
    """The one-line plain-language reason, or None when explanations are unavailable."""
    try:
        exp = explain(rec, user, item, **kwargs)
    except FeatureUnavailable as exc:
        log.info("no reason for (%s, %s): %s", user, item, exc)
        return None
    text = getattr(exp, "reason", None)
    return str(text) if text else None


# ----------------------------------------------------------------------------- re-ranking
RERANKERS = {
    "none": "none",
    "mmr": "diversity (MMR)",
    "pop": "long-tail boost",
    "calibrated": "calibrated to history",
}


def rerank_user(rec: Any, user: str, spec: str, k: int, *, pool: int = 100, **filters: Any) -> pd.DataFrame:
    """One user's top-``k`` after a post-processing re-ranker (the audit's re-rankers).

    Args:
        rec: the Recommender.
        user: a user with training history.
        spec: ``"mmr:0.3"``, ``"pop:0.5"``, ``"calibrated:0.4"`` or ``"none"``.
        k: list length.
        pool: candidates taken from the model's ranking (default: 100).
        **filters: passed to ``rec.recommend`` (categories, hide_popular).

    Returns:
        The re-ranked ``Recommendations.items`` frame, with ``model_rank`` (rank before re-ranking).
    """
    from engine.fairness.rerank import apply_rerank

    n_items = len(rec.items)
    base = rec.recommend(user, min(pool, n_items), **filters).items
    if base.empty or spec.split(":")[0] == "none":
        return base.head(k).assign(model_rank=base["rank"].head(k))
    idx = np.asarray(rec.idmap.item_indices(list(base["item_id"])), dtype=np.int64)
    cats = np.asarray(rec.prep.categories.detach().cpu().numpy(), dtype=np.float64)
    u = rec.idmap.user_index(user)
    history = cats[rec.train_items(u)]
    row_sums = history.sum(axis=1, keepdims=True)
    hist_dist = (history / np.where(row_sums > 0, row_sums, 1.0)).sum(axis=0, keepdims=True)
    order = apply_rerank(
        spec,
        idx[None, :],
        base["score"].to_numpy(dtype=np.float64)[None, :],
        k=min(k, len(idx)),
        item_vectors=cats,
        item_popularity=np.asarray(rec.item_popularity, dtype=np.float64),
        item_categories=cats,
        history_category_dist=hist_dist,
    )[0]
    position = {int(i): p for p, i in enumerate(idx)}
    picked = base.iloc[[position[int(i)] for i in order if i >= 0]].copy()
    picked["model_rank"] = picked["rank"].to_numpy()
    picked["rank"] = np.arange(1, len(picked) + 1)
    return picked.reset_index(drop=True)
