"""Seed-level exploration of ItemGAT's staged fit (validation decides, test reported).

Trains ``gat`` (ItemGAT) through :func:`engine.assembly.train_model` (the registry's staged fit) and
prints valid/test metrics and every stage's validation choices (``model.fit_report``).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/explore_model.py --dataset ml-100k \
        --data-dir ../shared/datasets/ml-100k [--set finetune_epochs=20 ...] [--explain]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from engine.assembly import prepare, train_model
from engine.config import RunConfig
from engine.evaluation.ranking import evaluate

KS = (10, 20)


def metrics(model, split) -> dict[str, float]:
    out = {}
    for part in ("valid", "test"):
        r = evaluate(model, split, part, ks=KS).overall
        out |= {f"{part}_{k}": round(r[k], 4) for k in ("ndcg@10", "recall@20", "ndcg@20")}
    return out


def counterfactual_size(model, u: int, item: int, exclude: np.ndarray, k: int = 10, cap: int = 200) -> int | None:
    """Greedy: remove the largest contributions c(u, j, item) until ``item`` leaves the top-k.

    Exact re-scoring of every item: removing history item j subtracts c(u, j, i) for all i
    (the taste profile and popularity residuals are held fixed). None if ``cap`` removals do not suffice.
    """
    scores = model.score(torch.tensor([u]))[0].clone()
    scores[exclude] = -np.inf
    dense_cols = model.contributions_many(u, torch.arange(model.n_items))["contribution"]  # [I, n]: c(u, j, i)
    order = torch.argsort(dense_cols[item], descending=True)
    for n, jj in enumerate(order[:cap].tolist(), start=1):
        scores = scores - dense_cols[:, jj]
        scores[exclude] = -np.inf
        if int((scores > scores[item]).sum()) >= k:
            return n
    return None


def explain_figures(model, prep, args) -> None:
    sp_ = prep.split
    X = sp_.matrix("train")
    users = np.random.default_rng(0).permutation(sp_.n_users)
    trig_of = {}
    if args.dataset == "demo":
        from engine.data.synthetic import generate_demo_world

        world = generate_demo_world(args.seed)
        idm = sp_.idmap
        for a, b in zip(world.triggers["trigger_item_id"], world.triggers["target_item_id"], strict=True):
            if idm.has_item(a) and idm.has_item(b):
                trig_of.setdefault(idm.item_index(b), set()).add(idm.item_index(a))
    hits, cases, cf, t_cf = 0, 0, [], []
    for u in users[:400]:
        excl = X[u].indices
        s = model.score(torch.tensor([int(u)]))[0]
        s[excl] = -np.inf
        top = torch.topk(s, 10).indices.tolist()
        hist = set(excl.tolist())
        if trig_of and cases < 100:
            for b in top:
                a_set = trig_of.get(b, set()) & hist
                if a_set:
                    c = model.contributions(int(u), b)
                    top3 = c["history"][torch.argsort(c["contribution"], descending=True)[:3]].tolist()
                    hits += bool(a_set & set(top3))
                    cases += 1
                    break
        if len(cf) < 100:
            t0 = time.perf_counter()
            cf.append(counterfactual_size(model, int(u), top[0], excl))
            t_cf.append(time.perf_counter() - t0)
    sizes = np.array([np.nan if x is None else x for x in cf], dtype=float)
    print(
        "EXPLAIN",
        json.dumps(
            {
                "trigger_top3": f"{hits}/{cases}",
                "cf_median": float(np.nanmedian(sizes)),
                "cf_quartiles": [float(np.nanpercentile(sizes, q)) for q in (25, 75, 90)],
                "cf_not_found": int(np.isnan(sizes).sum()),
                "cf_seconds_median": round(float(np.median(t_cf)), 3),
            }
        ),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default="/tmp/h13cache")
    ap.add_argument("--set", nargs="*", default=[], help="ModelConfig overrides key=value (e.g. finetune_epochs=20)")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--explain", action="store_true", help="trigger recovery (demo) and counterfactual sizes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base = RunConfig()

    def over(section, pairs):
        return {k: type(getattr(section, k))(v) for k, v in (a.split("=") for a in pairs)}

    cfg = base.with_overrides(
        data={"dataset": args.dataset, "data_dir": args.data_dir, "seed": args.seed},
        model={"name": "gat", **over(base.model, args.set)},
        train={"seed": args.seed, **over(base.train, args.train)},
    )
    prep = prepare(cfg, cache_dir=Path(args.cache_dir))
    model, res = train_model(prep)
    row = metrics(model, prep.split) | {"epochs": res.epochs, "seconds": round(res.seconds, 1)}
    print("gat", repr(model), row, flush=True)
    print("REPORT", json.dumps(model.fit_report, default=float))
    if args.explain:
        explain_figures(model, prep, args)


if __name__ == "__main__":
    main()
