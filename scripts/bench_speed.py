"""Print the engine's speed figures on this machine (issue targets in brackets).

* GAT training on ml-100k to early stop, wall seconds [<= 180 s on the 2-core CPU];
* its seconds per epoch against LightGCN's on the same graph and config [<= 3x];
* peak RSS of each training process [<= 3 GB];
* ``Recommender.recommend`` for one user from a loaded model, median and p95 over users [<= 50 ms].

Each training runs in its own process (``engine.evaluation.benchmark``'s child), as in
``gatlens benchmark``, so peak RSS is per model. Run it on a quiet machine: the figures are
wall-clock times.

Usage::

    .venv/bin/python scripts/bench_speed.py --data-dir ../shared/datasets/ml-100k [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from engine.config import RunConfig
from engine.evaluation.benchmark import run_benchmark
from engine.pipeline import train_or_load


def recommend_latency(cfg: RunConfig, cache_dir: Path, users: int) -> dict[str, float]:
    """Load (training once if needed) and time ``recommend`` for ``users`` random known users."""
    train_or_load(cfg, cache_dir=cache_dir)  # make sure an artifact exists
    t0 = time.perf_counter()
    rec = train_or_load(cfg, cache_dir=cache_dir)
    load_s = time.perf_counter() - t0
    ids = list(rec.idmap.users)
    pick = np.random.default_rng(0).choice(len(ids), size=min(users, len(ids)), replace=False)
    rec.recommend(ids[int(pick[0])], 10)  # first call pays lazy set-up (CSR of the training matrix)
    times = []
    for n in pick:
        t = time.perf_counter()
        rec.recommend(ids[int(n)], 10)
        times.append((time.perf_counter() - t) * 1000)
    return {
        "load_seconds": round(load_s, 3),
        "median_ms": round(float(np.median(times)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "users": len(times),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/datasets/ml-100k", help="ml-100k folder")
    p.add_argument("--cache-dir", default="data/cache", help="feature and model cache (default: data/cache)")
    p.add_argument("--users", type=int, default=200, help="users timed for recommend (default: 200)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    base = RunConfig().with_overrides(data={"dataset": "ml-100k", "data_dir": args.data_dir})
    out: dict = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    # One child process per model, as in `gatlens benchmark`: peak RSS is per model.
    for row in run_benchmark(base, ("lightgcn", "gat"), (0,), cache_dir=Path(args.cache_dir)):
        name = row["model"]
        out[name] = {k: row[k] for k in ("train_seconds", "seconds_per_epoch", "epochs", "best_epoch", "peak_rss_mb")}
        out[name]["test_ndcg@10"] = round(row["test"]["ndcg@10"], 4)
        print(f"{name:<9} {json.dumps(out[name])}", flush=True)
    out["epoch_ratio_gat_over_lightgcn"] = round(
        out["gat"]["seconds_per_epoch"] / out["lightgcn"]["seconds_per_epoch"], 2
    )
    with tempfile.TemporaryDirectory(prefix="gatlens-speed-") as tmp:
        cache = Path(tmp)
        text = Path(args.cache_dir) / "text"
        if text.is_dir():
            (cache / "text").symlink_to(text.resolve())
        out["recommend"] = recommend_latency(base, cache, args.users)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
