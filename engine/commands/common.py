"""Options and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import (
    ATTENTIONS,
    DUPLICATES,
    SPLITS,
    UNKNOWN_ITEMS,
    DataConfig,
    FeatureConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)

if TYPE_CHECKING:  # the service imports torch: `gatlens --help` stays fast without it
    from engine.service import ServedModel


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
    p.add_argument(
        "--split",
        default="random",
        choices=SPLITS,
        help="train/valid/test split: random 8:1:1 per user (needs 10 positives per user for valid/test), "
        "temporal, global_time, or leave_one_out for small data (default: random)",
    )
    p.add_argument(
        "--threshold",
        type=threshold_arg,
        default=3.0,
        metavar="R|none",
        help="explicit ratings >= R are the positives; 'none' keeps every interaction, e.g. on a scale where "
        "low ratings still mean interest; a csv 'count' column (plays, clicks) has no threshold "
        "(default: 3, RecBole's protocol for 5-star ratings)",
    )
    add_csv_args(p)


def threshold_arg(text: str) -> float | None:
    """``--threshold``: a finite number, or ``none`` (every interaction is a positive)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none' (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number or 'none' (got {text!r})")
    return value


def add_csv_args(p: argparse.ArgumentParser) -> None:
    """The options of the csv dataset: column mapping, encoding and the stored name."""
    p.add_argument(
        "--columns",
        default=None,
        help="csv only: column mapping FILE_COL=CANONICAL,... e.g. uid=user_id,movie=item_id,plays=count "
        "(count: plays or clicks, each row a positive weighted by log(1 + count))",
    )
    p.add_argument("--encoding", default="utf-8", help="csv only: encoding of the files (default: utf-8)")
    p.add_argument(
        "--name",
        default=None,
        help="csv only: the dataset's name in messages and the model cache (default: the folder's name)",
    )
    p.add_argument(
        "--duplicates",
        default="error",
        choices=DUPLICATES,
        help="csv only: rows that repeat an earlier row's user, item and timestamp: 'error' names each one "
        "and loads nothing, 'drop' keeps the first of each and says how many it dropped (default: error)",
    )
    p.add_argument(
        "--unknown-items",
        default="error",
        choices=UNKNOWN_ITEMS,
        help="csv only: items of interactions.csv that items.csv does not list: 'error' names each one, 'add' "
        "adds them titled by their id (and loads a folder without items.csv) (default: error)",
    )


def data_config_from_args(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` the data options name (csv options only when given)."""
    return DataConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        scale=args.scale,
        split=getattr(args, "split", "random"),
        threshold=getattr(args, "threshold", 3.0),
        columns=getattr(args, "columns", None),
        encoding=getattr(args, "encoding", "utf-8"),
        name=getattr(args, "name", None),
        duplicates=getattr(args, "duplicates", "error"),
        unknown_items=getattr(args, "unknown_items", "error"),
    )


class RegistryChoices:
    """argparse ``choices`` read from an engine registry when an argument is checked.

    The registries hold the models (torch): reading them only when a value is checked keeps
    ``gatlens --help`` fast. Give the argument a ``metavar`` so that help never lists them.

    Args:
        registry: ``"models"`` (:func:`engine.service.model_names`) or ``"methods"``
            (:func:`engine.service.explain_methods`).
    """

    def __init__(self, registry: str) -> None:
        if registry not in ("models", "methods"):
            raise ValueError(f"registry must be 'models' or 'methods' (got {registry!r})")
        self.registry = registry

    def names(self) -> tuple[str, ...]:
        from engine import service  # lazy: torch loads only once a value is checked

        return service.model_names() if self.registry == "models" else service.explain_methods()

    def __contains__(self, value: object) -> bool:
        return value in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="gat",
        choices=RegistryChoices("models"),
        metavar="MODEL",
        help="a registered model to train or load, e.g. gat, lightgcn, ease (default: gat)",
    )
    p.add_argument("--attention", default=None, choices=ATTENTIONS, help="uigat's attention form (default: edge)")
    p.add_argument("--layers", type=int, default=None, help="propagation layers of the graph models (default: 2)")
    p.add_argument(
        "--item-item-dim",
        type=int,
        default=None,
        help="width of uigat's item-item context vectors, 0 turns the term off (default: 0)",
    )
    p.add_argument(
        "--sources",
        type=int,
        default=None,
        metavar="K",
        help="gat: past items an item's relation score may rest on, its K most similar, refitted; 0: all "
        "(default: chosen on validation among all, 128, 64, 32 and 16: the fewest within one standard "
        "error of the best)",
    )
    p.add_argument(
        "--lowpass",
        type=int,
        default=None,
        metavar="R",
        help="gat: rank of the relation's low-pass part (the catalog's broad tastes, GF-CF's ideal low-pass "
        "filter); 0 turns it off for the shortest explanations (default: rank and weight chosen on validation)",
    )
    p.add_argument("--no-text", action="store_true", help="train without language-model item features")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: 300, early stopping)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "full", "minibatch"),
        help="full-batch or neighbour-sampled mini-batch training (default: auto: mini-batch for uigat, gcn and "
        "sage above 1M directed edges, else full). gat, lightgcn and bprmf train full-graph under auto; "
        "minibatch samples gat's taste part (its item-item relation is closed-form either way)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a tuned configuration (gatlens tune writes data/tuning/<dataset>-<model>.best.json) for --model; "
        "flags given explicitly win over it (default: none)",
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    model_kw: dict[str, Any] = {"name": getattr(args, "model", "gat")}
    tuned = _tuned_overrides(getattr(args, "config", None), model_kw["name"])
    if getattr(args, "attention", None):
        model_kw["attention"] = args.attention
    if getattr(args, "layers", None) is not None:
        model_kw["num_layers"] = args.layers
    if getattr(args, "item_item_dim", None) is not None:
        model_kw["item_item_dim"] = args.item_item_dim
    if getattr(args, "sources", None) is not None:
        if args.sources < 0:
            raise ValueError(f"--sources must be >= 0, 0 for all (got {args.sources})")
        model_kw["relation_sources"] = args.sources
    if getattr(args, "lowpass", None) is not None:
        if args.lowpass < 0:
            raise ValueError(f"--lowpass must be >= 0, 0 for off (got {args.lowpass})")
        model_kw["lowpass_rank"] = args.lowpass
    train_kw: dict[str, Any] = {
        "device": getattr(args, "device", "auto"),
        "seed": args.seed,
        "mode": getattr(args, "mode", "auto"),
    }
    if getattr(args, "epochs", None) is not None:  # 0 must reach TrainConfig's check, not mean "default"
        train_kw["epochs"] = args.epochs
    features_kw = {**tuned.get("features", {})}
    if getattr(args, "no_text", False):
        features_kw["text"] = False
    return RunConfig(
        data=data_config_from_args(args),
        features=FeatureConfig(**features_kw),
        # The tuned file fills what the flags leave unset; a flag given explicitly wins.
        model=ModelConfig(**{**tuned.get("model", {}), **model_kw}),
        train=TrainConfig(**{**tuned.get("train", {}), **train_kw}),
    )


def _tuned_overrides(path: str | None, model: str) -> dict[str, dict[str, Any]]:
    """The overrides of the tuned file ``path`` for ``model`` ({} without a file).

    Raises:
        ValueError: for a file tuned for another model (it would silently apply foreign knobs).
    """
    if not path:
        return {}
    from engine.tuning.best import load_tuned  # json only: no torch

    tuned = load_tuned(path)
    if tuned.model != model:
        raise ValueError(
            f"--config {path} was tuned for model {tuned.model!r}, not {model!r}: add --model {tuned.model}"
        )
    return tuned.overrides


def load_recommender(args: argparse.Namespace, *, progress: bool = True) -> ServedModel:
    """Train or load the model the arguments name (cached), served through :mod:`engine.service`."""
    from engine import service  # lazy: importing torch costs seconds that --help should not pay

    return service.train(
        config_from_args(args),
        force=getattr(args, "force", False),
        # On by default, on stderr (a bar on a terminal, a line per evaluation in a log); -q silences it.
        progress=progress and not getattr(args, "quiet", False),
        cache_dir=Path(args.cache_dir),
    )


# ANSI escape sequences, C0/C1 control characters except newline and tab, and the
# bidirectional overrides that make text read differently from what it is.
_TERMINAL_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without terminal control characters, for printing data strings.

    Titles, ids and categories come from data files; printed raw, an escape sequence
    in a title could recolour, retitle or clear the user's terminal. Every command
    that prints data strings as text passes them through here (JSON output escapes
    control characters itself).
    """
    return _TERMINAL_CONTROL.sub("", text)


def echo(text: str) -> None:
    """Print ``text`` (which may hold data strings) made :func:`terminal_safe`."""
    print(terminal_safe(text))


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
