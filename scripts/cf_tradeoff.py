"""How short can the default gat's counterfactuals get, and what does it cost in accuracy?

Two studies, validation only (the test part is never read), each row with validation NDCG@10 and
the distribution of verified counterfactual sizes (the fewest past interactions whose removal
drops each sampled user's #1 item out of the top 10, found and verified by
:func:`engine.explain.counterfactual_exact.find_counterfactual_exact`), with the median of a lower
bound on that size from the history term alone (:func:`history_lower_bound`):

1. ``--sources``: the staged fit run once per relation form, ``gatlens train --sources K`` (each
   item's K most similar sources refitted; 0: all, the dense EASE relation), every other choice
   (ridge, weights, gamma) made on validation as in training; then the form the default fit
   chooses (one-standard-error rule), marked "chosen";
2. ``--top-k`` / ``--power``: edits of the *dense* relation in place, gamma re-chosen on
   validation (x0.5, x1, x2 of the trained one):

   * ``top-k``: keep the ``k`` largest ``|S[j, i]|`` per target item ``i`` (truncated, not refitted);
   * ``power``: ``S -> sign(S) |S|^p``, rescaled to the same mean ``|S|`` (strong links dominate).

::

    python scripts/cf_tradeoff.py --dataset ml-100k --data-dir ../shared/datasets/ml-100k
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engine import service
from engine.cli import build_parser
from engine.commands.common import config_from_args
from engine.evaluation.ranking import evaluate
from engine.explain.additive import forget, user_terms
from engine.explain.counterfactual import ranks
from engine.explain.counterfactual_exact import find_counterfactual_exact

NOT_FOUND = 10_000  # sorts after every real size


def edited(full: torch.Tensor, kind: str, value: float) -> torch.Tensor:
    """``full`` with the edit applied (``kind`` ``"top-k"`` or ``"power"``)."""
    if kind == "top-k":
        k = int(value)
        if k >= full.shape[0]:
            return full.clone()
        threshold = torch.topk(full.abs(), k, dim=0).values[-1:]  # per target column
        return torch.where(full.abs() >= threshold, full, torch.zeros_like(full))
    out = torch.sign(full) * full.abs() ** value
    return out * (full.abs().mean() / out.abs().mean().clamp(min=1e-12))


def history_lower_bound(terms, item: int, excluded: np.ndarray, k: int = 10) -> int:
    """Fewest removals that could drop ``item`` out of the top-``k`` by the history term alone.

    Removing ``m`` past items narrows the item's lead over a rival by at most the sum of the ``m``
    largest lead reductions over its history; ``k`` rivals must pass it (it is #1). The taste
    profile's re-propagation is left out, so the exact search can occasionally beat this.
    """
    scores = terms.scores.astype(np.float64).copy()
    scores[excluded] = -np.inf
    scores[item] = -np.inf
    rivals = np.flatnonzero(np.isfinite(scores))
    lead = terms.scores[item] - terms.scores[rivals]
    narrow = terms.contributions[item][None, :] - terms.contributions[rivals]  # [R, n]
    reach = np.cumsum(np.maximum(-np.sort(-narrow, axis=1), 0.0), axis=1)  # best m removals, m = 1..n
    passed = (reach > lead[:, None]).sum(axis=0)  # rivals that m removals could let past
    enough = np.flatnonzero(passed >= k)
    return int(enough[0]) + 1 if enough.size else NOT_FOUND


def cf_row(rec, sample: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Verified counterfactual sizes (NOT_FOUND when none) and history-term lower bounds for ``sample``."""
    forget(rec)  # the memoised terms depend on the relation and gamma
    sizes, bounds = [], []
    for u in sample:
        terms = user_terms(rec, int(u))
        excluded = rec.train_items(int(u))
        item = int(np.flatnonzero(ranks(terms.scores, excluded) == 1)[0])
        cf = find_counterfactual_exact(rec, int(u), item)
        sizes.append(cf.size if cf.found else NOT_FOUND)
        bounds.append(history_lower_bound(terms, item, excluded))
    return np.asarray(sizes), bounds


def print_row(label: str, valid: float, gamma: str, sizes: np.ndarray, bounds: list[int], seconds: float) -> None:
    print(
        f"{label:<16} {valid:>13.4f} {gamma:>7} {np.median(sizes):>9g} "
        f"{np.percentile(sizes, 25):>3g}/{np.percentile(sizes, 75):<4g} {(sizes <= 5).mean():>5.0%} "
        f"{(sizes == NOT_FOUND).sum():>5} {np.median(bounds):>9g}  ({seconds:.0f} s)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default="../shared/datasets/ml-100k")
    p.add_argument("--cache-dir", default="data/cache", help="model and feature cache (default: data/cache)")
    p.add_argument("--users", type=int, default=100, help="users sampled, seed 0 (default: 100)")
    p.add_argument("--sources", default="0,128,64,32,16", help="forms fitted (default: 0,128,64,32,16)")
    p.add_argument("--top-k", default="256,64,32", help="dense relation's sources kept (default: 256,64,32)")
    p.add_argument("--power", default="1.5,2,3", help="exponents (default: 1.5,2,3)")
    args = p.parse_args(argv)
    cli = ["explain-eval", "--dataset", args.dataset, "-q", "--cache-dir", args.cache_dir]
    if args.dataset != "demo":
        cli += ["--data-dir", args.data_dir]
    cache = Path(args.cache_dir)

    def trained(extra: list[str]):
        return service.train(config_from_args(build_parser().parse_args(cli + extra)), cache_dir=cache)._rec

    header = (
        f"{'relation':<16} {'valid NDCG@10':>13} {'gamma':>7} {'CF median':>9} {'q25/q75':>8} {'<=5':>5} "
        f"{'none':>5} {'bound med':>9}"
    )
    sample = None
    print("1. the staged fit per relation form (sources per item; 0 = all)\n" + header)
    for k in [int(x) for x in args.sources.split(",") if x] + [None]:
        rec = trained([] if k is None else ["--sources", str(k)])
        if sample is None:
            with_history = np.flatnonzero(np.diff(rec._train_csr.indptr) > 0)
            n = min(args.users, with_history.size)
            sample = np.random.default_rng(0).choice(with_history, size=n, replace=False)
        report = rec.meta["training"]["choices"]  # the model card's copy: a cached model has no fit_report
        valid = rec.meta["metrics"]["valid_ndcg@10"]  # the model card's, measured when it was trained
        t0 = time.perf_counter()
        sizes, bounds = cf_row(rec, sample)
        label = f"chosen: {report['relation']['sources']}" if k is None else f"sources {k}"
        print_row(label, valid, format(report["gamma"]["weight"], "g"), sizes, bounds, time.perf_counter() - t0)

    rec = trained(["--sources", "0"])
    model = rec.model
    full = model.relation_dense.clone()
    users_emb, items_emb = (t.clone() for t in model.cached_embeddings().values())
    gamma = float(model.taste_scale)
    edits = [("none", 1.0)] + [("top-k", float(k)) for k in args.top_k.split(",") if k]
    edits += [("power", float(x)) for x in args.power.split(",") if x]
    print("\n2. edits of the dense relation (truncated, not refitted), gamma re-chosen\n" + header)
    for kind, value in edits:
        model.relation_dense = full.clone() if kind == "none" else edited(full, kind, value)
        valid = {}
        for mult in (0.5, 1.0, 2.0):
            model.taste_scale.fill_(gamma * mult)
            model.set_cached_embeddings(users_emb, items_emb)
            valid[mult] = evaluate(model, rec.prep.split, "valid", ks=(10,)).overall["ndcg@10"]
        mult = max(valid, key=valid.get)
        model.taste_scale.fill_(gamma * mult)
        model.set_cached_embeddings(users_emb, items_emb)
        t0 = time.perf_counter()
        sizes, bounds = cf_row(rec, sample)
        label = "dense" if kind == "none" else f"{kind} {value:g}"
        print_row(label, valid[mult], "x" + format(mult, "g"), sizes, bounds, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
