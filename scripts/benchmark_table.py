"""Render ``gatlens benchmark --out`` JSON as the Markdown table used in BENCHMARKS.md.

Usage: .venv/bin/python scripts/benchmark_table.py results-ml-100k.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10")


def main(path: str) -> None:
    with open(path) as fh:
        rows = json.load(fh)
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
    print(f"\n{len(rows)} runs, seeds {sorted({r['seed'] for r in rows})}")


if __name__ == "__main__":
    main(sys.argv[1])
