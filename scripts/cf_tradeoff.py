"""How short can the default gat's counterfactuals get, and what does it cost in accuracy?

Trains (or loads) the default ``gat`` on a dataset, then edits its item-item relation ``S`` in place
and, for each edit, prints validation NDCG@10 and the distribution of verified counterfactual sizes
(the fewest past interactions whose removal drops each sampled user's #1 item out of the top 10,
found and verified by :func:`engine.explain.counterfactual_exact.find_counterfactual_exact`), with
the median of a lower bound on that size from the history term alone (:func:`history_lower_bound`). The
taste weight is re-chosen on validation for every edit (x0.5, x1, x2 of the trained one). Edits:

* ``top-k``: keep the ``k`` largest ``|S[j, i]|`` per target item ``i`` (a sparser relation);
* ``power``: ``S -> sign(S) |S|^p``, rescaled to the same mean ``|S|`` (strong links dominate).

Validation only: the test part is never read. Dense (EASE) relations only::

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default="../shared/datasets/ml-100k")
    p.add_argument("--cache-dir", default="data/cache", help="model and feature cache (default: data/cache)")
    p.add_argument("--users", type=int, default=100, help="users sampled, seed 0 (default: 100)")
    p.add_argument("--top-k", default="256,64,32", help="sources kept per item (default: 256,64,32)")
    p.add_argument("--power", default="1.5,2,3", help="exponents (default: 1.5,2,3)")
    args = p.parse_args(argv)
    cli = ["explain-eval", "--dataset", args.dataset, "-q", "--cache-dir", args.cache_dir]
    if args.dataset != "demo":
        cli += ["--data-dir", args.data_dir]
    served = service.train(config_from_args(build_parser().parse_args(cli)), cache_dir=Path(args.cache_dir))
    rec = served._rec
    model = rec.model
    if not model.dense:
        raise SystemExit("the relation is sparse (GF-CF): this study edits the dense EASE relation")
    full = model.relation_dense.clone()
    users_emb, items_emb = (t.clone() for t in model.cached_embeddings().values())
    gamma = float(model.taste_scale)
    rng = np.random.default_rng(0)
    with_history = np.flatnonzero(np.diff(rec._train_csr.indptr) > 0)
    sample = rng.choice(with_history, size=min(args.users, with_history.size), replace=False)
    edits = [("none", 1.0)] + [("top-k", float(k)) for k in args.top_k.split(",") if k]
    edits += [("power", float(x)) for x in args.power.split(",") if x]
    print(
        f"{'edit':<12} {'valid NDCG@10':>13} {'gamma':>6} {'CF median':>9} {'q25/q75':>8} {'<=5':>5} {'none':>5} "
        f"{'bound med':>9}"
    )
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
        forget(rec)  # the memoised terms changed with the relation and gamma
        t0 = time.perf_counter()
        sizes, bounds = [], []
        for u in sample:
            terms = user_terms(rec, int(u))
            excluded = rec.train_items(int(u))
            item = int(np.flatnonzero(ranks(terms.scores, excluded) == 1)[0])
            cf = find_counterfactual_exact(rec, int(u), item)
            sizes.append(cf.size if cf.found else NOT_FOUND)
            bounds.append(history_lower_bound(terms, item, excluded))
        s = np.asarray(sizes)
        label = "relation" if kind == "none" else f"{kind} {value:g}"
        print(
            f"{label:<12} {valid[mult]:>13.4f} {'x' + format(mult, 'g'):>6} {np.median(s):>9g} "
            f"{np.percentile(s, 25):>3g}/{np.percentile(s, 75):<4g} {(s <= 5).mean():>5.0%} {(s == NOT_FOUND).sum():>5}"
            f" {np.median(bounds):>9g}  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
