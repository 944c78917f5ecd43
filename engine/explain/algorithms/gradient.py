"""Gradient methods on the attention graph: Integrated Gradients and saliency (Captum)."""

from __future__ import annotations

from typing import ClassVar

from engine.explain.algorithms.base import ExplainerAlgorithm, GraphTarget
from engine.explain.attribution import EdgeAttribution, GroupAttribution, edge_attributions, group_attributions
from engine.models.registry import ATTENTION_GRAPH


class CaptumAttribution(ExplainerAlgorithm):
    """Base of the Captum methods on the attention graph: edges and feature groups by ``name``.

    The feature groups use a quarter of the steps (at least 4): their path is smooth and each
    step costs a layer-1 pass.
    """

    interfaces: ClassVar[tuple[str, ...]] = (ATTENTION_GRAPH,)

    def attribute_edges(self, target: GraphTarget) -> EdgeAttribution:
        return edge_attributions(target.scorer, method=self.name, steps=target.steps)

    def attribute_groups(self, target: GraphTarget) -> GroupAttribution:
        return group_attributions(target.scorer, method=self.name, steps=max(4, target.steps // 4))


class IntegratedGradients(CaptumAttribution):
    """Integrated Gradients over the subgraph's message gates and the feature-group scales.

    Complete: the edge attributions sum to ``score - score with every subgraph edge removed``
    (Gauss-Legendre; see :mod:`engine.explain.attribution`).
    """

    name: ClassVar[str] = "ig"
    description: ClassVar[str] = "Integrated Gradients (complete: edge attributions sum to the score change)"


class Saliency(CaptumAttribution):
    """The plain gradient at the input (gates and scales at 1): fast, local, not complete."""

    name: ClassVar[str] = "saliency"
    description: ClassVar[str] = "gradient of the score at the input (fast, local)"
