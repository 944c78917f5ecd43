"""Validation functions for early stopping: model -> validation NDCG@10 with full ranking.

The training loop takes one of these as ``valid_fn`` instead of building it, so training never
imports evaluation. Which one a run uses matters for reproducibility: full-batch training has
always validated on ``model(graph)``, mini-batch training on layer-wise embeddings (equal up to
float rounding, not bit for bit), so :func:`valid_fn_for` picks by training mode.
"""

from __future__ import annotations

from engine.data.graph import RecGraph
from engine.data.split import SplitData
from engine.evaluation.ranking import evaluate
from engine.models.base import EmbeddingModel
from engine.models.gat import GraphRecommender
from engine.training.inference import CHUNK_EDGES, LayerwiseInference
from engine.training.trainer import ValidFn, ValidScore

METRIC = "ndcg@10"  # what early stopping maximises


def _valid_ndcg(model: EmbeddingModel, split: SplitData) -> ValidScore:
    result = evaluate(model, split, "valid", ks=(10,))
    # The per-user values travel with the mean: the staged fit compares relation forms pairwise.
    return ValidScore(result.overall[METRIC], result.per_user[METRIC].to_numpy())


def default_valid_fn(split: SplitData, graph: RecGraph) -> ValidFn:
    """Validation NDCG@10 with full ranking (train items excluded) on ``model(graph)``.

    Args:
        split: supplies the validation interactions and the training items to exclude.
        graph: the training graph, on the device the model trains on.
    """

    def fn(model: EmbeddingModel) -> float:
        model.cache_embeddings(graph)
        return _valid_ndcg(model, split)

    return fn


def layerwise_valid_fn(split: SplitData, graph: RecGraph, *, chunk_edges: int = CHUNK_EDGES) -> ValidFn:
    """Validation NDCG@10 (full ranking) with embeddings from :class:`LayerwiseInference`.

    Args:
        split: supplies the validation interactions and the training items to exclude.
        graph: the training graph, on the device the model trains on.
        chunk_edges: edges per chunk of the layer-wise forward (default: 524,288).
    """
    infer = LayerwiseInference(graph, chunk_edges=chunk_edges)

    def fn(model: EmbeddingModel) -> float:
        model.set_cached_embeddings(*infer(model))
        return _valid_ndcg(model, split)

    return fn


def valid_fn_for(model: EmbeddingModel, split: SplitData, graph: RecGraph, *, mode: str) -> ValidFn:
    """The validation function a training run in ``mode`` uses for ``model``.

    Args:
        model: the model to be trained.
        split: supplies the validation interactions.
        graph: the training graph, on the device the model trains on.
        mode: ``"full"`` or ``"minibatch"`` (as chosen by :func:`engine.training.minibatch.choose_mode`);
            mini-batch runs of the graph recommender (``uigat``, ``gcn``, ``sage``) validate layer-wise,
            with bounded memory; ItemGAT always validates on its own ``cache_embeddings`` (its
            full-graph part is a LightGCN, light enough to run whole).
    """
    if mode == "minibatch" and isinstance(model, GraphRecommender):  # ItemGAT validates on its own cache
        return layerwise_valid_fn(split, graph)
    return default_valid_fn(split, graph)
