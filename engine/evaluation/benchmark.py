"""The benchmark runner: every model on identical splits, RecBole's protocol, one process per run.

Each (model, seed) trains in a fresh child process so that its peak RSS is its own
(``ru_maxrss`` is a process-wide high-water mark) and no state leaks between models.
Splits are identical across models for a seed because the split is a pure function
of (dataset, seed). Rows follow the JSON schema of ``gatlens benchmark --out``.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.config import RunConfig

log = logging.getLogger(__name__)

HEADLINE = ("recall@10", "ndcg@10", "mrr@10", "hit@10")


def run_one(config: RunConfig, cache_dir: Path = Path("data/cache")) -> dict[str, Any]:
    """Train and evaluate one model in this process; returns a benchmark row."""
    from engine.assembly import prepare, train_model
    from engine.evaluation.ranking import evaluate

    prep = prepare(config, cache_dir=cache_dir)
    t0 = time.perf_counter()
    model, result = train_model(prep)
    train_seconds = time.perf_counter() - t0
    test = evaluate(model, prep.split, "test").overall
    valid = evaluate(model, prep.split, "valid").overall
    return {
        "model": config.model.name,
        "dataset": config.data.dataset,
        "seed": config.train.seed,  # the run's seed: initial weights, and the split unless held
        "split_seed": config.data.seed,
        "test": test,
        "valid": valid,
        "train_seconds": round(train_seconds, 2),
        "seconds_per_epoch": round(result.seconds / result.epochs, 3) if result.epochs else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "device": result.device,
        "config": config.to_dict(),
        # what a staged fit chose in closed form (gat: ridge, sources, weights, taste weight)
        "fit_report": getattr(model, "fit_report", None),
    }


def run_benchmark(
    base: RunConfig,
    models: Sequence[str],
    seeds: Sequence[int],
    *,
    cache_dir: Path = Path("data/cache"),
    isolate: bool = True,
    on_row: Any = None,
    on_start: Any = None,
    tuned: Mapping[str, Mapping[str, dict[str, Any]]] | None = None,
    split_seed: int | None = None,
) -> list[dict[str, Any]]:
    """Run every (seed, model) pair; returns the rows in run order.

    Args:
        base: configuration shared by all runs (dataset, split, training settings).
        models: model names, e.g. ``("pop", "lightgcn", "gat")``.
        seeds: split and initialisation seeds (the same seed gives identical splits).
        cache_dir: feature cache (language-model embeddings are computed once).
        isolate: one child process per run for honest peak RSS (default: True). A child that
            fails (an error, or killed, e.g. out of memory) gives a row with ``failed`` (the
            reason) instead of metrics, and the other runs go on.
        on_row: called with each finished row (progress display).
        on_start: called as ``on_start(model, seed, number, total)`` before each run starts
            (``number`` counts from 1) (default: None).
        tuned: model name -> ``RunConfig.with_overrides`` sections from ``gatlens tune``, applied
            to that model's runs before the seed (default: none, every model at its defaults).
        split_seed: hold the split at this seed, so ``seeds`` vary only the initialisation (a
            published figure over several seeds of one split compares to this); None: each seed
            draws its own split too (default: None).
    """
    # A data error (a malformed file, too few interactions to split) is the same in every run:
    # it stops the benchmark here, once, with its message, instead of failing each run alike.
    check_data(base, sorted({seed if split_seed is None else split_seed for seed in seeds}))
    rows = []
    total = len(seeds) * len(models)
    for seed in seeds:
        for name in models:
            if on_start is not None:
                on_start(name, seed, len(rows) + 1, total)
            own = base.with_overrides(**(tuned or {}).get(name, {}))
            data_seed = seed if split_seed is None else split_seed
            cfg = own.with_overrides(data={"seed": data_seed}, model={"name": name}, train={"seed": seed})
            row = _run_isolated(cfg, cache_dir) if isolate else run_one(cfg, cache_dir)
            if "failed" in row:
                log.warning("benchmark run %s seed %d failed: %s", name, seed, row["failed"])
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def check_data(base: RunConfig, seeds: Sequence[int]) -> None:
    """Load and split the dataset for each data seed, so its errors surface before any run.

    Raises:
        DataValidationError: a file the user can fix (every problem listed).
        ValueError: data too small for the split, or options the dataset does not take.
    """
    from engine.assembly import load_data, split_data

    dataset = None
    for seed in seeds:
        cfg = base.with_overrides(data={"seed": seed})
        if dataset is None or cfg.data.dataset == "demo":  # only the demo world changes with the seed
            dataset = load_data(cfg)
        split_data(cfg, dataset)


def _run_isolated(cfg: RunConfig, cache_dir: Path) -> dict[str, Any]:
    payload = json.dumps({"config": cfg.to_dict(), "cache_dir": str(cache_dir)})
    proc = subprocess.run(
        [sys.executable, "-m", "engine.evaluation.benchmark"],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return failed_row(cfg, _failure_reason(proc.returncode, proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def failed_row(cfg: RunConfig, reason: str) -> dict[str, Any]:
    """The row of a run that did not finish: who, and why (no metrics)."""
    return {"model": cfg.model.name, "seed": cfg.train.seed, "failed": reason, "config": cfg.to_dict()}


def _failure_reason(returncode: int, stderr: str) -> str:
    """A child's last error line, or the signal that killed it."""
    if returncode < 0:
        why = " (the system's out-of-memory killer, most likely)" if returncode == -9 else ""
        return f"killed by signal {-returncode}{why}"
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line.split(":", 1)[0]]
    return (errors or lines or [f"exit status {returncode}"])[-1]


def summarize(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean and std over seeds per model: headline test metrics, epochs, seconds, peak RSS."""
    records = []
    for r in (r for r in rows if "failed" not in r):
        rec = {"model": r["model"], "seed": r["seed"], **{m: r["test"][m] for m in HEADLINE}}
        rec.update(epochs=r["epochs"], train_seconds=r["train_seconds"], peak_rss_mb=r["peak_rss_mb"])
        rec["seconds_per_epoch"] = r.get("seconds_per_epoch")
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    order = list(dict.fromkeys(df["model"]))
    agg = df.groupby("model", sort=False).agg(["mean", "std"]).drop(columns="seed", level=0)
    return agg.loc[order]


def format_table(summary: pd.DataFrame) -> str:
    """A plain-text table: mean ± std per metric (std over seeds)."""
    cols = [*HEADLINE, "epochs", "train_seconds", "seconds_per_epoch", "peak_rss_mb"]
    header = f"{'model':<10}" + "".join(f"{c:>19}" for c in cols)
    lines = [header, "-" * len(header)]
    for model, row in summary.iterrows():
        cells = []
        for c in cols:
            mean, std = row[(c, "mean")], row[(c, "std")]
            if mean is None or (isinstance(mean, float) and np.isnan(mean)):
                cells.append(f"{'-':>19}")
            elif c in HEADLINE:
                cells.append(f"{f'{mean:.4f} ± {0 if np.isnan(std) else std:.4f}':>19}")
            else:
                cells.append(f"{f'{mean:.1f} ± {0 if np.isnan(std) else std:.1f}':>19}")
        lines.append(f"{model:<10}" + "".join(cells))
    return "\n".join(lines)


def _child() -> None:
    import torch

    payload = json.loads(sys.stdin.read())
    torch.set_num_threads(torch.get_num_threads())
    row = run_one(RunConfig.from_dict(payload["config"]), Path(payload["cache_dir"]))
    sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    _child()
