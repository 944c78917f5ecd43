"""Explanation methods: one :class:`ExplainerAlgorithm` each, registered by name.

Built in: ``ig``, ``saliency``, ``ablation``, ``attention``, ``rollout`` (attention-graph models),
``leave-one-out`` (attention-graph and history-scores models) and ``exact`` (models whose score
decomposes exactly). A new method is one class plus :func:`register_algorithm`;
:func:`methods_for` says which explain a registered model.
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
from engine.explain.algorithms.decomposition import ExactDecomposition
from engine.explain.algorithms.gradient import IntegratedGradients, Saliency
from engine.explain.algorithms.leave_one_out import LeaveOneOut

_BUILT_IN = (IntegratedGradients(), Saliency(), FeatureAblation(), Attention(), Rollout(), LeaveOneOut())
for _algorithm in (*_BUILT_IN, ExactDecomposition()):
    register_algorithm(_algorithm)

__all__ = [
    "Attention",
    "ExactDecomposition",
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
