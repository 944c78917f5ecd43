"""Each relation form's history term on validation *and* test: what validation sees of the forms' trade.

A diagnosis, not a choice: nothing here feeds a default (the staged fit judges forms on validation
only). For each form (each item's k most similar sources, refitted; 0 = all, the dense EASE
relation) and each ridge ``c x`` mean item degree, the history term alone (no taste term, no
interaction weights) ranks the validation part (training items masked) and the test part
(training and validation items masked), RecBole's protocol as in ``gatlens benchmark``. Printed per
form: validation / test NDCG@10 at every ridge, then the validation-best ridge's pair.

``--mask-test`` adds a third figure: validation with the test items masked too, the mirror of how
test is ranked (which masks the validation items). The protocol's validation leaves a user's test
items in the ranking, where they take top-10 places and count as misses; this shows how much that
alone hides. It reads the test labels, so it is for diagnosis only, never for a choice.

::

    python scripts/forms_valid_test.py --dataset ml-latest-small --data-dir ../shared/datasets/ml-latest-small --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from engine.assembly import prepare
from engine.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from engine.evaluation.accuracy import HitTable, ndcg
from engine.models.ease import ease_weights
from engine.models.relation import ease_refit, form_sources, mean_item_degree, train_matrix


def held_matrix(part, col: np.ndarray, n_users: int, n_active: int) -> sp.csr_matrix:
    """A split part as a binary users x active-items matrix (items without training interactions dropped)."""
    part = part[col[part["i"].to_numpy()] >= 0]
    return sp.csr_matrix(
        (np.ones(len(part)), (part["u"].to_numpy(), col[part["i"].to_numpy()])), shape=(n_users, n_active)
    )


def mean_ndcg(scores: torch.Tensor, held: sp.csr_matrix, mask: torch.Tensor) -> float:
    """Mean NDCG@10 over users with a held-out item, ``mask`` excluded from their ranking."""
    users = np.flatnonzero(held.getnnz(axis=1) > 0)
    s = scores[users].clone()
    s[mask[users]] = -torch.inf
    hits = HitTable.from_topk(torch.topk(s, 10, dim=1).indices.numpy(), held[users])
    return float(np.mean(ndcg(hits, 10)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k", help="dataset name (default: ml-100k)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: None)")
    p.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    p.add_argument("--forms", default="16,32,64,128,0", help="sources per item, 0 = dense (default: 16,32,64,128,0)")
    p.add_argument(
        "--ridges", default="1,2,5,10,20", help="ridge multiples of the mean item degree (default: 1,2,5,10,20)"
    )
    p.add_argument("--cache-dir", default="data/cache", help="feature cache (default: data/cache)")
    p.add_argument("--json", action="store_true", help="print one JSON line per form instead of text")
    p.add_argument("--mask-test", action="store_true", help="also rank validation with the test items masked")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = RunConfig(
        data=DataConfig(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed),
        model=ModelConfig(name="ease"),
        train=TrainConfig(seed=args.seed),
    )
    prep = prepare(cfg, cache_dir=Path(args.cache_dir))
    X = train_matrix(prep.graph)
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    Xa = X[:, active].tocsc()
    col = np.full(X.shape[1], -1)
    col[active] = np.arange(len(active))
    n_users, n = X.shape[0], len(active)
    valid = held_matrix(prep.split.valid, col, n_users, n)
    test = held_matrix(prep.split.test, col, n_users, n)
    history = torch.from_numpy(Xa.toarray()).float()
    valid_mask = history > 0
    test_mask = torch.from_numpy((Xa + valid).toarray()) > 0
    mirror_mask = torch.from_numpy((Xa + test).toarray()) > 0 if args.mask_test else None
    degree = mean_item_degree(Xa)
    for k in (int(f) for f in args.forms.split(",")):
        nb = form_sources(Xa, k) if k else None
        pairs = {}
        for c in (float(r) for r in args.ridges.split(",")):
            if nb is None:
                S = ease_weights(Xa, c * degree)
            else:
                S = torch.zeros(n, n)
                S[nb.index, torch.arange(n)[:, None].expand_as(nb.index)] = ease_refit(nb, c * degree)
            scores = history @ S
            pairs[c] = (mean_ndcg(scores, valid, valid_mask), mean_ndcg(scores, test, test_mask))
            if mirror_mask is not None:
                pairs[c] += (mean_ndcg(scores, valid, mirror_mask),)
        best = max(pairs, key=lambda c: pairs[c][0])
        if args.json:
            row = {"dataset": args.dataset, "seed": args.seed, "sources": k, "ridge_c": best}
            row |= {"valid": pairs[best][0], "test": pairs[best][1], "by_ridge": {str(c): v for c, v in pairs.items()}}
            if mirror_mask is not None:
                row["valid_test_masked"] = pairs[best][2]
            print(json.dumps(row), flush=True)
        else:
            at = " ".join(f"{c:g}:" + "/".join(f"{x:.4f}" for x in v) for c, v in pairs.items())
            shown = " / ".join(f"{x:.4f}" for x in pairs[best])
            print(f"sources {k:4d}  {at}  | valid-best c={best:g}: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
