"""Staged fitting of :class:`~engine.models.itemgat.ItemGAT`: each part fitted where it is best, then mixed.

Joint BPR training of the whole score from the closed-form start never raised validation
NDCG@10 (ml-100k, ml-latest-small, demo), while a LightGCN trained *on its own* and added to the
EASE scores with a validation-chosen weight did (ml-100k, seed 0: +0.002 valid, +0.006 test). So:

1. **taste** (``stage="taste"``): the LightGCN part alone, the standard BPR loop
   (:func:`engine.training.loop.fit`) with our LightGCN baseline's settings and early stopping
   on taste-only validation NDCG@10;
2. **relation**: for each form in :data:`SOURCES_GRID` (all sources: dense EASE; or each item's
   ``k`` most similar sources, refitted: :func:`engine.models.relation.ease_refit`), EASE's
   ridge ``lambda = c x mean item degree``, ``c`` in :data:`L2_GRID`, by validation NDCG@10 of
   the history term alone (the ridge scales with the data through the degree: the dense form
   chose 5 on ml-100k, 10 on ml-latest-small), hill-climbing from the middle of the grid for the
   first form and from the previous form's ridge for the next. Each
   form is then judged on the whole score (with its own validation-chosen taste weight) and
   :func:`one_standard_error` keeps the sparsest within one paired standard error of the best:
   fewer sources per item is the simpler model, and each recommendation then rests on fewer
   past interactions (shorter counterfactuals).
   Then the interaction weights ``w_uj = exp(theta . (f_uj - mean f))``: ``theta`` per feature
   (rating, recency) in units of 1 / std(feature), from :data:`THETA_GRID`, by validation
   (a closed-form choice of what stage 4 would otherwise learn by gradient);
3. **gamma**: the taste weight in units of ``std(history) / std(taste)`` (over a user sample x
   all items, so it is free of either part's arbitrary scale), from :data:`GAMMA_GRID`, by
   validation, climbing up from 0 (the relation alone), so the mix never validates below it;
3b. **low-pass part**: GF-CF's ideal low-pass filter ``L`` (:mod:`engine.models.lowpass`) added
   to the relation with weight ``beta`` in units of ``std(history) / std(history through L)``,
   its rank from :data:`LOWPASS_RANKS` and ``beta`` from :data:`BETA_GRID`, the best on
   validation of the whole grid (0 included, so it never validates below stage 3). A sparse relation
   rests each item on a few similar sources; ``L`` gives back the broad tastes that leaves out
   (on the default model, seed 0: ml-100k +0.003 validation, +0.010 test NDCG@10);
4. **attention** (optional, ``finetune_epochs > 0``): ``a(j, i)`` and ``theta`` fine-tuned with
   everything else frozen (BPR on the full score, out-of-fold relations), early stopping with an
   epoch-0 evaluation: the result is kept only when it validates above stage 3.

Training never imports evaluation: ``valid_fn`` (model -> validation NDCG@10 on the model's own
``score``) is injected, as for :func:`engine.training.minibatch.fit_auto`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from engine.config import TrainConfig
from engine.data.graph import RecGraph
from engine.data.split import SplitData
from engine.models.itemgat import ItemGAT, default_l2, mean_item_degree, train_matrix
from engine.models.relation import large_sources
from engine.training.callbacks import Callback, EpochOffset
from engine.training.loop import fit
from engine.training.minibatch import DEFAULT_FANOUT, fit_minibatch
from engine.training.result import TrainResult
from engine.training.trainer import ValidFn

log = logging.getLogger(__name__)

# Multiples of the mean training item degree tried as EASE's ridge (validation picks; the dense
# relation chose 5 and 10 on ml-100k and ml-latest-small; the sparse forms chose 1, the old
# grid's end, on the demo world and ml-100k, so it reaches down to 0.25).
L2_GRID = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
# Taste weights in units of std(history term) / std(taste term); ml-100k peaked at 1-2 with the
# dense relation, and reached 4, the old grid's end, with 16 sources per item. 16 and 32 (the
# taste term nearly alone) are for catalogs whose relation has little to go on: a 42,000-item
# long-tail one chose 8, the end of the grid then.
GAMMA_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0)
# Interaction-weight exponents per standard deviation of the feature (rating, recency); 0 = unweighted.
THETA_GRID = (-0.5, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.5)
# Sources per target item tried for the EASE relation, 0 = all of them (the dense relation); the
# one-standard-error rule (one_standard_error) picks among them. A refit costs ~A k^3 / 3 flops
# per ridge (256 sources: 3.8 s per ridge on the 2,000-item demo world, one thread; 128: 8x less),
# so the grid stops at 128.
SOURCES_GRID = (0, 128, 64, 32, 16)
# Ranks of the low-pass part (singular vectors; GF-CF used 256 on catalogs of 40,000 items) and its
# weights in units of std(history) / std(history through L); 0 = off. Every rank is capped at
# min(users, active items) - 1. One decomposition at the largest rank serves them all.
LOWPASS_RANKS = (32, 64, 128, 256)
BETA_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
K = TypeVar("K")  # a grid's value type (ridge, weight or number of sources)
UNIT_USERS = 2048  # users sampled (x all items) for the std ratio
# How the taste stage's BPR epochs run: model (in stage "taste") -> result.
TasteFit = Callable[[ItemGAT], TrainResult]


def fit_staged(
    model: ItemGAT,
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    valid_fn: ValidFn,
    callbacks: Sequence[Callback] = (),
    l2: float | None = None,
    taste_weight: float | None = None,
    sources: int | None = None,
    finetune_epochs: int = 0,
    l2_grid: Sequence[float] = L2_GRID,
    sources_grid: Sequence[int] = SOURCES_GRID,
    gamma_grid: Sequence[float] = GAMMA_GRID,
    theta_grid: Sequence[float] | None = THETA_GRID,
    lowpass_ranks: Sequence[int] = LOWPASS_RANKS,
    beta_grid: Sequence[float] = BETA_GRID,
    folds: int = 5,
    taste_fit: TasteFit | None = None,
    main: bool = True,
) -> TrainResult:
    """Fit ``model`` in place: taste, relation, taste weight, then (optionally) the attention.

    Args:
        model: a fresh :class:`ItemGAT`.
        graph: the training graph (built from ``split.train`` only).
        split: supplies training pairs and the negative-sampling CSR.
        cfg: the BPR settings of the taste stage (our LightGCN's defaults) and of fine-tuning.
        valid_fn: model -> validation NDCG@10 of ``model.score`` (it caches the embeddings first).
        callbacks: progress / logging hooks of the BPR stages (default: none).
        l2: EASE ridge; None chooses ``c x mean item degree`` on validation over ``l2_grid``.
        taste_weight: ``gamma`` in std-ratio units; None chooses it on validation over ``gamma_grid``.
        sources: EASE sources kept per target item and refitted, 0 for all; None chooses among
            ``sources_grid`` by :func:`one_standard_error` on validation (default: None). Above
            the model's ``max_dense_items`` active items the dense form (0) is left out. The
            GF-CF path keeps the model's ``neighbours``.
        finetune_epochs: epoch budget of the attention fine-tuning (default: 0, off).
        l2_grid / gamma_grid / theta_grid / sources_grid: the validation grids (default:
            :data:`L2_GRID`, :data:`GAMMA_GRID`, :data:`THETA_GRID`, :data:`SOURCES_GRID`;
            ``theta_grid=None`` keeps ``w = 1``).
        lowpass_ranks / beta_grid: the low-pass part's ranks and weights (default:
            :data:`LOWPASS_RANKS`, :data:`BETA_GRID`); no ranks: no low-pass part.
        folds: user folds of the out-of-fold relations for fine-tuning (default: 5).
        taste_fit: how the taste stage's BPR epochs run, ``model -> TrainResult`` with the
            model already in stage ``"taste"`` (default: None, full-batch
            :func:`~engine.training.loop.fit` with ``cfg``, ``valid_fn`` and ``callbacks``):
            :func:`taste_on_minibatches` for sampled subgraphs, the DDP runner's data-parallel loop.
        main: False on data-parallel ranks other than 0: they take part in the taste stage only
            and return its result (the closed-form stages run once, on rank 0) (default: True).

    Returns:
        A :class:`TrainResult`: the taste stage's curve, then the fine-tuning epochs (each entry's
        ``stage`` says which), and ``best_valid`` the final model's validation NDCG@10.
        ``model.fit_report`` records every stage's choices.
    """
    t0 = time.perf_counter()
    report: dict = {}
    # 1. taste: the LightGCN part alone (no relation fitted yet, so early stopping copies no I x I state)
    model.use_graph(graph)  # histories and degrees of the whole graph, before any sampled step
    model.stage = "taste"
    if taste_fit is None:
        taste = fit(model, graph, split, cfg, valid_fn=valid_fn, callbacks=callbacks)
    else:
        taste = taste_fit(model)
    model.stage = "attention"
    if not main:
        return taste
    report["taste"] = {"valid": taste.best_valid, "best_epoch": taste.best_epoch, "epochs": taste.epochs}
    model.taste_scale.zero_()
    # 2. the relation: its form (all sources, or each item's k most similar refitted) and ridge
    X = train_matrix(graph)
    base = mean_item_degree(X)
    n_active = int((X.getnnz(axis=0) > 0).sum())
    # GF-CF (asked for) has no ridge and no forms
    ease = model.relation == "ease"
    grid = [float(l2)] if l2 is not None else [c * base for c in l2_grid] if ease else [default_l2(X)]
    # k >= A - 1 sources is every other item: the dense relation, fitted once
    asked = [int(sources)] if sources is not None else list(sources_grid)
    forms = sorted({0 if k >= n_active - 1 else k for k in asked}) if ease else [0]
    if ease and n_active > model.max_dense_items:
        # no A x A matrix there: the refitted forms only (the model's largest when only dense was asked)
        forms = [k for k in forms if k > 0] or [large_sources(n_active)]
    gammas = _weights_for(taste_weight, gamma_grid)
    cand, judged = _choose_relation(model, graph, valid_fn, grid, forms, gammas, cfg.seed)
    report["relation"] = {
        "l2": cand.l2,
        "mean_item_degree": base,
        "valid": _plain(cand.ridge_scores),
        "dense": model.dense,
        "sources": cand.sources,
        "sources_valid": _plain(judged),
        "sources_error_bar": paired_error_bars(judged) if judged else {},
    }
    relation_only = cand.score
    # 2b. interaction weights w_uj = exp(theta . (f_uj - mean f)), one feature at a time, in units
    # of 1 / std(feature): t = the log-weight change per standard deviation of rating / recency
    feat_std = model.hist_feats.std(0) if len(model.hist_feats) > 1 else torch.zeros(2)
    report["weights"] = {}
    for k, name in enumerate(("rating", "recency")):
        if theta_grid is None or not float(feat_std[k]) > 1e-6:
            continue  # no grid, or a constant feature (implicit data: every rating the same)

        def theta_score(t: float, k: int = k, current: float = relation_only) -> float:
            with torch.no_grad():
                model.edge_theta[k] = t / feat_std[k]
            return current if t == 0.0 else valid_fn(model)

        grid_t = sorted(set(theta_grid) | {0.0})
        t_scores = climb(grid_t, theta_score, start=grid_t.index(0.0))
        t_best = max(t_scores, key=lambda t: (t_scores[t], -abs(t)))  # ties: the smaller weight
        with torch.no_grad():
            model.edge_theta[k] = t_best / feat_std[k]
        relation_only = t_scores[t_best]
        report["weights"][name] = {"t": t_best, "theta": float(model.edge_theta[k].detach()), "valid": _plain(t_scores)}
        log.info("gat %s weight t=%.2f: valid NDCG@10 %.4f", name, t_best, relation_only)
    # 3. gamma in units of std(history) / std(taste)
    model.cache_embeddings(graph)
    g_best, unit, best, g_scores = _choose_gamma(model, valid_fn, gammas, relation_only, cfg.seed)
    best = float(best)
    report["gamma"] = {"unit": unit, "weight": g_best, "gamma": g_best * unit, "valid": _plain(g_scores)}
    # 3b. the low-pass part of the relation: rank and weight (weight 0 = stage 3)
    if lowpass_ranks:
        report["lowpass"], best = _choose_lowpass(model, graph, valid_fn, lowpass_ranks, beta_grid, best, cfg.seed)
    # Each epoch says which stage it trained: the dashboard labels the curve by it (the relation,
    # weights and gamma are closed-form choices with no epochs, so best_valid is above this curve).
    curve = [{**c, "stage": "taste"} for c in taste.curve]
    epochs = taste.epochs
    # 4. optional attention fine-tuning, kept only when it validates above stage 3
    if finetune_epochs > 0:
        model.prepare_finetune(graph, folds=folds, seed=cfg.seed)
        before = copy.deepcopy({k: v for k, v in model.named_parameters()})
        ft_cfg = replace(cfg, epochs=finetune_epochs, patience=min(cfg.patience, finetune_epochs))
        shifted = [EpochOffset(cb, epochs) for cb in callbacks]  # its epochs continue the taste stage's count
        ft = fit(model, graph, split, ft_cfg, valid_fn=valid_fn, callbacks=shifted)
        kept = ft.best_valid > best
        if not kept:
            with torch.no_grad():
                for k, p in model.named_parameters():
                    p.copy_(before[k])
        else:
            best = ft.best_valid
        model._folds = None  # the out-of-fold relations are for training only
        curve += [{**c, "epoch": c["epoch"] + epochs, "stage": "attention"} for c in ft.curve]
        epochs += ft.epochs
        report["finetune"] = {
            "epoch0": float(g_scores[g_best]),
            "best": ft.best_valid,
            "best_epoch": ft.best_epoch,
            "epochs": ft.epochs,
            "kept": kept,
        }
    model.cache_embeddings(graph)
    model.fit_report = report
    log.info("gat staged fit: %s", report)
    return TrainResult(
        curve=curve,
        best_epoch=taste.best_epoch,
        best_valid=best,
        epochs=epochs,
        seconds=time.perf_counter() - t0,
        stopped_early=taste.stopped_early,
        device=taste.device,
    )


def taste_on_minibatches(
    graph: RecGraph,
    split: SplitData,
    cfg: TrainConfig,
    *,
    valid_fn: ValidFn,
    callbacks: Sequence[Callback] = (),
    fanout: Sequence[int] = DEFAULT_FANOUT,
) -> TasteFit:
    """A ``taste_fit`` that trains the taste part on neighbour-sampled subgraphs (``--mode minibatch``).

    Each step propagates the LightGCN taste part only over the sampled neighbourhood of the
    batch's users and items, with the whole graph's degrees (:meth:`ItemGAT.encode`); validation
    and the final embeddings use the whole graph, as in full-batch training.

    Args:
        graph / split / cfg / valid_fn / callbacks: as for :func:`fit_staged`.
        fanout: incoming edges sampled per node per hop (default: ``(15, 10)``).
    """

    def run(model: ItemGAT) -> TrainResult:
        return fit_minibatch(model, graph, split, cfg, valid_fn=valid_fn, callbacks=callbacks, fanout=fanout)

    return run


@dataclass
class _Relation:
    """One relation form fitted at its best ridge: what installing it needs, and its validation."""

    sources: int
    l2: float
    score: float  # validation NDCG@10 of the history term alone (gamma = 0)
    ridge_scores: dict[float, float]
    buffers: tuple[Tensor, Tensor, Tensor]  # relation_dense, nbr_index, nbr_value


def _fit_ridge(
    model: ItemGAT, graph: RecGraph, valid_fn: ValidFn, grid: Sequence[float], sources: int, *, start: int
) -> _Relation:
    """The ridge of one relation form by validation of the history term alone, hill-climbing from ``grid[start]``."""
    kept: dict[str, tuple] = {}  # only the best relation so far: it may be A x A

    def relation_score(lam: float) -> float:
        model.fit_relation(graph, l2=lam, sources=sources)
        score = valid_fn(model)
        if "best" not in kept or score > kept["best"][0]:
            kept["best"] = (score, lam, (model.relation_dense, model.nbr_index, model.nbr_value))
        log.info("gat relation sources=%d l2=%.1f: valid NDCG@10 %.4f", sources, lam, score)
        return score

    scores = climb(grid, relation_score, start=start)
    score, lam, buffers = kept.pop("best")
    return _Relation(sources=sources, l2=lam, score=score, ridge_scores=scores, buffers=buffers)


def _choose_relation(
    model: ItemGAT,
    graph: RecGraph,
    valid_fn: ValidFn,
    grid: Sequence[float],
    forms: Sequence[int],
    gammas: Sequence[float],
    seed: int,
) -> tuple[_Relation, dict[int, float]]:
    """The relation's form and ridge, installed in ``model``: ``(the chosen form, {form: its validation})``.

    Each form's ridge by validation of the history term alone; with more than one form, each is
    judged on the whole score with its own taste weight and :func:`one_standard_error` picks
    (the judged dict is empty for a single form). ``taste_scale`` is left at 0.
    """
    # the dense form (0) last: its A x A inverse then peaks beside the small sparse forms, not
    # beside another A x A matrix (a refit holds X^T X while it runs)
    forms = sorted(forms, key=lambda k: (k == 0, k))
    candidates: dict[int, _Relation] = {}
    start = len(grid) // 2
    with model.reusing_neighbourhoods():  # a form's sources do not depend on the ridge
        for k in forms:
            # each form's climb starts at the previous form's ridge: neighbouring forms peak close by
            candidates[k] = _fit_ridge(model, graph, valid_fn, grid, k, start=start)
            start = list(grid).index(candidates[k].l2)
    judged: dict[int, float] = {}
    if len(candidates) > 1:
        # the sparsest within one paired standard error of the best: fewer sources, shorter explanations
        for k, cand in candidates.items():
            _install(model, cand)
            model.cache_embeddings(graph)  # the scoring cache holds the relation
            judged[k] = _choose_gamma(model, valid_fn, gammas, cand.score, seed)[2]
        model.taste_scale.zero_()
        log.info("gat relation sources: %s", {k: round(float(v), 4) for k, v in judged.items()})
    chosen = candidates[one_standard_error(judged) if judged else forms[0]]
    _install(model, chosen)
    return chosen, judged


def _install(model: ItemGAT, rel: _Relation) -> None:
    model.relation_dense, model.nbr_index, model.nbr_value = rel.buffers
    model.relation_l2.fill_(rel.l2)
    model.relation_sources.fill_(rel.sources)


def _plain(scores: dict[K, float]) -> dict[K, float]:
    """Scores as plain floats (a :class:`ValidScore` carries its per-user sample, not for the report)."""
    return {k: float(v) for k, v in scores.items()}


def _weights_for(taste_weight: float | None, gamma_grid: Sequence[float]) -> list[float]:
    """The taste weights to try: the one given, else the grid, ascending."""
    return [float(taste_weight)] if taste_weight is not None else sorted(gamma_grid)


def _choose_gamma(
    model: ItemGAT, valid_fn: ValidFn, weights: Sequence[float], relation_only: float, seed: int
) -> tuple[float, float, float, dict[float, float]]:
    """``(weight, unit, its validation, {weight: validation})``: the taste weight, climbing up from 0.

    ``gamma = weight x unit`` with ``unit = std(history) / std(taste)`` over a seeded user sample
    (the model's embeddings must be cached); weight 0 scores ``relation_only`` without a new
    evaluation; ties go to the smaller weight. The grid's largest weight (the taste term nearly
    alone) is scored too, and climbed down from when it beats the climb from 0: the mix can be
    bimodal (on a long-tail catalog of 42,000 items whose relation had little to go on, the
    taste term alone validated .086, the relation .075, and weight 0.1 dipped to .0747, so the
    climb from 0 stopped there). Leaves ``taste_scale`` at the chosen gamma.
    """
    users = torch.randperm(model.n_users, generator=torch.Generator().manual_seed(seed))[:UNIT_USERS]
    unit = model.taste_unit(users)
    scores: dict[float, float] = {}

    def gamma_score(g: float) -> float:
        if g not in scores:
            model.taste_scale.fill_(g * unit)
            scores[g] = relation_only if g == 0.0 else valid_fn(model)
            log.info("gat taste weight %.2f: valid NDCG@10 %.4f", g, scores[g])
        return scores[g]

    best_from_0 = max(climb(weights, gamma_score, start=0).values())
    if len(weights) > 1 and gamma_score(weights[-1]) > best_from_0:
        climb(weights, gamma_score, start=len(weights) - 1)
    best = max(scores, key=lambda g: (scores[g], -g))
    model.taste_scale.fill_(best * unit)
    return best, unit, scores[best], scores


def _choose_lowpass(
    model: ItemGAT,
    graph: RecGraph,
    valid_fn: ValidFn,
    ranks: Sequence[int],
    betas: Sequence[float],
    current: float,
    seed: int,
) -> tuple[dict, float]:
    """``(report, validation)``: the low-pass part's rank and weight, the best of the whole grid.

    ``current`` is the model's validation without the part (weight 0 of every rank); ties go
    to the smaller weight, then the smaller rank. Leaves the model at the choice (rank 0 when
    no weight beats ``current``).
    """
    model.fit_lowpass(graph, max(ranks))  # capped at min(users, active items) - 1, 0 on a tiny graph
    cap = int(model.lowpass_rank)
    ranks = sorted({min(int(r), cap) for r in ranks if r > 0})
    betas = sorted(set(betas) | {0.0})
    if cap < 1:
        model.lowpass_scale.zero_()
        return {"rank": 0, "beta": 0.0, "valid": {}}, current
    left, right = model.lowpass_left.clone(), model.lowpass_right.clone()
    users = torch.randperm(model.n_users, generator=torch.Generator().manual_seed(seed))[:UNIT_USERS]
    scores: dict[tuple[int, float], float] = {}
    units: dict[int, float] = {}
    for r in ranks:
        model.set_lowpass(left[:, :r], right[:, :r])
        units[r] = model.lowpass_unit(users)

        def beta_score(b: float, r: int = r) -> float:
            model.lowpass_scale.fill_(b * units[r])
            value = current if b == 0.0 else valid_fn(model)
            log.info("gat low-pass rank %d weight %.2f: valid NDCG@10 %.4f", r, b, value)
            return value

        for b in betas:  # the whole grid: validation is not unimodal in beta (ml-latest-small dipped at 0.2)
            scores[(r, b)] = beta_score(b)
    rank, beta = max(scores, key=lambda rb: (scores[rb], -rb[1], -rb[0]))
    if beta == 0.0:
        model.set_lowpass(left[:, :0], right[:, :0])
        model.lowpass_scale.zero_()
    else:
        model.set_lowpass(left[:, :rank], right[:, :rank])
        model.lowpass_scale.fill_(beta * units[rank])
    report = {
        "rank": rank if beta else 0,
        "beta": beta,
        "unit": units[rank],
        "scale": float(model.lowpass_scale),
        "valid": {f"{r}@{b:g}": float(v) for (r, b), v in scores.items()},
    }
    return report, float(scores[(rank, beta)])


def paired_error_bars(judged: dict[int, float]) -> dict[int, float]:
    """Each form's standard error of its per-user difference to the best form (0 where unknown).

    Needs the scores' per-user values (:class:`~engine.training.trainer.ValidScore`, the same
    validation users in the same order); a plain float gets 0, and so does the best form itself.
    """
    best = max(judged, key=lambda k: float(judged[k]))
    ref = getattr(judged[best], "per_user", None)
    bars = {}
    for k, score in judged.items():
        values = getattr(score, "per_user", None)
        if ref is None or values is None or len(values) != len(ref) or len(ref) < 2:
            bars[k] = 0.0
        else:
            diff = np.asarray(values, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
            bars[k] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return bars


def one_standard_error(judged: dict[int, float]) -> int:
    """The sparsest relation form whose validation is within one paired standard error of the best.

    The one-standard-error rule (Hastie, Tibshirani & Friedman, *Elements of Statistical
    Learning*, 7.10) applied to the number of sources per item, 0 meaning all: fewer sources are
    the simpler model, and each recommendation rests on fewer past interactions. The error bar
    is that of the per-user difference to the best form (:func:`paired_error_bars`); without
    per-user values the rule is the plain best, ties to the sparser form.

    Args:
        judged: ``{sources: validation NDCG@10}`` (0: all sources).

    Returns:
        The chosen number of sources.
    """
    if not judged:
        raise ValueError("no relation form to choose from")
    top = max(float(v) for v in judged.values())
    bars = paired_error_bars(judged)
    sparsest_first = sorted(judged, key=lambda k: (k == 0, k))
    return next(k for k in sparsest_first if float(judged[k]) >= top - bars[k])


def climb(grid: Sequence[float], score: Callable[[float], float], *, start: int = 0) -> dict[float, float]:
    """Hill-climb an ordered grid from ``grid[start]``: step towards the better neighbour until none is better.

    Validation NDCG@10 is unimodal in EASE's ridge and in the taste weight on every dataset
    measured, so this finds the grid's best in about half the evaluations (each one a full
    validation ranking, or an ``A x A`` inverse for the ridge).

    Returns:
        ``{value: score}`` of every grid point evaluated (the best one included).
    """
    grid = list(grid)
    seen: dict[float, float] = {}

    def at(i: int) -> float:
        if grid[i] not in seen:
            seen[grid[i]] = score(grid[i])
        return seen[grid[i]]

    i = min(max(start, 0), len(grid) - 1)
    at(i)
    for step in (1, -1):
        moved = False
        while 0 <= i + step < len(grid) and at(i + step) > at(i):
            i += step
            moved = True
        if moved:
            break
    return seen
