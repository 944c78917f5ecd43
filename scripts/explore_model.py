"""Seed-level exploration of the ItemGAT model against EASE and LightGCN (validation decides, test reported).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/explore_model.py --dataset ml-100k \
        --data-dir ../shared/datasets/ml-100k [--lightgcn] [--set attention_dim=32 ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from engine.config import RunConfig
from engine.evaluation.ranking import evaluate
from engine.models.itemgat import ItemGAT, select_l2
from engine.pipeline import prepare
from engine.training.device import seed_everything
from engine.training.loop import fit as _fit

KS = (10, 20)


def fit(model, graph, split, cfg):
    try:
        from engine.evaluation.validation import default_valid_fn
    except ImportError:  # older tree: the loop builds its own
        return _fit(model, graph, split, cfg)
    return _fit(model, graph, split, cfg, valid_fn=default_valid_fn(split, graph))


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
    indptr, hist, feats = model._hist
    j = hist[indptr[u] : indptr[u + 1]]
    w = model.edge_weight(feats[indptr[u] : indptr[u + 1]]).detach()
    _, rel_t = model._scoring
    dense_cols = rel_t.to_dense()[:, j] * w  # [I, n]: c(u, j, i)
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
    ap.add_argument("--lightgcn", action="store_true")
    ap.add_argument("--ease-only", action="store_true")
    ap.add_argument("--l2", type=float, default=None, help="EASE ridge (default: chosen on validation)")
    ap.add_argument("--set", nargs="*", default=[], help="model kwargs key=value")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--no-text", action="store_true")
    ap.add_argument("--explain", action="store_true", help="trigger recovery (demo) and counterfactual sizes")
    ap.add_argument("--save", default=None, help="torch.save the trained model's state here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train_over = {k: type(getattr(RunConfig().train, k))(v) for k, v in (a.split("=") for a in args.train)}
    cfg = RunConfig().with_overrides(
        data={"dataset": args.dataset, "data_dir": args.data_dir, "seed": args.seed},
        model={"name": "gat"},
        train={"seed": args.seed, **train_over},
    )
    prep = prepare(cfg)
    sp_ = prep.split
    rows = {}
    from engine.models.ease import EASE

    t0 = time.perf_counter()
    if args.l2 is None:
        l2, grid = select_l2(sp_)
        print("EASE l2 grid (valid ndcg@10):", {round(k, 1): round(v, 4) for k, v in grid.items()})
    else:
        l2 = args.l2
    ease = EASE(l2=l2).fit(sp_)
    rows["ease"] = metrics(ease, sp_) | {"l2": round(l2, 1), "seconds": round(time.perf_counter() - t0, 1)}
    print("ease", rows["ease"], flush=True)
    if args.ease_only:
        return
    if args.lightgcn:
        from engine.models.lightgcn import LightGCN

        seed_everything(args.seed)
        lg = LightGCN(sp_.n_users, sp_.n_items, embedding_dim=64, num_layers=2)
        res = fit(lg, prep.graph, sp_, cfg.train)
        rows["lightgcn"] = metrics(lg, sp_) | {"epochs": res.epochs, "seconds": round(res.seconds, 1)}
        print("lightgcn", rows["lightgcn"], flush=True)
    kw = {}
    for a in args.set:
        k, v = a.split("=")
        kw[k] = type(ItemGAT.__init__.__kwdefaults__[k])(v)
    text = None if (args.no_text or prep.text.embeddings is None) else torch.from_numpy(prep.text.embeddings)
    seed_everything(args.seed)
    model = ItemGAT(sp_.n_users, sp_.n_items, text_features=text, **kw)
    t0 = time.perf_counter()
    model.fit_relation(prep.graph, l2=l2)
    t_rel = time.perf_counter() - t0
    model.cache_embeddings(prep.graph)
    rows["itemgat_init"] = metrics(model, sp_)
    print("itemgat@init", rows["itemgat_init"], flush=True)
    res = fit(model, prep.graph, sp_, cfg.train)
    rows["itemgat"] = metrics(model, sp_) | {
        "epochs": res.epochs,
        "best_epoch": res.best_epoch,
        "seconds": round(res.seconds + t_rel, 1),
        "relation_s": round(t_rel, 1),
        "att_bias": round(float(model.att_bias), 3),
        "theta": [round(float(x), 3) for x in model.edge_theta],
    }
    print("itemgat", repr(model), rows["itemgat"], flush=True)
    print("curve", [(c["epoch"], round(c.get("valid_ndcg@10", float("nan")), 4)) for c in res.curve])
    print(
        "JSON",
        json.dumps({"dataset": args.dataset, "seed": args.seed, "set": args.set, "train": args.train, "rows": rows}),
    )
    if args.explain:
        explain_figures(model, prep, args)
    if args.save:
        torch.save({"state": model.state_dict(), "kw": kw}, args.save)


if __name__ == "__main__":
    main()
