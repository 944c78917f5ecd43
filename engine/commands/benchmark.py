"""``gatlens benchmark``: every model on identical splits, mean ± std over seeds."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from engine.commands.common import add_data_args, config_from_args
from engine.config import DataConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="train and evaluate several models on identical splits (RecBole protocol)",
        description="RecBole's protocol: ratings >= 3 (--threshold) are positives, random 8:1:1 split per user, "
        "full ranking excluding training items, early stopping on validation NDCG@10, embedding size 64. Each run "
        "trains in its own process so peak RSS is measured per model; a run that fails (an error, or out of memory) is "
        "reported with its reason and the others go on (exit status 1 when any failed).",
    )
    add_data_args(p)
    p.add_argument(
        "--models",
        default="pop,itemknn,bprmf,lightgcn,ease,gcn,sage,gat",
        help="comma-separated models (default: every registered model)",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default: 3)")
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="N",
        help="hold the split at seed N, so --seeds vary only the initialisation, as published tables that "
        "report several seeds of one split do (default: each seed draws its own split)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument(
        "--config",
        dest="configs",
        action="append",
        default=[],
        metavar="FILE",
        help="a tuned configuration from gatlens tune, used for the model it names; repeat for several "
        "(default: every model at its defaults)",
    )
    p.add_argument(
        "--tuned",
        default=None,
        metavar="DIR",
        help="use DIR/<dataset>-<model>.best.json for each model that has one, e.g. data/tuning (default: none)",
    )
    p.set_defaults(func=run, seed=0)


def tuned_overrides(args: argparse.Namespace, models: list[str], data: DataConfig) -> dict[str, dict]:
    """Model -> tuned overrides from --config files and the --tuned folder (a --config file wins)."""
    from engine.tuning.best import best_path, dataset_label, load_tuned

    found = {}
    if args.tuned:
        for name in models:
            path = best_path(Path(args.tuned), dataset_label(data), name)
            if path.is_file():
                found[name] = load_tuned(path)
    for path in args.configs:
        tuned = load_tuned(path)
        if tuned.model not in models:
            raise ValueError(f"--config {path} is tuned for {tuned.model!r}, which --models does not list")
        found[tuned.model] = tuned
    for name, tuned in found.items():
        print(f"  {name:<9} tuned configuration {tuned.path}", file=sys.stderr)
    return {name: tuned.overrides for name, tuned in found.items()}


def run(args: argparse.Namespace) -> int:
    from engine.evaluation.benchmark import format_table, run_benchmark, summarize

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    base = config_from_args(args)
    started = time.time()

    done: list[dict] = []

    def show(row: dict) -> None:
        done.append(row)
        if args.out:  # rewritten after every run so an interrupted benchmark keeps its rows
            Path(args.out).write_text(json.dumps(done, indent=2))
        if "failed" in row:
            print(f"  {row['model']:<9} seed {row['seed']}: FAILED: {row['failed']}", file=sys.stderr, flush=True)
            return
        t = row["test"]
        print(
            f"  {row['model']:<9} seed {row['seed']}: ndcg@10 {t['ndcg@10']:.4f} recall@10 {t['recall@10']:.4f} "
            f"({row['epochs']} epochs, {row['train_seconds']:.1f}s, {row['peak_rss_mb']:.0f} MB)",
            file=sys.stderr,
            flush=True,
        )

    def starting(model: str, seed: int, number: int, total: int) -> None:
        if not getattr(args, "quiet", False):
            elapsed = time.time() - started
            print(f"  [{number}/{total}] {model} seed {seed} ... ({elapsed:.0f}s so far)", file=sys.stderr, flush=True)

    tuned = tuned_overrides(args, models, base.data)
    rows = run_benchmark(
        base,
        models,
        range(args.seeds),
        cache_dir=Path(args.cache_dir),
        on_row=show,
        on_start=starting,
        tuned=tuned,
        split_seed=args.split_seed,
    )
    failed = [r for r in rows if "failed" in r]
    if len(failed) < len(rows):
        print(format_table(summarize(rows)))
    print(f"\n{len(rows)} runs in {time.time() - started:.0f}s on {platform.node()} ({platform.processor() or '?'})")
    for r in failed:
        print(f"FAILED: {r['model']} seed {r['seed']}: {r['failed']}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
        print(f"rows written to {args.out}")
    return 1 if failed else 0
