"""Captum attributions of one score: over the subgraph's edges and over input feature groups.

Edges: the input is one *message gate* per directed edge of the computation subgraph
(1 = the edge's message is delivered; PyG's explanation convention) and the baseline is
every gate at 0, which gives exactly the score with every subgraph edge removed. (The
model's own removal mask renormalises the softmax, so a uniform path from 0 to 1 on it
is discontinuous at 0 and IG would miss the jump; gates are smooth.) Feature groups: one
scale per group (categories, language-model text, id embeddings, edge weights) from 0 to
1 with everything else present. Integrated Gradients (Captum, Gauss-Legendre rule) is the
default: its attributions sum to ``score(input) - score(baseline)`` (completeness), which
is what lets the text quote shares. Layer 1 is linear in its gates, so the edge
integration steps only run the layers above it (see :func:`_gate_gradients`); the group
steps run as one block-diagonal batch of the subgraph (``internal_batch_size``).
Faithfulness to actual removal is measured separately (:mod:`engine.explain.faithfulness`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.explain.scorer import SubgraphScorer, edge_batch_size
from engine.explain.subgraph import FEATURE_GROUPS

METHODS = ("ig", "saliency", "ablation")


@dataclass
class EdgeAttribution:
    """Attribution of ``score(u, i)`` to each directed edge of the computation subgraph.

    Attributes:
        values: [E] attribution per directed edge (sum over an interaction's edges gives
            the interaction's attribution: IG is additive over inputs moved together).
        method: ``ig``, ``saliency`` or ``ablation``.
        score: score with every edge present.
        baseline_score: score with every subgraph edge removed (= every gate at 0).
        delta: completeness gap ``sum(values) - (score - baseline_score)`` (IG only; NaN otherwise).
    """

    values: np.ndarray
    method: str
    score: float
    baseline_score: float
    delta: float


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")


def edge_attributions(
    scorer: SubgraphScorer,
    *,
    method: str = "ig",
    steps: int = 16,
    ablate: np.ndarray | None = None,
) -> EdgeAttribution:
    """Attribute the pair's score to the subgraph's directed edges.

    Args:
        scorer: the pair's :class:`SubgraphScorer`.
        method: ``"ig"`` (Integrated Gradients over message gates), ``"saliency"`` (gradient
            at gates = 1) or ``"ablation"`` (Captum FeatureAblation with the model's removal
            mask: score drop when one interaction is removed) (default: ``"ig"``).
        steps: IG integration points (default: 16; Gauss-Legendre: the completeness gap is
            about 1e-7 of the score on ml-100k).
        ablate: interaction ids to ablate one at a time for ``"ablation"`` (default: None,
            the interactions touching the user or the item; ablating every interaction
            of a large subgraph would take minutes). Edges of other interactions get NaN.

    Returns:
        An :class:`EdgeAttribution`.
    """
    _check_method(method)
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps!r})")
    e = scorer.num_edges
    with torch.no_grad():
        # Every gate at 1 is the full score; every gate at 0 is every subgraph edge removed.
        x1 = scorer.first_layer[0].unsqueeze(0)
        score = float(scorer.forward_upper(x1, torch.ones(1, e))[0])
        base = float(scorer.forward_upper(torch.zeros_like(x1), torch.zeros(1, e))[0])
    if e == 0:
        return EdgeAttribution(np.zeros(0, np.float32), method, score, base, 0.0)
    delta = float("nan")
    if method in ("ig", "saliency"):
        values = _gate_gradients(scorer, method, steps)
        if method == "ig":
            delta = float(values.sum()) - (score - base)
    else:
        from captum.attr import FeatureAblation

        inputs, baselines = torch.ones(1, e), torch.zeros(1, e)
        sub = scorer.sub
        pair = sub.pair.numpy()
        if ablate is None:
            touching = (sub.interactions[:, 0] == sub.user) | (sub.interactions[:, 1] == sub.n_users + sub.item)
            ablate = np.flatnonzero(touching)
        groups = np.full(sub.num_interactions, len(ablate), dtype=np.int64)
        groups[np.asarray(ablate, dtype=np.int64)] = np.arange(len(ablate))
        feature_mask = torch.from_numpy(groups[pair]).unsqueeze(0)
        fa = FeatureAblation(scorer.forward)
        attr = fa.attribute(
            inputs, baselines=baselines, feature_mask=feature_mask, perturbations_per_eval=edge_batch_size(e)
        )
        per_edge = attr.detach().reshape(-1).numpy().astype(np.float64)
        # Captum gives every edge of a group the group's value; split it over the group's
        # edges so that per-interaction sums equal the ablation effect.
        n_dir = np.bincount(pair, minlength=sub.num_interactions)[pair]
        values = np.where(groups[pair] < len(ablate), per_edge / n_dir, np.nan)
    return EdgeAttribution(values.astype(np.float32), method, score, base, delta)


def _gate_gradients(scorer: SubgraphScorer, method: str, steps: int) -> np.ndarray:
    """IG (or the plain gradient) of the score w.r.t. every edge's message gate, per directed edge.

    Along IG's straight path all gates equal ``alpha``; layer 1 is linear in its gates
    (its attention reads only layer-0 inputs), so its output is ``alpha * x1``. Captum
    integrates the gradients of the layers above with respect to ``x1`` and to their own
    gates (``multiply_by_inputs=False``: the path-averaged gradients), and the chain rule
    through layer 1, ``d x1_dst / d g_e = coef_e * x0_src``, is applied once afterwards.
    This is exactly IG over all gates, at the cost of one layer-1 pass instead of one per
    step.
    """
    from captum.attr import IntegratedGradients, Saliency

    x1, coef1 = scorer.first_layer
    e = scorer.num_edges
    inputs = (x1.unsqueeze(0), torch.ones(1, e))
    if method == "ig":
        ig = IntegratedGradients(scorer.forward_upper, multiply_by_inputs=False)
        zeros = (torch.zeros_like(inputs[0]), torch.zeros_like(inputs[1]))
        g_x1, g_gate = ig.attribute(inputs, baselines=zeros, n_steps=steps, internal_batch_size=steps)
    else:
        inputs = tuple(t.requires_grad_() for t in inputs)
        g_x1, g_gate = Saliency(scorer.forward_upper).attribute(inputs, abs=False)
    sub = scorer.sub
    heads = coef1.size(1)
    src, dst = sub.edge_index[:, sub.layer_edges[0]]
    x0 = scorer.layer0(None)[0].view(sub.num_nodes, heads, -1)
    g1 = g_x1.detach()[0].view(sub.num_nodes, heads, -1)
    first = ((g1.index_select(0, dst) * x0.index_select(0, src)).sum(-1) * coef1).sum(-1)
    values = g_gate.detach()[0].clone()
    values[sub.layer_edges[0]] += first
    return values.numpy()


@dataclass
class GroupAttribution:
    """Attribution of ``score(u, i)`` to the input feature groups.

    Attributes:
        values: attribution per group, aligned with :data:`FEATURE_GROUPS`.
        available: whether the model has the group at all (no text encoder: ``text`` is absent).
        score / baseline_score: score with all groups present / absent (0 for absent inputs).
        delta: IG completeness gap (NaN for other methods).
    """

    values: np.ndarray
    available: np.ndarray
    score: float
    baseline_score: float
    delta: float


def available_groups(model: Any) -> np.ndarray:
    """Which of :data:`FEATURE_GROUPS` the attention model has at all, as a bool array."""
    return np.array(
        [
            model.cat_proj is not None,
            model.text_proj is not None,
            True,
            any(getattr(c, "lin_edge", None) is not None for c in model.convs),
        ],
        dtype=bool,
    )


def group_attributions(scorer: SubgraphScorer, *, method: str = "ig", steps: int = 16) -> GroupAttribution:
    """Attribute the pair's score to categories, LM text, id embeddings and edge weights.

    Args:
        scorer: the pair's :class:`SubgraphScorer`.
        method: ``"ig"``, ``"saliency"`` or ``"ablation"`` (each group set to 0 on its own)
            (default: ``"ig"``).
        steps: IG integration points (default: 16).

    Returns:
        A :class:`GroupAttribution`; the groups' baseline is "absent" (scale 0).
    """
    _check_method(method)
    available = available_groups(scorer.model)
    k = len(FEATURE_GROUPS)
    inputs, baselines = torch.ones(1, k), torch.zeros(1, k)
    with torch.no_grad():
        both = scorer.forward(scales=torch.cat([inputs, baselines]))
    score, base = float(both[0]), float(both[1])
    delta = float("nan")
    if method == "ig":
        from captum.attr import IntegratedGradients

        attr, gap = IntegratedGradients(lambda s: scorer.forward(scales=s)).attribute(
            inputs,
            baselines=baselines,
            n_steps=steps,
            internal_batch_size=edge_batch_size(max(scorer.num_edges, 1)),
            return_convergence_delta=True,
        )
        delta = float(gap.reshape(-1)[0])
    elif method == "saliency":
        from captum.attr import Saliency

        attr = Saliency(lambda s: scorer.forward(scales=s)).attribute(inputs.requires_grad_(), abs=False)
    else:
        from captum.attr import FeatureAblation

        attr = FeatureAblation(lambda s: scorer.forward(scales=s)).attribute(
            inputs, baselines=baselines, perturbations_per_eval=k
        )
    values = attr.detach().reshape(-1).numpy().astype(np.float64)
    values[~available] = 0.0
    return GroupAttribution(values, available, score, base, delta)
