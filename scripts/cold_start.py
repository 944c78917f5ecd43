"""Print the cold-start figure: Recall@20 on items hidden from training vs random.

Usage: .venv/bin/python scripts/cold_start.py --dataset ml-100k --data-dir ../shared/datasets/ml-100k
"""

from __future__ import annotations

import argparse
import json

from engine.config import RunConfig
from engine.evaluation.coldstart import cold_start_eval


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--share", type=float, default=0.05, help="share of items hidden (default: 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-text", action="store_true", help="ablation: train without language-model features")
    args = p.parse_args()
    cfg = RunConfig().with_overrides(
        data={"dataset": args.dataset, "data_dir": args.data_dir, "seed": args.seed},
        features={"text": not args.no_text},
    )
    print(json.dumps(cold_start_eval(cfg, share=args.share, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
