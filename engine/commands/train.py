"""``gatlens train`` and ``gatlens recommend``."""

from __future__ import annotations

import argparse
import time

from engine.commands.common import add_data_args, add_model_args, echo, emit_json, load_recommender


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (or load it from the cache) and print its test metrics",
        description="Train a model on a dataset; a valid cached artifact with the same config and data is "
        "loaded instead (use --force to retrain).",
    )
    add_data_args(p)
    add_model_args(p)
    p.add_argument("--force", action="store_true", help="retrain even if a cached model exists")
    p.add_argument("--json", action="store_true", help="print the model card as JSON")
    p.set_defaults(func=run_train)

    r = sub.add_parser(
        "recommend",
        help="top-K items for a user",
        description="Print a user's top-K recommendations (training the model first if none is cached).",
    )
    add_data_args(r)
    add_model_args(r)
    r.add_argument("--user", default=None, help="external user id, e.g. 42 (ml-100k) or u0042 (demo)")
    r.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    r.add_argument(
        "--all",
        action="store_true",
        help="every user's top-K to --out (user_id,item_id,rank,score; training and validation items excluded, "
        "as in the audit), for gatlens import-recs or another tool",
    )
    r.add_argument("--out", default=None, help="with --all: the file to write, .csv or .parquet")
    r.add_argument("--include-seen", action="store_true", help="do not drop the user's training items")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=run_recommend, force=False)


def run_train(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    rec = load_recommender(args)
    seconds = time.perf_counter() - t0
    card = rec.meta
    if args.json:
        emit_json({**card, "artifact": rec.artifact_path, "wall_seconds": round(seconds, 3)})
        return 0
    tr = card["training"]
    cached = "loaded from cache" if rec.from_cache else "trained"
    echo(f"{card['model']} on {card['data']['dataset']}: {cached} in {seconds:.2f}s")
    print(f"  artifact      {rec.artifact_path or '-'}")
    print(f"  training      {tr['epochs']} epochs (best {tr['best_epoch']}), {tr['seconds']}s on {tr['device']}")
    print(f"  text features {card['language_model']['note']}")
    m = card["metrics"]
    keys = ["ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10"]
    print("  test          " + "  ".join(f"{k} {m.get('test_' + k, float('nan')):.4f}" for k in keys))
    return 0


def run_recommend(args: argparse.Namespace) -> int:
    if args.all != (args.user is None) or (args.out is not None) != args.all:
        raise ValueError("give --user ID for one user, or --all --out FILE for every user")
    rec = load_recommender(args)
    if args.all:
        from engine.commands.export_progress import export_with_progress

        return export_with_progress(rec, args.out, args.k)
    recs = rec.recommend(args.user, args.k, exclude_seen=not args.include_seen)
    if args.json:
        emit_json(recs.to_dict())
        return 0
    if recs.fallback:
        echo(f"user {recs.user_id}: {recs.fallback}")
    for row in recs.items.itertuples():
        cats = ", ".join(row.categories)
        echo(f"{row.rank:>3}. {row.title}  [{cats}]  score {row.score:.3f}")
    return 0
