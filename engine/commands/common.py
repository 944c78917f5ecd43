"""Options and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.config import MODEL_NAMES, DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="demo", help="demo, ml-100k, ml-latest-small, ml-1m or csv (default: demo)")
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the dataset's official layout (MovieLens) or interactions.csv/items.csv (csv)",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed; also the demo world's seed (default: 0)")
    p.add_argument("--scale", type=float, default=1.0, help="demo world size multiplier (default: 1.0)")
    p.add_argument("--cache-dir", default="data/cache", help="artifact and feature cache (default: data/cache)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="gat", choices=MODEL_NAMES, help="model to train or load (default: gat)")
    p.add_argument("--attention", default=None, choices=("edge", "dot", "gat"), help="attention form (default: edge)")
    p.add_argument("--layers", type=int, default=None, help="message-passing layers (default: 2)")
    p.add_argument(
        "--item-item-dim",
        type=int,
        default=None,
        help="width of the GAT's item-item context vectors, 0 turns the term off (default: 0)",
    )
    p.add_argument("--no-text", action="store_true", help="train without language-model item features")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: 300, early stopping)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "full", "minibatch"),
        help="full-batch or neighbour-sampled mini-batch training (default: auto, by graph size)",
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    model_kw: dict[str, Any] = {"name": getattr(args, "model", "gat")}
    if getattr(args, "attention", None):
        model_kw["attention"] = args.attention
    if getattr(args, "layers", None) is not None:
        model_kw["num_layers"] = args.layers
    if getattr(args, "item_item_dim", None) is not None:
        model_kw["item_item_dim"] = args.item_item_dim
    train_kw: dict[str, Any] = {
        "device": getattr(args, "device", "auto"),
        "seed": args.seed,
        "mode": getattr(args, "mode", "auto"),
    }
    if getattr(args, "epochs", None):
        train_kw["epochs"] = args.epochs
    return RunConfig(
        data=DataConfig(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed, scale=args.scale),
        features=FeatureConfig(text=not getattr(args, "no_text", False)),
        model=ModelConfig(**model_kw),
        train=TrainConfig(**train_kw),
    )


def load_recommender(args: argparse.Namespace, *, progress: bool = True) -> Any:
    """Train or load the model the arguments name (cached)."""
    from engine.pipeline import train_or_load

    return train_or_load(
        config_from_args(args),
        force=getattr(args, "force", False),
        progress=progress and sys.stderr.isatty(),
        cache_dir=Path(args.cache_dir),
    )


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)
