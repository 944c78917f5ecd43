"""``gatlens update``: fold new interactions into the cached model and save a new version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.commands.common import RegistryChoices, add_csv_args, data_config_from_args, emit_json
from engine.config import ATTENTIONS, FeatureConfig, ModelConfig, RunConfig, TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "update",
        help="add new interactions to a trained model (warm start, a few epochs, new version)",
        description="Validate new interactions (a bad file is rejected whole and nothing is written), append "
        "them, warm-start the cached model for a few epochs and save a new artifact version whose manifest "
        "names its parent. New users and items get embeddings (new items through their text features).",
    )
    p.add_argument("--dataset", default="demo", help="dataset the model was trained on (default: demo)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files, as for train")
    p.add_argument("--seed", type=int, default=0, help="split seed the model was trained with (default: 0)")
    p.add_argument("--scale", type=float, default=1.0, help="demo world size multiplier (default: 1.0)")
    p.add_argument("--cache-dir", default="data/cache", help="artifact and feature cache (default: data/cache)")
    add_csv_args(p)  # --columns, --encoding, --name: as for train
    p.add_argument(
        "--model",
        default="gat",
        choices=RegistryChoices("models"),
        metavar="MODEL",
        help="the cached model to update (default: gat)",
    )
    p.add_argument("--attention", default=None, choices=ATTENTIONS, help="as for train (default: edge)")
    p.add_argument("--layers", type=int, default=None, help="as for train (default: 2)")
    p.add_argument("--no-text", action="store_true", help="as for train: the model without text features")
    p.add_argument("--train-epochs", type=int, default=None, help="--epochs the model was trained with, if set")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--new",
        required=True,
        help="CSV of new interactions: user_id,item_id[,rating][,timestamp] (rating required for rated data)",
    )
    p.add_argument("--items", default=None, help="CSV of new catalog items: item_id,title[,categories][,text]")
    p.add_argument("--epochs", type=int, default=5, help="warm-start training epochs (default: 5)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's)")
    p.add_argument("-k", type=int, default=10, help="list length for 'what changed' (default: 10)")
    p.add_argument("--json", action="store_true", help="print the update summary as JSON")
    p.set_defaults(func=run_update)


def update_config(args: argparse.Namespace) -> RunConfig:
    """The configuration that identifies the cached model (as ``gatlens train`` builds it)."""
    model_kw: dict[str, Any] = {"name": args.model}
    if args.attention:
        model_kw["attention"] = args.attention
    if args.layers is not None:
        model_kw["num_layers"] = args.layers
    train_kw: dict[str, Any] = {"device": args.device, "seed": args.seed}
    if args.train_epochs:
        train_kw["epochs"] = args.train_epochs
    return RunConfig(
        data=data_config_from_args(args),
        features=FeatureConfig(text=not args.no_text),
        model=ModelConfig(**model_kw),
        train=TrainConfig(**train_kw),
    )


def run_update(args: argparse.Namespace) -> int:
    from engine import service

    config = update_config(args)
    cache_dir = Path(args.cache_dir)
    rec = service.load_latest(config, cache_dir=cache_dir)
    if rec is None:
        raise ValueError(
            f"no trained {args.model} model for dataset {args.dataset!r} with these settings in {cache_dir}; "
            f"train one first: gatlens train --dataset {args.dataset} ..."
        )
    new = service.update(
        rec,
        Path(args.new),
        new_items=Path(args.items) if args.items else None,
        epochs=args.epochs,
        lr=args.lr,
        k=args.k,
        cache_dir=cache_dir,
    )
    summary = dict(new.meta["update"])
    summary["artifact"] = new.artifact_path
    summary["version"] = new.version
    summary["metrics"] = new.metrics
    if args.json:
        emit_json(summary)
        return 0
    print(
        f"updated {new.model_name} on {args.dataset}: +{summary['rows']} interactions "
        f"({summary['positives']} positive), +{summary['new_users']} users, +{summary['new_items']} items "
        f"in {summary['seconds']:.2f}s ({summary['epochs']} epochs)"
    )
    print(f"  artifact      {summary['artifact']} (v{summary['version']}, parent {summary['parent']})")
    before, after = summary["valid_ndcg@10_before"], summary["valid_ndcg@10_after"]
    print(f"  valid ndcg@10 {_fmt(before)} -> {_fmt(after)}   test ndcg@10 {_fmt(new.metrics.get('test_ndcg@10'))}")
    print(f"  top-{summary['k']} lists changed for {summary['users_changed']} users; most changed:")
    for row in summary["what_changed"][:5]:
        print(
            f"    {row['user_id']}: {row['changed']} of {summary['k']} items replaced "
            f"({row['new_interactions']} new interactions)"
        )
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
