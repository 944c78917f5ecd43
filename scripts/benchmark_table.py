"""Render ``gatlens benchmark --out`` JSON as the Markdown table used in BENCHMARKS.md.

Usage: .venv/bin/python scripts/benchmark_table.py results-ml-100k.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20", "mrr@10")
LEAD = "gat"  # the margin line compares this model with the best other one on each metric


def main(path: str) -> None:
    with open(path) as fh:
        every = json.load(fh)
    rows = [r for r in every if "failed" not in r]  # a failed run has no metrics: listed after the table
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("| model | " + " | ".join(f"test {m}" for m in METRICS) + " | epochs | train s | s/epoch | peak RSS MB |")
    print("|---" * (len(METRICS) + 5) + "|")
    for name in models:
        rs = [r for r in rows if r["model"] == name]
        cells = []
        for m in METRICS:
            v = np.array([r["test"][m] for r in rs])
            cells.append(f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}")
        ep = np.mean([r["epochs"] for r in rs])
        ts = np.mean([r["train_seconds"] for r in rs])
        spe = [r["seconds_per_epoch"] for r in rs if r.get("seconds_per_epoch")]
        rss = np.max([r["peak_rss_mb"] for r in rs])
        spe_cell = f"{np.mean(spe):.2f}" if spe else "-"
        print(f"| {name} | " + " | ".join(cells) + f" | {ep:.0f} | {ts:.1f} | {spe_cell} | {rss:.0f} |")
    splits = sorted({r.get("split_seed", r["seed"]) for r in rows})
    held = f" on the split of seed {splits[0]}" if len(splits) == 1 and len({r["seed"] for r in rows}) > 1 else ""
    print(f"\n{len(rows)} runs, seeds {sorted({r['seed'] for r in rows})}{held}")
    for r in every:
        if "failed" in r:
            print(f"FAILED: {r['model']} seed {r['seed']}: {r['failed']}")
    if LEAD in models and len(models) > 1:
        print()
        for m in METRICS:
            print(margin(rows, models, m))


def margin(rows: list[dict], models: list[str], metric: str) -> str:
    """One line: the lead model's mean minus the best other model's, next to both seed spreads."""
    by = {n: np.array([r["test"][metric] for r in rows if r["model"] == n]) for n in models}
    other = max((n for n in models if n != LEAD), key=lambda n: by[n].mean())
    a, b = by[LEAD], by[other]
    sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0  # noqa: E731
    return (
        f"{metric}: {LEAD} {a.mean():.4f} - {other} {b.mean():.4f} = {a.mean() - b.mean():+.4f} "
        f"({100 * (a.mean() / b.mean() - 1):+.1f} %); seed std {sd(a):.4f} / {sd(b):.4f}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
