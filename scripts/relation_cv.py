"""Cross-validate the relation's forms on the *training* interactions (the history term alone).

A diagnosis of how the relation's form (each item's k sources, refitted; 0 = all, dense EASE)
and the way its sources are picked trade accuracy, with far more held-out data than the
validation split: each user's training interactions are cut into ``--folds`` random folds, the
relation is fitted on the others and ranks the held-out fold (full ranking over the active
items, the fitted interactions excluded; NDCG@10 per user and fold). The validation and test
parts are never read. Printed per form and ridge (``c x`` mean item degree of the fitted part),
then each form at its best ridge with its mean paired difference to the best form and that
difference's standard error.

``--support weight`` picks each item's k sources by the dense EASE weight ``|B[j, i]|`` (at the
same ridge) instead of the co-occurrence cosine, then refits; ``truncate`` keeps those weights
without refitting.

::

    python scripts/relation_cv.py --dataset ml-100k --data-dir ../shared/datasets/ml-100k --seed 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from engine.assembly import prepare
from engine.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from engine.evaluation.accuracy import HitTable, ndcg
from engine.models.ease import ease_weights
from engine.models.relation import ease_refit, mean_item_degree, nearest_sources, relation_buffers, train_matrix


def folds_of(X: sp.csr_matrix, folds: int, seed: int) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """``(fitted, held out)`` pairs over the active items: each interaction held out once."""
    coo = X.tocoo()
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    col = np.full(X.shape[1], -1)
    col[active] = np.arange(len(active))
    fold = np.random.default_rng(1000 + seed).integers(0, folds, coo.nnz)
    shape = (X.shape[0], len(active))

    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], col[coo.col[mask]])), shape=shape)

    return [(part(fold != f), part(fold == f)) for f in range(folds)]


def ndcg_at_10(scores: torch.Tensor, held: sp.csr_matrix) -> np.ndarray:
    """Per-user NDCG@10 of ``scores`` against ``held`` (NaN for a user with nothing held out)."""
    hits = HitTable.from_topk(torch.topk(scores, 10, dim=1).indices.numpy(), held)
    return np.where(hits.n_relevant > 0, ndcg(hits, 10), np.nan)


def relation(fitted: sp.csr_matrix, k: int, lam: float, support: str) -> torch.Tensor:
    """The ``[A, A]`` relation ``S[j, i]`` (source j, target i) of one form."""
    n = fitted.shape[1]
    if support == "cosine":  # the model's own relation (every column counts as active here)
        dense, index, value = relation_buffers(
            fitted, np.arange(n), n_items=n, dense=True, l2=lam, neighbours=0, sources=k
        )
        if dense.numel():
            return dense
    else:
        Xa = fitted.tocsc()
        dense = ease_weights(Xa, lam)
        if k == 0:
            return dense
        index = torch.sort(torch.topk(dense.abs().T, k, dim=1).indices, dim=1).values
        if support == "truncate":
            value = torch.gather(dense.T, 1, index)
        else:
            value = ease_refit(dataclasses.replace(nearest_sources(Xa, k), index=index), lam)
    return torch.zeros(n, n).scatter_(1, index, value).T


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k", help="demo, ml-100k or ml-latest-small (default: ml-100k)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (MovieLens; default: none, for demo)")
    p.add_argument("--seed", type=int, default=0, help="split seed, and the folds' (default: 0)")
    p.add_argument("--cache-dir", default="data/cache", help="feature cache (default: data/cache)")
    p.add_argument("--folds", type=int, default=5, help="folds of each user's training items (default: 5)")
    p.add_argument("--sources", default="0,128,64,32,16", help="forms, 0 = all (default: 0,128,64,32,16)")
    p.add_argument("--ridges", default="0.5,1,2,5,10,20,50", help="ridges, x mean item degree (default: 0.5..50)")
    p.add_argument(
        "--support",
        default="cosine",
        choices=("cosine", "weight", "truncate"),
        help="how a sparse form's sources are picked (default: cosine, as the model does)",
    )
    args = p.parse_args(argv)
    if args.folds < 2:
        p.error(f"--folds must be at least 2 (got {args.folds})")
    forms = [int(x) for x in args.sources.split(",") if x]
    ridges = [float(x) for x in args.ridges.split(",") if x]
    cfg = RunConfig(
        data=DataConfig(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed),
        model=ModelConfig(name="ease"),
        train=TrainConfig(seed=args.seed),
    )
    parts = folds_of(train_matrix(prepare(cfg, cache_dir=Path(args.cache_dir)).graph), args.folds, args.seed)
    per: dict[tuple[int, float], np.ndarray] = {}
    print(f"{'sources':>7} {'ridge':>6} {'cv NDCG@10':>10}")
    for k in forms:
        for c in ridges:
            values = []
            for fitted, held in parts:
                history = torch.from_numpy(fitted.toarray())
                scores = history @ relation(fitted, k, c * mean_item_degree(fitted), args.support)
                scores[history > 0] = -torch.inf  # rank only what the fitted part has not seen
                values.append(ndcg_at_10(scores, held))
            per[(k, c)] = np.concatenate(values)
            print(f"{k:>7} {c:>6g} {np.nanmean(per[(k, c)]):>10.4f}", flush=True)
    best = {k: max(ridges, key=lambda c: np.nanmean(per[(k, c)])) for k in forms}
    top = max(forms, key=lambda k: np.nanmean(per[(k, best[k])]))
    print(f"\n{'sources':>7} {'ridge':>6} {'cv NDCG@10':>10} {'vs best':>8} {'paired se':>9}")
    for k in forms:
        diff = per[(k, best[k])] - per[(top, best[top])]
        ok = ~np.isnan(diff)
        se = diff[ok].std(ddof=1) / np.sqrt(ok.sum())
        print(f"{k:>7} {best[k]:>6g} {np.nanmean(per[(k, best[k])]):>10.4f} {np.nanmean(diff):>+8.4f} {se:>9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
