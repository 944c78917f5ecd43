"""``gatlens update``: fold new interactions into a stored model and save a new version.

The user names the dataset and the model; the options the model was trained with (split, attention,
item-item width, training mode, ...) are read from the stored version's ``config.json``. An option
given explicitly must match it: it picks among several stored models, and one that matches none is
rejected with a message naming the difference.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.commands.common import RegistryChoices, add_csv_args, config_from_args, echo, emit_json
from engine.config import ATTENTIONS, SPLITS, RunConfig

if TYPE_CHECKING:  # the service imports torch: `gatlens --help` stays fast without it
    from engine.service import StoredModel

# Options that shape the stored model: argparse dest -> (flag, the trained value in a stored config).
# Each defaults to None, "not given": the stored value is used; a given value must match it.
SHAPING: dict[str, tuple[str, Callable[[RunConfig], Any]]] = {
    "seed": ("--seed", lambda c: c.data.seed),
    "scale": ("--scale", lambda c: c.data.scale),
    "split": ("--split", lambda c: c.data.split),
    "columns": ("--columns", lambda c: c.data.columns),
    "encoding": ("--encoding", lambda c: c.data.encoding),
    "duplicates": ("--duplicates", lambda c: c.data.duplicates),
    "unknown_items": ("--unknown-items", lambda c: c.data.unknown_items),
    "attention": ("--attention", lambda c: c.model.attention),
    "layers": ("--layers", lambda c: c.model.num_layers),
    "item_item_dim": ("--item-item-dim", lambda c: c.model.item_item_dim),
    "no_text": ("--no-text", lambda c: True if not c.features.text else None),
    "train_epochs": ("--train-epochs", lambda c: c.train.epochs),
    "mode": ("--mode", lambda c: c.train.mode),
}
_STORED = "(default: the stored model's)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "update",
        help="add new interactions to a trained model (warm start, a few epochs, new version)",
        description="Validate new interactions (a bad file is rejected whole and nothing is written), append "
        "them, warm-start the newest stored model of the dataset for a few epochs and save a new artifact version "
        "whose manifest names its parent. The options the model was trained with are read from its stored "
        "config; any given here must match it. New users and items get embeddings (new items through their "
        "text features).",
    )
    p.add_argument(
        "--dataset",
        default="demo",
        help="the dataset the model was trained on: demo, ml-100k, ..., csv (with --data-dir) or a csv "
        "dataset's stored name (default: demo)",
    )
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the stored model's)")
    p.add_argument("--cache-dir", default="data/cache", help="artifact and feature cache (default: data/cache)")
    p.add_argument(
        "--model",
        default="gat",
        choices=RegistryChoices("models"),
        metavar="MODEL",
        help="the stored model to update (default: gat)",
    )
    p.add_argument(
        "--artifact",
        default=None,
        metavar="KEY",
        help="the stored model to update: its key DATASET/FINGERPRINT[:16]/vN or the version's folder (the "
        "artifact `gatlens train` prints); its newest version is updated (default: the newest stored model of "
        "--dataset and --model)",
    )
    add_csv_args(p)  # --columns, --encoding, --name, --duplicates, --unknown-items: as for train
    # None: the stored model's (an explicit value must match it)
    p.set_defaults(encoding=None, duplicates=None, unknown_items=None)
    p.add_argument("--seed", type=int, default=None, help=f"split seed the model was trained with {_STORED}")
    p.add_argument("--scale", type=float, default=None, help=f"demo world size multiplier {_STORED}")
    p.add_argument("--split", default=None, choices=SPLITS, help=f"as for train {_STORED}")
    p.add_argument("--attention", default=None, choices=ATTENTIONS, help=f"as for train {_STORED}")
    p.add_argument("--layers", type=int, default=None, help=f"as for train {_STORED}")
    p.add_argument("--item-item-dim", type=int, default=None, help=f"as for train {_STORED}")
    p.add_argument("--no-text", action="store_const", const=True, default=None, help="as for train")
    p.add_argument("--train-epochs", type=int, default=None, help=f"--epochs the model was trained with {_STORED}")
    p.add_argument(
        "--mode",
        default=None,
        choices=("auto", "full", "minibatch"),
        help=f"as for train; the warm start trains the same way {_STORED}",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--new",
        required=True,
        help="CSV of new interactions: user_id,item_id[,rating|count][,timestamp] (rating or count required "
        "when the dataset has them)",
    )
    p.add_argument("--items", default=None, help="CSV of new catalog items: item_id,title[,categories][,text]")
    p.add_argument("--epochs", type=int, default=5, help="warm-start training epochs (default: 5)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's)")
    p.add_argument("-k", type=int, default=10, help="list length for 'what changed' (default: 10)")
    p.add_argument("--json", action="store_true", help="print the update summary as JSON")
    p.set_defaults(func=run_update)


def update_config(args: argparse.Namespace) -> RunConfig:
    """The configuration the given options describe, defaults for the rest (as ``gatlens train`` builds it)."""
    filled = {"seed": 0, "scale": 1.0, "split": "random", "encoding": "utf-8", "no_text": False, "mode": "auto"}
    filled |= {"duplicates": "error", "unknown_items": "error"}
    values = {k: filled[k] if v is None and k in filled else v for k, v in vars(args).items()}
    return config_from_args(argparse.Namespace(**(values | {"epochs": args.train_epochs})))


def mismatches(args: argparse.Namespace, stored: StoredModel) -> list[str]:
    """The explicitly given options that differ from what ``stored`` was trained with."""
    out = []
    for dest, (flag, trained) in SHAPING.items():
        given, was = getattr(args, dest, None), trained(stored.config)
        if given is not None and given != was:
            shown = "without --no-text" if dest == "no_text" else f"{flag} {was}"
            out.append(f"{flag}{'' if dest == 'no_text' else f' {given}'} (it was trained {shown})")
    stored_dir = stored.config.data.data_dir
    if args.data_dir is not None and stored_dir is not None and not _same_dir(args.data_dir, stored_dir):
        out.append(f"--data-dir {args.data_dir} (it was trained on {stored_dir})")
    return out


def _same_dir(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def find_stored(args: argparse.Namespace) -> StoredModel:
    """The stored model to update: ``--artifact``, else the newest of the dataset and model matching the options.

    Raises:
        ValueError: none is stored, or the explicit options match none (the message names the difference).
    """
    from engine import service

    name = service.stored_dataset_name(args.dataset, args.data_dir, args.name)
    found = service.stored_models(name, args.model, cache_dir=args.cache_dir)
    if args.artifact is not None:
        found = [s for s in found if args.artifact in (s.key, s.fingerprint) or _same_dir(s.path, args.artifact)]
        if not found:
            raise ValueError(f"no stored {args.model} model {args.artifact!r} in {args.cache_dir}")
    if not found:
        others = sorted({s.model or "?" for s in service.stored_models(name, cache_dir=args.cache_dir)})
        stored = f" (stored for {name!r}: {', '.join(others)})" if others else ""
        hint = f"--dataset csv --data-dir {args.data_dir or 'DIR'}" if args.dataset == "csv" else f"--dataset {name}"
        raise ValueError(
            f"no trained {args.model} model for dataset {name!r} in {args.cache_dir}{stored}; "
            f"train one first: gatlens train {hint} --model {args.model} ..."
        )
    for candidate in found:
        if not mismatches(args, candidate):
            return candidate
    newest = found[0]
    raise ValueError(
        f"the stored {args.model} model of {name!r} ({newest.key}) does not match "
        f"{'; '.join(mismatches(args, newest))}: leave the option out to update it"
        + ("" if args.artifact else ", or pick another stored model with --artifact")
    )


def run_update(args: argparse.Namespace) -> int:
    from engine import service

    stored = find_stored(args)
    config = stored.config.with_overrides(train={"device": args.device})
    rec = service.load_model(config, fingerprint=stored.fingerprint, cache_dir=args.cache_dir)
    if rec is None:
        raise ValueError(f"the stored model {stored.key} is missing or damaged; train it again with gatlens train")
    new = service.update(
        rec,
        Path(args.new),
        new_items=Path(args.items) if args.items else None,
        epochs=args.epochs,
        lr=args.lr,
        mode=config.train.mode,
        k=args.k,
        cache_dir=Path(args.cache_dir),
    )
    summary = dict(new.meta["update"])
    summary.update(dataset=new.dataset_name, artifact=new.artifact_path, version=new.version, metrics=new.metrics)
    if args.json:
        emit_json(summary)
        return 0
    echo(
        f"updated {new.model_name} on {new.dataset_name}: +{summary['rows']} interactions "
        f"({summary['positives']} positive), +{summary['new_users']} users, +{summary['new_items']} items "
        f"in {summary['seconds']:.2f}s ({summary['epochs']} epochs)"
    )
    print(f"  artifact      {summary['artifact']} (v{summary['version']}, parent {summary['parent']})")
    before, after = summary["valid_ndcg@10_before"], summary["valid_ndcg@10_after"]
    print(f"  valid ndcg@10 {_fmt(before)} -> {_fmt(after)}   test ndcg@10 {_fmt(new.metrics.get('test_ndcg@10'))}")
    print(f"  top-{summary['k']} lists changed for {summary['users_changed']} users; most changed:")
    for row in summary["what_changed"][:5]:
        echo(
            f"    {row['user_id']}: {row['changed']} of {summary['k']} items replaced "
            f"({row['new_interactions']} new interactions)"
        )
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
