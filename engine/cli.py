"""The ``gatlens`` command: parses arguments and calls the engine; nothing runs at import time."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

_PERMISSION_FIX = "make it readable (or writable) for this user or choose a folder you own"
QUIET_HELP = "no progress output (training progress is shown on stderr by default)"
# Subcommand modules under engine.commands; each adds its parser and a ``func``.
COMMANDS = ("data", "train", "benchmark", "tune", "explain", "audit", "import_recs", "update", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatlens",
        description="GATLens: an explainable graph-attention recommender. "
        "Typical use: gatlens train --dataset ml-100k --data-dir PATH; gatlens recommend --user 42 ...",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and list every data problem")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"engine.commands.{name}")
        except ModuleNotFoundError as exc:  # a subcommand still being written is simply absent
            if exc.name != f"engine.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    for command in set(sub.choices.values()):
        # Also after the command (`gatlens train -q`); SUPPRESS keeps a `gatlens -q train` from being reset.
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from engine.errors import DataValidationError, UnknownItemError, UnknownUserError

    try:
        return int(args.func(args) or 0)
    except DataValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.verbose:
            for problem in exc.problems[1:]:
                print(f"error: {problem}", file=sys.stderr)
        return 2
    except (UnknownUserError, UnknownItemError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:  # e.g. a cache or output folder this user may not write
        if args.verbose:
            raise
        print(f"error: {exc.filename or exc}: permission denied; {_PERMISSION_FIX}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
