"""The explanation algorithm interface and the registry of explanation methods.

In the shape of PyG's ``torch_geometric.explain``: :func:`~engine.explain.explain_pair` is the
orchestrator (PyG's ``Explainer``), an :class:`ExplainerAlgorithm` computes attributions
(PyG's ``ExplainerAlgorithm``) and :class:`~engine.explain.explanation.Explanation` is the
result. A model offers *explanation interfaces* (its registry capabilities,
:data:`~engine.models.registry.EXPLAIN_INTERFACES`); an algorithm declares the interfaces it
works with, so "which methods explain which models" is computed, never listed:

* :data:`~engine.models.registry.ATTENTION_GRAPH`: the attention model's computation subgraph
  (:class:`GraphTarget`): edge gates, feature-group scales, attention and removal masks;
* :data:`~engine.models.registry.HISTORY_SCORES`: a model whose scores are a function of the
  user's history row (:class:`HistoryScorer`), re-scored with the history edited.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from engine.errors import UnsupportedModelError
from engine.explain.attention import AttentionResult
from engine.explain.attribution import EdgeAttribution, GroupAttribution
from engine.explain.scorer import SubgraphScorer
from engine.models.registry import ATTENTION_GRAPH, DECOMPOSITION, HISTORY_SCORES, ModelSpec, model_names, model_spec

# What each interface asks of a model, for error messages.
INTERFACE_TEXT = {
    ATTENTION_GRAPH: "the user-item attention model 'uigat' (or a model with the attention-graph capability)",
    HISTORY_SCORES: "a model that re-scores an edited history (registered with the history-scores capability)",
    DECOMPOSITION: "a model whose score decomposes exactly (registered with the exact-decomposition capability)",
}


@runtime_checkable
class HistoryScorer(Protocol):
    """A model whose scores are a function of the user's history row (the history-scores interface)."""

    def score_history(self, histories: Tensor) -> Tensor:
        """Scores ``[B, n_items]`` for history rows ``[B, n_items]`` (1 where the user interacted).

        For a training-matrix row it must equal ``score`` of that user: the explanation's
        numbers are the model's own arithmetic.
        """
        ...


@dataclass
class GraphTarget:
    """One pair as the attention-graph algorithms see it.

    Attributes:
        scorer: the pair's batched scorer on its computation subgraph.
        attention: the attention of the full forward and its rollout.
        steps: integration points of path methods (IG); others ignore it.
    """

    scorer: SubgraphScorer
    attention: AttentionResult
    steps: int


@dataclass
class HistoryTarget:
    """One pair as the history-scores algorithms see it.

    Attributes:
        model: the fitted model (a :class:`HistoryScorer`).
        row: the user's history row ``[n_items]`` (1 at training items).
        history: the user's training items (internal indices), in the row's order.
        item: the explained item (internal index).
    """

    model: HistoryScorer
    row: Tensor
    history: np.ndarray
    item: int


class ExplainerAlgorithm(ABC):
    """One explanation method: attributions of one score, for the interfaces it declares.

    Subclasses set :attr:`name`, :attr:`description` and :attr:`interfaces` and implement
    the ``attribute_*`` methods of those interfaces.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    interfaces: ClassVar[tuple[str, ...]]

    def supports(self, spec: ModelSpec) -> bool:
        """Whether the model offers an interface this method works with."""
        return any(i in spec.capabilities.explain for i in self.interfaces)

    def attribute_edges(self, target: GraphTarget) -> EdgeAttribution:
        """Attribution of the pair's score to each directed edge of its computation subgraph."""
        raise UnsupportedModelError(f"{self.name!r} does not explain attention-graph models")

    def attribute_groups(self, target: GraphTarget) -> GroupAttribution | None:
        """Attribution to the input feature groups (default: None, the method does not attribute them)."""
        return None

    def attribute_history(self, target: HistoryTarget) -> np.ndarray:
        """Attribution of the score to each history item ``[len(target.history)]``."""
        raise UnsupportedModelError(f"{self.name!r} does not explain history-scores models")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r}, interfaces={self.interfaces})"


_ALGORITHMS: dict[str, ExplainerAlgorithm] = {}


def register_algorithm(algorithm: ExplainerAlgorithm, *, replace: bool = False) -> ExplainerAlgorithm:
    """Register an explanation method under ``algorithm.name`` (a clash is an error unless ``replace``)."""
    if algorithm.name in _ALGORITHMS and not replace:
        raise ValueError(f"explanation method {algorithm.name!r} is already registered")
    _ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def unregister_algorithm(name: str) -> ExplainerAlgorithm:
    """Remove the method ``name`` and return it (KeyError names the registered ones)."""
    if name not in _ALGORITHMS:
        raise KeyError(f"explanation method {name!r} is not registered; registered: {', '.join(_ALGORITHMS)}")
    return _ALGORITHMS.pop(name)


def method_names() -> tuple[str, ...]:
    """Every registered explanation method, in registration order."""
    return tuple(_ALGORITHMS)


def get_algorithm(name: str) -> ExplainerAlgorithm:
    """The registered method ``name`` (ValueError lists the registered ones)."""
    algo = _ALGORITHMS.get(name)
    if algo is None:
        raise ValueError(f"method must be one of {method_names()} (got {name!r})")
    return algo


def methods_for(model: str) -> tuple[str, ...]:
    """The explanation methods that support the registered model ``model`` (none for an unknown name)."""
    if model not in model_names():
        return ()
    spec = model_spec(model)
    return tuple(n for n, a in _ALGORITHMS.items() if a.supports(spec))


def require_support(method: str, model: str) -> tuple[ModelSpec, ExplainerAlgorithm]:
    """The model's spec and the method's algorithm, when the method explains that model.

    Raises:
        ValueError: for an unregistered method.
        UnsupportedModelError: for a model that is not registered or that the method does not
            support; the message names what the method needs and the methods that would work.
    """
    algo = get_algorithm(method)
    spec = model_spec(model) if model in model_names() else None
    if spec is None or not algo.supports(spec):
        needs = " or ".join(INTERFACE_TEXT[i] for i in algo.interfaces)
        offered = ", ".join(methods_for(model)) or "none"
        raise UnsupportedModelError(
            f"explanation method {method!r} needs {needs} (got {model!r}, whose explanation methods are: {offered})"
        )
    return spec, algo


def spread_over_edges(values: np.ndarray, target: GraphTarget, method: str) -> EdgeAttribution:
    """Per-interaction values ``[P]`` as an :class:`EdgeAttribution`, split evenly over each interaction's edges.

    The explanation's tables sum edges back into interactions, which then read ``values``
    (NaN stays NaN). ``score`` / ``baseline_score`` are the scorer's with every subgraph edge
    present / absent; ``delta`` is NaN: only path methods have a completeness gap.
    """
    scorer = target.scorer
    sub = scorer.sub
    pair = sub.pair.numpy()
    n_dir = np.bincount(pair, minlength=sub.num_interactions)[pair]
    per_edge = np.asarray(values, dtype=np.float64)[pair] / np.maximum(n_dir, 1)
    with torch.no_grad():
        gates = torch.ones(2, sub.num_edges)
        gates[1] = 0.0
        score, base = (float(s) for s in scorer.forward(gate=gates))
    return EdgeAttribution(per_edge.astype(np.float32), method, score, base, float("nan"))
