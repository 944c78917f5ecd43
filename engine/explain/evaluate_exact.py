"""``explain-eval`` for a model whose score decomposes exactly (:mod:`~engine.explain.additive`).

Deletion curves of the exact contributions, of the model's attention and of random orders, the
verified counterfactual's size, and the verdict on whether attention may be drawn as an explanation.
The planted-trigger ground truth is :func:`~engine.explain.evaluate_triggers.decomposition_ground_truth`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from engine.explain.additive import attention_of, edited_scores, integrated_gradients, prefix_scores, user_terms
from engine.explain.additive import leave_one_out as exact_leave_one_out
from engine.explain.counterfactual import ranks
from engine.explain.counterfactual_exact import find_counterfactual_exact, rank_rows
from engine.explain.evaluate_common import ExplainEval, agreement_frame, make_eval
from engine.explain.evaluate_triggers import decomposition_ground_truth
from engine.explain.faithfulness import agreement
from engine.models.registry import DECOMPOSITION
from engine.recommender import Recommender

log = logging.getLogger("engine.explain.evaluate")


# -- models whose score decomposes exactly ---------------------------------------------------------
# Attention is an explanation only if deleting by it beats random on deletion for this share of pairs.
ATTENTION_BAR = 0.8
RANDOM_ORDERS = 5  # random deletion orders averaged per pair


def evaluate_decomposition(
    rec: Recommender, *, users: int = 100, k_max: int = 10, seed: int = 0, triggers: pd.DataFrame | None = None
) -> ExplainEval:
    """``explain-eval`` for a model whose score decomposes exactly (:mod:`~engine.explain.additive`).

    For each sampled user with history, the top-1 item: deletion curves (remove the top-k history
    items, k = 1..``k_max``, re-score exactly: history term exact, taste profile re-propagated) for
    three orders: the exact contributions (``exact``), the model's attention ``a(j, i)`` as a graph
    view would draw it (``attention``) and random orders (mean of 5); the verified counterfactual's
    size (smallest greedy set that drops the item out of the top 10); agreement of attention, of
    exact leave-one-out and of Integrated Gradients (in closed form,
    :func:`~engine.explain.additive.integrated_gradients`) with the contributions. On the demo world,
    the planted triggers: is the trigger among the top-3 contributions, and does exact leave-one-out agree.

    Returns:
        An :class:`ExplainEval` with ``kind = "exact-decomposition"``, ``counterfactual`` (size
        distribution) and ``attention_verdict`` (does deleting by attention beat random on
        deletion for at least 80 % of pairs; if not, it is not an explanation).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    with_history = np.flatnonzero(np.diff(rec._train_csr.indptr) > 0)
    sample = rng.choice(with_history, size=min(users, with_history.size), replace=False)
    rows, curves, agree, sizes = [], [], [], []
    for n, u in enumerate(sample):
        u = int(u)
        terms = user_terms(rec, u)
        excluded = rec.train_items(u)
        r = ranks(terms.scores, excluded)
        if not (r == 1).any():
            continue
        item = int(np.flatnonzero(r == 1)[0])
        contrib = terms.contributions[item]
        att = attention_of(rec, terms.history, item)
        orders = {
            "exact": terms.history[np.argsort(-contrib, kind="stable")],
            "attention": terms.history[np.argsort(-att, kind="stable")],
        }
        randoms = [rng.permutation(terms.history) for _ in range(RANDOM_ORDERS)]
        span = float(terms.scores[item] - edited_scores(rec, terms, terms.history)[item])
        km = min(k_max, len(terms.history))

        results = {name: _deletion(rec, terms, order[:km], item, excluded) for name, order in orders.items()}
        rand = [_deletion(rec, terms, order[:km], item, excluded) for order in randoms]
        results["random"] = (np.mean([d for d, _ in rand], axis=0), float(np.mean([x for _, x in rand])))
        for name, (drop, rank_after) in results.items():
            rows.append(
                {
                    "method": name,
                    "user": u,
                    "item": item,
                    "interactions": len(terms.history),
                    "deletion_auc": float(drop.mean()),
                    "deletion_auc_norm": float(drop.mean() / span) if span > 0 else np.nan,
                    "rank_change_at_k": float(rank_after - 1),
                }
            )
            curves.extend(
                {"method": name, "curve": "deletion", "k": k + 1, "drop": float(d)} for k, d in enumerate(drop)
            )
        loo = exact_leave_one_out(rec, terms, item)
        agree.append({"method": "attention", "scope": "history vs exact", **agreement(att, contrib)})
        agree.append({"method": "leave-one-out", "scope": "history vs exact", **agreement(loo, contrib)})
        ig = integrated_gradients(rec, terms, item)
        agree.append({"method": "ig", "scope": "history vs exact", **agreement(ig, contrib)})
        agree.append({"method": "ig", "scope": "history vs leave-one-out", **agreement(ig, loo)})
        # A relation that keeps k sources per item gives every other past item exactly 0 for this
        # one: the full-history Spearman then mostly ranks ties (only the taste part moves them).
        sources = contrib != 0
        if sources.sum() > 2 and not sources.all():
            agree.append(
                {"method": "leave-one-out", "scope": "sources vs exact", **agreement(loo[sources], contrib[sources])}
            )
            agree.append({"method": "ig", "scope": "sources vs exact", **agreement(ig[sources], contrib[sources])})
        cf = find_counterfactual_exact(rec, u, item, k=10)
        sizes.append(cf.size if cf.found else None)
        if (n + 1) % 10 == 0:
            log.info("explain-eval: %d/%d pairs (%.0fs)", n + 1, len(sample), time.perf_counter() - t0)
    per_pair = pd.DataFrame(rows)
    summary = _decomposition_summary(per_pair)
    mean_curves = (
        pd.DataFrame(curves).groupby(["method", "curve", "k"], sort=False)["drop"].mean().reset_index()
        if curves
        else pd.DataFrame(columns=["method", "curve", "k", "drop"])
    )
    agree_frame = agreement_frame(agree)
    gt = reliance = None
    if triggers is not None:
        gt, reliance = decomposition_ground_truth(rec, triggers, cases=users, seed=seed)
    beats = summary.set_index("method")["beats_random"].get("attention", np.nan) if len(summary) else np.nan
    return make_eval(
        rec,
        t0,
        k_max,
        per_pair,
        summary,
        mean_curves,
        agree_frame,
        gt,
        reliance,
        kind=DECOMPOSITION,
        counterfactual=counterfactual_sizes(sizes, k=10),
        attention_verdict=attention_verdict(float(beats) if beats == beats else None),
    )


def _deletion(rec: Recommender, terms: Any, order: np.ndarray, item: int, excluded: np.ndarray) -> tuple[Any, int]:
    """Score drops of ``item`` after removing the first 1..len(order) items, and its rank after all of them."""
    rows = prefix_scores(rec, terms, order, start=1)
    return terms.scores[item] - rows[:, item], int(rank_rows(rows[-1:], item, excluded)[0])


def _decomposition_summary(per_pair: pd.DataFrame) -> pd.DataFrame:
    if per_pair.empty:
        return pd.DataFrame()
    cols = ["deletion_auc", "deletion_auc_norm", "rank_change_at_k"]
    summary = per_pair.groupby("method", sort=False)[cols].mean().reset_index()
    rand = per_pair[per_pair["method"] == "random"].set_index("user")["deletion_auc"]
    summary["deletion_margin_vs_random"] = summary["deletion_auc"] - float(rand.mean())
    beats = []
    for method in summary["method"]:
        mine = per_pair[per_pair["method"] == method].set_index("user")["deletion_auc"]
        joined = mine.to_frame("m").join(rand.rename("r"), how="inner")
        beats.append(float((joined["m"] > joined["r"]).mean()) if method != "random" and len(joined) else np.nan)
    summary["beats_random"] = beats
    return summary


def counterfactual_sizes(sizes: list[int | None], *, k: int = 10) -> dict[str, Any]:
    """The distribution of counterfactual sizes (None = not found by removing every supporting item)."""
    found = np.array([s for s in sizes if s is not None], dtype=np.float64)
    n = len(sizes)
    # The median over all pairs, counting "not found" as larger than any set (None when they are half or more).
    allv = np.array([np.inf if s is None else s for s in sizes], dtype=np.float64)
    median_all = float(np.median(allv)) if n else np.nan
    return {
        "pairs": n,
        "k": k,
        "found": int(found.size),
        "not_found": float(1 - found.size / n) if n else np.nan,
        "median": median_all if np.isfinite(median_all) else None,
        "median_found": float(np.median(found)) if found.size else None,
        "q25": float(np.percentile(allv, 25)) if n and np.isfinite(np.percentile(allv, 25)) else None,
        "q75": float(np.percentile(allv, 75)) if n and np.isfinite(np.percentile(allv, 75)) else None,
        "q90": float(np.percentile(allv, 90)) if n and np.isfinite(np.percentile(allv, 90)) else None,
        "at_most_10": float(np.mean([s is not None and s <= 10 for s in sizes])) if n else np.nan,
        "sizes": [None if s is None else int(s) for s in sizes],
    }


def attention_verdict(beats_random: float | None) -> dict[str, Any]:
    """Whether the model's attention may be presented as an explanation (deletion beats random often enough)."""
    ok = beats_random is not None and beats_random >= ATTENTION_BAR
    if beats_random is None:
        text = "attention could not be measured; do not present it as an explanation"
    elif ok:
        text = (
            f"attention a(j, i) beats random on deletion for {beats_random:.0%} of pairs (bar {ATTENTION_BAR:.0%}): "
            "it may be drawn as 'attention', though the exact contributions remain the explanation"
        )
    else:
        text = (
            f"attention a(j, i) beats random on deletion for only {beats_random:.0%} of pairs (bar "
            f"{ATTENTION_BAR:.0%}): it is NOT an explanation; draw the exact contributions instead"
        )
    return {"beats_random": beats_random, "threshold": ATTENTION_BAR, "is_explanation": ok, "text": text}
