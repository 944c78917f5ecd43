"""Data-parallel training from the command line: ``torchrun ... -m engine.commands.ddp``.

Every rank loads the same data and builds the same model; the epoch loop is
:func:`engine.training.minibatch.fit_minibatch` with ``distributed=True`` (see
:mod:`engine.training.distributed`). For the default ``gat`` that loop is its taste stage (the
LightGCN part); its closed-form stages (the item-item relation, the interaction weights, the
taste weight) then run once, on rank 0 (:func:`engine.training.staged.fit_staged`). Rank 0
validates, then evaluates and saves the artifact to the same cache ``gatlens train`` reads. By
default each rank samples the neighbourhood of its own share (``--fanout 15,10``), which is
where the speed-up comes from; ``--fanout full`` runs the full graph on every rank.

One machine, N GPUs (or N CPU processes)::

    torchrun --nproc_per_node N -m engine.commands.ddp --dataset ml-1m --epochs 100

Several machines (run on each, with its own ``--node_rank``; HOST is node 0's address)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        -m engine.commands.ddp --dataset ml-1m --data-dir /data/ml-1m

Every node needs the dataset and the package; the artifact is written on node 0 only. From
Python (tests, notebooks), :func:`spawn` starts local processes without torchrun.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

from engine.artifacts.store import ArtifactStore
from engine.assembly import DEFAULT_CACHE, Prepared, config_fingerprint, make_model, model_card, prepare
from engine.commands.common import add_data_args, add_model_args, config_from_args
from engine.config import RunConfig
from engine.evaluation.ranking import evaluate
from engine.evaluation.validation import valid_fn_for
from engine.models.base import EmbeddingModel
from engine.models.registry import model_names, model_spec
from engine.training.device import resolve_device, seed_everything
from engine.training.distributed import init_process_group, rank_device_config
from engine.training.minibatch import fit_minibatch
from engine.training.result import TrainResult

log = logging.getLogger(__name__)


def parse_fanout(text: str) -> tuple[int, ...] | None:
    """``"15,10"`` -> ``(15, 10)``; ``"full"`` -> None (full graph on every rank)."""
    if text.strip().lower() == "full":
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"fanout must be comma-separated integers or 'full' (got {text!r})") from None
    if not values or any(v == 0 or v < -1 for v in values):
        raise ValueError(f"fanout entries must be positive or -1 (got {text!r})")
    return values


def run_training(
    config: RunConfig,
    *,
    fanout: Sequence[int] | None = (15, 10),
    cache_dir: Path = DEFAULT_CACHE,
    save: bool = True,
    distributed: bool = True,
) -> dict[str, Any] | None:
    """Prepare, train, and on rank 0 evaluate and save; the body every rank runs.

    Args:
        config: the run configuration (the same on every rank).
        fanout: per-hop neighbour sampling, or None for the full graph (default: ``(15, 10)``).
        cache_dir: feature and artifact cache (default: ``data/cache``).
        save: write the artifact on rank 0 (default: True).
        distributed: inside an initialised process group (default: True); False runs
            the same code in one process, the reference for the multi-process result.

    Returns:
        On rank 0 a summary (``world_size``, ``backend``, ``best_valid``, ``valid`` and
        ``test`` metrics, ``artifact``, ...); None on the other ranks.
    """
    spec = model_spec(config.model.name)
    if not spec.capabilities.minibatch:
        able = ", ".join(n for n in model_names() if model_spec(n).capabilities.minibatch)
        raise ValueError(
            f"data-parallel training samples mini-batches, which {spec.name!r} does not (models that do: {able}); "
            "use gatlens train"
        )
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    # Rank 0 first: it may write the text-feature cache, which the others then only read.
    if rank == 0:
        prep = prepare(config, cache_dir=cache_dir)
    if distributed:
        dist.barrier()
    if rank != 0:
        prep = prepare(config, cache_dir=cache_dir)
    seed_everything(config.train.seed)  # identical initial weights on every rank
    model = make_model(prep)
    if not isinstance(model, EmbeddingModel):
        raise ValueError(f"distributed training needs a trained model, not {config.model.name!r}")
    graph = prep.graph.to(resolve_device(config.train.device))  # rank 0 validates where it trains
    valid_fn = valid_fn_for(model, prep.split, graph, mode="minibatch") if rank == 0 else None

    def bpr(m: EmbeddingModel) -> TrainResult:
        return fit_minibatch(
            m, graph, prep.split, config.train, fanout=fanout, distributed=distributed, valid_fn=valid_fn
        )

    if spec.fit is None:
        result = bpr(model)
    else:
        # A staged recipe (gat): its BPR stage runs data-parallel on every rank; its closed-form
        # stages (relation, weights, taste weight) then run once, on rank 0, which validates.
        result = spec.fit(model, graph, prep.split, config, valid_fn=valid_fn, taste_fit=bpr, main=rank == 0)
    summary = None
    if rank == 0:
        summary = _evaluate_and_save(prep, model, result, fanout=fanout, world=world, cache_dir=cache_dir, save=save)
    if distributed:
        dist.barrier()
    return summary


def _evaluate_and_save(
    prep: Prepared,
    model: EmbeddingModel,
    result: TrainResult,
    *,
    fanout: Sequence[int] | None,
    world: int,
    cache_dir: Path,
    save: bool,
) -> dict[str, Any]:
    """Rank 0's evaluation, model card, artifact and summary."""
    model.cpu()
    model.set_cached_embeddings(*(t.cpu() for t in model.cached_embeddings().values()))
    valid = evaluate(model, prep.split, "valid").overall
    test = evaluate(model, prep.split, "test").overall
    meta = model_card(prep, model, result, test, valid)
    backend = dist.get_backend() if dist.is_initialized() else None
    fanout_list = None if fanout is None else list(fanout)
    meta["training"]["distributed"] = {"world_size": world, "backend": backend, "fanout": fanout_list}
    ref = None
    if save:
        ref = ArtifactStore(cache_dir / "models").save(
            prep.dataset.name,
            config_fingerprint(prep),
            tensors={"model": model.state_dict(), "embeddings": model.cached_embeddings()},
            json_files={"config": prep.config.to_dict(), "idmap": prep.split.idmap.to_json(), "curve": result.curve},
            meta=meta,
        )
    return {
        "world_size": world,
        "backend": backend,
        "device": result.device,
        "fanout": fanout_list,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "seconds": round(result.seconds, 3),
        "valid": valid,
        "test": test,
        "artifact": str(ref.path) if ref else None,
        "curve": result.curve,
    }


def _spawn_entry(
    rank: int,
    world_size: int,
    config: dict[str, Any],
    fanout: list[int] | None,
    cache_dir: str,
    save: bool,
    init_method: str,
    out: str,
    backend: str | None,
) -> None:
    init_process_group(backend, init_method, rank, world_size)
    try:
        summary = run_training(
            rank_device_config(RunConfig.from_dict(config)), fanout=fanout, cache_dir=Path(cache_dir), save=save
        )
        if summary is not None:
            Path(out).write_text(json.dumps(summary))
    finally:
        dist.destroy_process_group()


def spawn(
    config: RunConfig,
    world_size: int,
    *,
    fanout: Sequence[int] | None = (15, 10),
    cache_dir: Path = DEFAULT_CACHE,
    save: bool = False,
    backend: str | None = None,
) -> dict[str, Any]:
    """Train with ``world_size`` local processes (``torch.multiprocessing``), no torchrun needed.

    Args:
        config: the run configuration.
        world_size: number of processes.
        fanout: per-hop neighbour sampling, or None for the full graph (default: ``(15, 10)``).
        cache_dir: feature and artifact cache (default: ``data/cache``).
        save: write the artifact from rank 0 (default: False).
        backend: ``"gloo"`` or ``"nccl"`` (default: nccl with CUDA, else gloo).

    Returns:
        Rank 0's summary (see :func:`run_training`).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1 (got {world_size!r})")
    with tempfile.TemporaryDirectory(prefix="gatlens-ddp-") as tmp:
        out = Path(tmp) / "summary.json"
        init_method = f"file://{Path(tmp) / 'rendezvous'}"
        fanout_list = None if fanout is None else list(fanout)
        args = (world_size, config.to_dict(), fanout_list, str(cache_dir), save, init_method, str(out), backend)
        mp.spawn(_spawn_entry, args=args, nprocs=world_size, join=True)
        return json.loads(out.read_text())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.commands.ddp",
        description="Data-parallel training; launch with torchrun --nproc_per_node N -m engine.commands.ddp",
    )
    add_data_args(p)
    add_model_args(p)
    p.add_argument(
        "--fanout",
        default="15,10",
        help="neighbours sampled per node per hop, or 'full' for the full graph on every rank (default: 15,10)",
    )
    p.add_argument("--backend", default=None, choices=("gloo", "nccl"), help="default: nccl on CUDA, else gloo")
    p.add_argument("--no-save", action="store_true", help="do not write the artifact")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def main(argv: list[str] | None = None) -> int:
    """torchrun entry point: every rank runs this; rank 0 prints the summary as JSON."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if "RANK" not in os.environ:
        print("error: launch with torchrun (RANK is not set); see the module docstring", file=sys.stderr)
        return 2
    init_process_group(args.backend)
    try:
        summary = run_training(
            rank_device_config(config_from_args(args)),
            fanout=parse_fanout(args.fanout),
            cache_dir=Path(args.cache_dir),
            save=not args.no_save,
        )
    finally:
        dist.destroy_process_group()
    if summary is not None:
        summary = {k: v for k, v in summary.items() if k != "curve"}
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
