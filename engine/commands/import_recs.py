"""``gatlens import-recs``: register another system's recommendation lists for a dataset."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from engine.commands.common import echo, emit_json
from engine.config import SPLITS, DataConfig, RunConfig, parse_columns


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-recs",
        help="register another system's top-K lists for a dataset (then audit them like a model)",
        description="Validate a lists file (columns user_id,item_id,rank[,score]; CSV or Parquet) against a "
        "dataset and store it under a label; `gatlens audit --model LABEL` and `--compare gat,LABEL,pop` then "
        "audit it like a model. A file with any problem is rejected whole (exit 2), each problem naming the "
        "file, line or row, column, value and what was expected.",
    )
    p.add_argument("--recs", required=True, help="the lists file: .csv, or .parquet / .pq")
    p.add_argument("--name", required=True, help="label of the lists, e.g. vendor-prod (not a model's name)")
    p.add_argument(
        "--columns",
        default=None,
        help="column mapping of the lists file FILE_COL=CANONICAL,... e.g. uid=user_id,pos=rank",
    )
    p.add_argument("--encoding", default="utf-8", help="encoding of a CSV lists file (default: utf-8)")
    p.add_argument("--json", action="store_true", help="print the stored card as JSON")
    _add_dataset_args(p)
    p.set_defaults(func=run_import_recs)


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    """The dataset the lists are for (``--columns``, ``--encoding`` and ``--name`` belong to the lists file here,
    so the csv dataset's own options are ``--data-columns``, ``--data-encoding`` and ``--data-name``)."""
    p.add_argument("--dataset", default="demo", help="demo, ml-100k, ml-latest-small, ml-1m or csv (default: demo)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (MovieLens layout or csv files)")
    p.add_argument("--seed", type=int, default=0, help="split seed; also the demo world's seed (default: 0)")
    p.add_argument("--scale", type=float, default=1.0, help="demo world size multiplier (default: 1.0)")
    p.add_argument("--split", default="random", choices=SPLITS, help="the split audits use (default: random)")
    p.add_argument("--cache-dir", default="data/cache", help="artifact cache (default: data/cache)")
    p.add_argument("--data-columns", default=None, help="csv dataset only: its column mapping, like --columns")
    p.add_argument("--data-encoding", default="utf-8", help="csv dataset only: its files' encoding")
    p.add_argument("--data-name", default=None, help="csv dataset only: its name (default: the folder's name)")


def import_config(args: argparse.Namespace) -> RunConfig:
    """The run configuration naming the dataset of ``gatlens import-recs``' arguments."""
    return RunConfig(
        data=DataConfig(
            dataset=args.dataset,
            data_dir=args.data_dir,
            seed=args.seed,
            scale=args.scale,
            split=args.split,
            columns=args.data_columns,
            encoding=args.data_encoding,
            name=args.data_name,
        )
    )


def _data_options(args: argparse.Namespace) -> list[str]:
    """The data options given, as ``gatlens audit`` spells them (for the hint printed after an import)."""
    out = ["--dataset", args.dataset]
    pairs = (("--data-dir", args.data_dir), ("--columns", args.data_columns), ("--name", args.data_name))
    out += [item for flag, value in pairs if value is not None for item in (flag, str(value))]
    if args.data_encoding != "utf-8":
        out += ["--encoding", args.data_encoding]
    defaults = (("--seed", args.seed, 0), ("--scale", args.scale, 1.0), ("--split", args.split, "random"))
    out += [item for flag, value, default in defaults if value != default for item in (flag, str(value))]
    if args.cache_dir != "data/cache":
        out += ["--cache-dir", args.cache_dir]
    return out


def run_import_recs(args: argparse.Namespace) -> int:
    from engine import service  # lazy: torch loads only when the command runs

    columns = parse_columns(args.columns)
    card = service.import_lists(
        import_config(args),
        Path(args.recs),
        args.name,
        columns=columns,
        encoding=args.encoding,
        cache_dir=Path(args.cache_dir),
    )
    if args.json:
        emit_json(card)
        return 0
    lists, metrics, src = card["lists"], card["metrics"], card["source"]
    scores = "scores from the file" if lists["scores"] == "file" else "no scores: rank-derived scores are used"
    echo(
        f"imported {card['label']!r} for {card['data']['dataset']} (v{card['version']}): {lists['users']:,} users x "
        f"{lists['length']} items from {src['file']} ({card['rows']:,} rows, sha256 {src['sha256'][:12]}…); {scores}"
    )
    if lists["users_without_history"]:
        echo(f"  left out {lists['users_without_history']:,} listed users with no training history in the split")
    covered = f"{metrics.get('test_users_covered', 0):,} of {metrics.get('test_users', 0):,}"
    ndcg = metrics.get("test_ndcg@10")
    echo(f"  covers {covered} test users" + (f"; test NDCG@10 {ndcg:.4f} on them" if ndcg is not None else ""))
    echo(f"  stored at {card['path']}")
    data = " ".join(shlex.quote(a) for a in _data_options(args))
    echo(f"  audit them: gatlens audit {data} --model {card['label']}")
    return 0
