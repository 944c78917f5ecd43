"""``explain-eval``: faithfulness of the explanations over a sample of users, and ground truth.

For each sampled user with training history, the top-1 item is explained and its
computation subgraph's interactions are ordered by IG, raw attention, attention rollout
and at random; deletion/insertion curves and AUCs are averaged over users, and the
attention orders are compared with IG. On the demo world the planted triggers give
ground truth: when a user's top-10 contains a trigger target B and the user's training
history holds its trigger A, an explanation should rank the history edge to A among the
top 3 of the user's history. That is a test of the model as much as of the explanation:
the ``leave-one-out`` row (the exact score drop of removing each history interaction) says
whether the model relies on A at all, which bounds what a *faithful* attribution can
show, and :func:`trigger_reliance` re-ranks the whole catalog without A to say whether A
is what keeps B in the list.

The parts: :mod:`~engine.explain.evaluate_graph` (the attention graph),
:mod:`~engine.explain.evaluate_exact` (a model whose score decomposes exactly),
:mod:`~engine.explain.evaluate_triggers` (the planted-trigger ground truth) and
:mod:`~engine.explain.evaluate_common` (:class:`ExplainEval`); their public names are importable
from here.
"""

from __future__ import annotations

import pandas as pd

from engine.explain.additive import is_decomposable
from engine.explain.evaluate_common import ExplainEval
from engine.explain.evaluate_exact import (
    ATTENTION_BAR,
    attention_verdict,
    counterfactual_sizes,
    evaluate_decomposition,
)
from engine.explain.evaluate_graph import evaluate_attention_graph
from engine.explain.evaluate_triggers import (
    decomposition_ground_truth,
    demo_triggers,
    ground_truth_hits,
    trigger_cases,
    trigger_reliance,
)
from engine.explain.explainer import require_attention_model
from engine.explain.subgraph import single_thread
from engine.recommender import Recommender

__all__ = [
    "ATTENTION_BAR",
    "ExplainEval",
    "attention_verdict",
    "counterfactual_sizes",
    "decomposition_ground_truth",
    "demo_triggers",
    "evaluate_decomposition",
    "evaluate_explanations",
    "ground_truth_hits",
    "trigger_cases",
    "trigger_reliance",
]


def evaluate_explanations(
    rec: Recommender,
    *,
    users: int = 100,
    k_max: int = 10,
    steps: int = 16,
    seed: int = 0,
    triggers: pd.DataFrame | None = None,
) -> ExplainEval:
    """Faithfulness of explanations over a random sample of users (and ground truth if given).

    Args:
        rec: the recommender (``gat``, or a model whose score decomposes exactly:
            :func:`evaluate_decomposition`).
        users: users to sample for the curves, and ground-truth cases to collect (default: 100).
        k_max: largest k of the deletion/insertion curves (default: 10).
        steps: IG integration points (default: 16).
        seed: sampling seed (default: 0).
        triggers: planted ``trigger_item_id`` -> ``target_item_id`` pairs (the demo world's)
            (default: None, no ground-truth check).

    Returns:
        An :class:`ExplainEval`.
    """
    if users < 1:
        raise ValueError(f"users must be >= 1 (got {users!r})")
    if is_decomposable(rec):
        with single_thread():
            return evaluate_decomposition(rec, users=users, k_max=k_max, seed=seed, triggers=triggers)
    require_attention_model(rec)
    with single_thread():
        return evaluate_attention_graph(rec, users=users, k_max=k_max, steps=steps, seed=seed, triggers=triggers)
