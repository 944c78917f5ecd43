"""Explanation methods: one :class:`ExplainerAlgorithm` each, registered by name.

Built in: ``ig``, ``saliency``, ``ablation``, ``attention``, ``rollout`` (attention-graph models)
and ``leave-one-out`` (attention-graph and history-scores models). A new method is one class
plus :func:`register_algorithm`; :func:`methods_for` says which explain a registered model.
"""

from engine.explain.algorithms.ablation import FeatureAblation
from engine.explain.algorithms.attention import Attention, Rollout
from engine.explain.algorithms.base import (
    ExplainerAlgorithm,
    GraphTarget,
    HistoryScorer,
    HistoryTarget,
    get_algorithm,
    method_names,
    methods_for,
    register_algorithm,
    require_support,
    unregister_algorithm,
)
from engine.explain.algorithms.gradient import IntegratedGradients, Saliency
from engine.explain.algorithms.leave_one_out import LeaveOneOut

for _algorithm in (IntegratedGradients(), Saliency(), FeatureAblation(), Attention(), Rollout(), LeaveOneOut()):
    register_algorithm(_algorithm)

__all__ = [
    "Attention",
    "ExplainerAlgorithm",
    "FeatureAblation",
    "GraphTarget",
    "HistoryScorer",
    "HistoryTarget",
    "IntegratedGradients",
    "LeaveOneOut",
    "Rollout",
    "Saliency",
    "get_algorithm",
    "method_names",
    "methods_for",
    "register_algorithm",
    "require_support",
    "unregister_algorithm",
]
