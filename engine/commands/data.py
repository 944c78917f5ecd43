"""``gatlens data list`` and ``gatlens data summary``."""

from __future__ import annotations

import argparse

from engine.commands.common import add_csv_args, data_config_from_args, emit_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list datasets or summarise one", description="Inspect datasets.")
    dsub = p.add_subparsers(dest="data_command", required=True)
    lst = dsub.add_parser("list", help="datasets the engine can load")
    lst.add_argument("--json", action="store_true", help="print JSON")
    s = dsub.add_parser(
        "summary",
        help="counts, density, rating histogram and attributes of a dataset",
        description="Load and validate a dataset, then print its summary.",
    )
    s.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    s.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    s.add_argument("--seed", type=int, default=0, help="demo world seed (default: 0)")
    s.add_argument("--scale", type=float, default=1.0, help="demo world size multiplier (default: 1.0)")
    add_csv_args(s)
    s.add_argument("--json", action="store_true", help="print JSON (top-level users, items, interactions)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.data.registry import list_datasets, load_configured

    if args.data_command == "list":
        rows = list_datasets()
        if args.json:
            emit_json(rows)
        else:
            for r in rows:
                print(f"{r['name']:<16} {r['description']}")
        return 0
    ds = load_configured(data_config_from_args(args))
    summary = ds.summary()
    if args.json:
        emit_json(summary)
        return 0
    print(f"dataset        {summary['dataset']}")
    print(f"users          {summary['users']:,}")
    print(f"items          {summary['items']:,} ({summary['items_with_interactions']:,} with interactions)")
    print(f"interactions   {summary['interactions']:,}  (density {summary['density']:.4%})")
    if summary["counts"]:
        c = summary["count_range"]
        print(
            f"counts         {c[0]:g} to {c[1]:g}, median {c[2]:g} (every row a positive, weighted by log(1 + count))"
        )
    elif summary["rating_histogram"]:
        hist = ", ".join(f"{k}: {v:,}" for k, v in summary["rating_histogram"].items())
        print(f"ratings        {hist}")
    else:
        print("ratings        none (implicit feedback)")
    print(f"user attrs     {', '.join(summary['user_attributes']) or 'none'}")
    print(f"item attrs     {', '.join(summary['item_attributes']) or 'none'}")
    print(f"categories     {len(summary['categories'])}")
    return 0
