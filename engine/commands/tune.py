"""``gatlens tune``: search each model's registered space with Optuna, then reuse the best with --config."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.commands.common import add_data_args, add_model_args, config_from_args, emit_json

if TYPE_CHECKING:  # the study module imports torch and Optuna: `gatlens --help` stays fast without them
    from engine.tuning.study import StudyResult

EPILOG = """\
examples:
  gatlens tune --dataset ml-100k --data-dir PATH --model bprmf --trials 20
  gatlens tune --dataset ml-100k --data-dir PATH --models pop,itemknn,ease,bprmf,lightgcn --trials 20
  gatlens benchmark --dataset ml-100k --data-dir PATH --tuned data/tuning --seeds 3

The study is stored in STUDY_DIR/<dataset>-<model>.db: run the same command again (or with a
larger --trials) and it resumes, running only the missing trials; a changed dataset, split,
seed or epoch budget starts a new study. The best configuration is written to
STUDY_DIR/<dataset>-<model>.best.json; `gatlens train --model M --config FILE` trains it and
`gatlens benchmark --config FILE` (or --tuned STUDY_DIR) compares it. Trials are judged by
validation NDCG@10 only; the test part is never looked at.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="tune a model's hyper-parameters with Optuna on validation NDCG@10 (resumable)",
        description="Tune a model's hyper-parameters: a seeded TPE search over the model's registered "
        "search space, objective validation NDCG@10 (full ranking), hopeless trials pruned, the study "
        "stored in SQLite so an interrupted or extended run resumes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_args(p)
    add_model_args(p)
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated models, each tuned with the same --trials budget (default: --model)",
    )
    p.add_argument("--trials", type=int, default=20, help="trials per model, resumed ones included (default: 20)")
    p.add_argument(
        "--timeout", type=float, default=None, help="seconds per model after which no new trial starts (default: none)"
    )
    p.add_argument("--study-dir", default="data/tuning", help="studies and best configurations (default: data/tuning)")
    p.add_argument(
        "--pruner",
        default="median",
        choices=("median", "none"),
        help="median: stop a trained model's trial once it is behind the median trial at the same epoch and "
        "has not improved for 3 evaluations, after the epochs early stopping would grant it; none: run every "
        "trial out (default: median)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def _models(args: argparse.Namespace) -> list[str]:
    if args.models is None:
        return [args.model]
    from engine import service  # lazy: the registry imports torch

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    known = service.model_names()
    bad = [m for m in names if m not in known]
    if bad or not names:
        raise ValueError(f"--models: unknown model(s) {bad or args.models!r}; expected from {', '.join(known)}")
    return names


def run(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1 (got {args.trials})")
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0 seconds (got {args.timeout:g})")
    import optuna

    from engine.assembly import load_data
    from engine.tuning.study import tune

    if not args.verbose:
        # Our own line per trial replaces Optuna's INFO log; its "trial failed" WARNING repeats the
        # error this command reports anyway (or a KeyboardInterrupt's traceback).
        optuna.logging.set_verbosity(optuna.logging.ERROR)
    models = _models(args)
    base = config_from_args(args)
    dataset = load_data(base)  # once for every model
    results = []
    for name in models:
        config = base.with_overrides(model={"name": name})
        try:
            result = tune(
                config,
                args.trials,
                study_dir=Path(args.study_dir),
                timeout=args.timeout,
                pruner=args.pruner,
                dataset=dataset,
                cache_dir=Path(args.cache_dir),
                progress=not getattr(args, "quiet", False),
            )
        except KeyboardInterrupt:
            print(
                f"interrupted while tuning {name}: its finished trials are stored in {args.study_dir}, the "
                "running one is discarded; run the same command again to resume",
                file=sys.stderr,
            )
            raise
        results.append(result)
        if not args.json:
            _print_result(result)
    if args.json:
        emit_json([_as_dict(r) for r in results])
    elif len(results) > 1:
        _print_table(results)
    return 0


def _as_dict(r: StudyResult) -> dict[str, Any]:
    d = asdict(r)
    return {**d, "storage": str(d["storage"]), "best_file": str(d["best_file"])}


def _print_result(r: StudyResult) -> None:
    from engine.tuning.study import reuse_commands

    gain = (
        "" if r.default_value is None else f" (defaults {r.default_value:.4f}, {r.best_value - r.default_value:+.4f})"
    )
    print(f"{r.model} on {r.dataset}: best valid NDCG@10 {r.best_value:.4f} at trial {r.best_trial}{gain}")
    print(f"  trials        {r.complete} complete, {r.pruned} pruned, {r.failed} failed ({r.ran} run now)")
    print(f"  study         {r.study_name} in {r.storage}")
    print(f"  best config   {r.best_file}")
    for what, line in reuse_commands(r.config, r.best_file).items():
        print(f"  {what:<13} {line}")
    sys.stdout.flush()


def _print_table(results: list[StudyResult]) -> None:
    print(f"\n{'model':<10}{'trials':>8}{'pruned':>8}{'defaults':>10}{'tuned':>9}  best configuration")
    for r in results:
        default = "-" if r.default_value is None else f"{r.default_value:.4f}"
        print(f"{r.model:<10}{r.complete + r.pruned:>8}{r.pruned:>8}{default:>10}{r.best_value:>9.4f}  {r.best_file}")
