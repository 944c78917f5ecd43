"""What ``explain-eval`` returns, and the pieces both of its evaluations share.

:class:`ExplainEval` is the result of :func:`engine.explain.evaluate.evaluate_explanations`, for the
attention graph (:mod:`~engine.explain.evaluate_graph`) and for a model whose score decomposes
exactly (:mod:`~engine.explain.evaluate_exact`); :func:`pair_state` is one (user, item) pair's
subgraph scorer, attention rollout and IG attributions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from engine.explain.attention import rollout
from engine.explain.attribution import edge_attributions
from engine.explain.scorer import SubgraphScorer
from engine.explain.subgraph import extract_subgraph, graph_index, input_parts
from engine.models.registry import ATTENTION_GRAPH, DECOMPOSITION
from engine.recommender import Recommender


@dataclass
class ExplainEval:
    """Aggregated faithfulness of explanations on one dataset.

    Attributes:
        dataset: dataset name.
        n_pairs: (user, top-1 item) pairs evaluated.
        summary: per method (``ig``, ``attention``, ``rollout``, ``random``): mean deletion
            and insertion AUC (score units and normalised), margin over random, mean rank
            change after removing the top-K interactions, share of pairs where the method
            beats random on deletion.
        curves: mean ``drop``, ``gain`` and ``rank_change`` per method, curve and k.
        agreement: mean top-5 overlap and Spearman of attention and rollout with IG (over
            all subgraph interactions, and over the user's history), and of every method with
            the exact leave-one-out score drop of each history interaction (the ground truth
            an attribution approximates).
        ground_truth: per method: planted-trigger cases, hits (trigger in the top-3 of the
            user's history), hit rate, and the chance rate (mean ``3 / history size``);
            None when the dataset has no planted truth.
        per_pair: one row per pair and method (AUCs).
        seconds: wall time.
        k_max: the largest k of the curves.
        trigger_reliance: whether the *model* relies on the planted triggers
            (:func:`trigger_reliance`); None when the dataset has no planted truth.
    """

    dataset: str
    n_pairs: int
    summary: pd.DataFrame
    curves: pd.DataFrame
    agreement: pd.DataFrame
    ground_truth: pd.DataFrame | None
    per_pair: pd.DataFrame
    seconds: float
    k_max: int
    trigger_reliance: dict[str, Any] | None = None
    kind: str = ATTENTION_GRAPH
    counterfactual: dict[str, Any] | None = None
    attention_verdict: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "dataset": self.dataset,
            "kind": self.kind,
            "pairs": self.n_pairs,
            "k_max": self.k_max,
            "seconds": round(self.seconds, 2),
            "summary": self.summary.to_dict("records"),
            "agreement": self.agreement.to_dict("records"),
            "ground_truth": None if self.ground_truth is None else self.ground_truth.to_dict("records"),
            "trigger_reliance": self.trigger_reliance,
            "curves": self.curves.to_dict("records"),
        }
        if self.kind == DECOMPOSITION:
            out["counterfactual"] = self.counterfactual
            out["attention_verdict"] = self.attention_verdict
        return out


def pair_state(rec: Recommender, u: int, item: int, steps: int) -> tuple[Any, Any, Any]:
    """The subgraph scorer of ``(u, item)``, its attention rollout and its IG attributions (``steps`` points)."""
    sub = extract_subgraph(graph_index(rec), u, item, len(rec.model.convs))
    scorer = SubgraphScorer(rec.model, sub, input_parts(rec))
    with torch.no_grad():
        _, atts = scorer.forward(return_attention=True)
    att = rollout(sub, atts)
    ig = edge_attributions(scorer, method="ig", steps=steps)
    return scorer, att, ig


def make_eval(
    rec: Recommender,
    t0: float,
    k_max: int,
    per_pair: pd.DataFrame,
    summary: pd.DataFrame,
    curves: pd.DataFrame,
    agreement: pd.DataFrame,
    ground_truth: pd.DataFrame | None,
    trigger_reliance: dict[str, Any] | None,
    **extra: Any,
) -> ExplainEval:
    """The :class:`ExplainEval` of one evaluation begun at ``t0`` (``extra``: the decomposition's fields)."""
    return ExplainEval(
        dataset=rec.dataset.name,
        n_pairs=int(per_pair["user"].nunique()) if len(per_pair) else 0,
        summary=summary,
        curves=curves,
        agreement=agreement,
        ground_truth=ground_truth,
        per_pair=per_pair,
        seconds=time.perf_counter() - t0,
        k_max=k_max,
        trigger_reliance=trigger_reliance,
        **extra,
    )


def agreement_frame(agree: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean top-overlap and Spearman per (method, scope)."""
    if not agree:
        return pd.DataFrame(columns=["method", "scope", "top_overlap", "spearman"])
    means = pd.DataFrame(agree).groupby(["method", "scope"], sort=False)[["top_overlap", "spearman"]].mean()
    return means.reset_index()
