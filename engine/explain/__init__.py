"""Explanations of the graph attention recommender: why item i for user u.

Orchestrator (:func:`explain_pair`) + pluggable algorithms (attention rollout, Captum
attributions) + a result object (:class:`Explanation`) + free-function metrics
(:mod:`engine.explain.faithfulness`), in the shape of PyG's ``torch_geometric.explain``.
Nothing heavy is imported until a function runs.
"""

from engine.explain.counterfactual import Counterfactual, WhatIf, what_if
from engine.explain.explainer import explain_pair
from engine.explain.explanation import Explanation

__all__ = ["Counterfactual", "Explanation", "WhatIf", "explain_pair", "what_if"]
