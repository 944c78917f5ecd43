"""GPU check: training speed, peak GPU memory and speed-up over CPU, measured in one run.

On a CUDA machine (``scripts/gpu_check.sh`` wraps this)::

    python scripts/gpu_check.py                      # ~100k and ~1M interactions, CUDA and CPU
    python scripts/gpu_check.py --json gpu.json      # also write the figures

For each size (a demo world of ~100k interactions, ml-100k-sized, and ``--large-scale 13``,
~1M interactions) and each training mode (full graph every step; neighbour-sampled
mini-batches) it trains the graph recommender with the engine's loop
(:func:`engine.training.minibatch.fit_minibatch`: bf16 autocast, pinned-memory copies, no
host sync for bookkeeping) and prints seconds per epoch, ``torch.cuda.max_memory_allocated``
and the speed-up over the same configuration on the CPU. CPU runs are bounded: they time
``--cpu-steps`` steps and scale to a full epoch (the step count per epoch is exact). The
first epoch of every run is a warm-up and is not timed. It also counts host synchronisations
per training step with ``torch.cuda.set_sync_debug_mode`` and names where they happen.

``--cpu-smoke`` runs a tiny world on the CPU only, in seconds, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from engine.assembly import Prepared, make_model, prepare
from engine.config import RunConfig, TrainConfig
from engine.training.minibatch import fit_minibatch

FANOUT = (15, 10)


def _no_validation(model: Any) -> float:
    return 0.0  # timing runs: validation is not what is measured


def _pairs(prep: Prepared, steps: int | None, batch_size: int) -> torch.Tensor:
    pairs = torch.as_tensor(prep.split.train[["u", "i"]].to_numpy(), dtype=torch.long)
    if steps is None:
        return pairs
    pick = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))[: steps * batch_size]
    return pairs[pick]


def time_training(
    prep: Prepared, device: str, fanout: tuple[int, ...] | None, *, epochs: int, steps: int | None, amp: bool
) -> dict[str, Any]:
    """Seconds per full epoch (extrapolated from ``steps`` steps when given) and peak GPU memory."""
    cfg = TrainConfig(device=device, epochs=epochs, eval_every=epochs, patience=epochs, amp=amp)
    total_steps = -(-len(prep.split.train) // cfg.batch_size)
    pairs = _pairs(prep, steps, cfg.batch_size)
    torch.manual_seed(0)
    model = make_model(prep)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = fit_minibatch(model, prep.graph, prep.split, cfg, fanout=fanout, pairs=pairs, valid_fn=_no_validation)
    timed = [c["train_seconds"] for c in result.curve[1:]] or [result.curve[0]["train_seconds"]]
    per_run = sum(timed) / len(timed)
    steps_run = -(-len(pairs) // cfg.batch_size)
    out = {
        "device": device,
        "mode": "full" if fanout is None else f"minibatch {list(fanout)}",
        "amp_bf16": amp and cuda,
        "steps_timed": steps_run,
        "steps_per_epoch": total_steps,
        "seconds_per_epoch": per_run * total_steps / steps_run,
        "loss_last_epoch": result.curve[-1]["loss"],
    }
    if fanout is not None:
        out["edges_per_step"] = result.curve[-1]["edges_per_step"]
    if cuda:
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del model
    return out


def count_syncs(prep: Prepared, fanout: tuple[int, ...] | None, steps: int = 4) -> dict[str, Any]:
    """Host synchronisations per training step: runs of ``steps`` and ``2*steps`` steps, differenced."""
    counts, where = [], Counter()
    for n in (steps, 2 * steps):
        cfg = TrainConfig(device="cuda", epochs=1, eval_every=1, patience=1, amp=True)
        pairs = _pairs(prep, n, cfg.batch_size)
        torch.manual_seed(0)
        model = make_model(prep)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fit_minibatch(model, prep.graph, prep.split, cfg, fanout=fanout, pairs=pairs, valid_fn=_no_validation)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        counts.append(len(syncs))
        if n == 2 * steps:
            where.update(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
    return {
        "syncs_per_step": (counts[1] - counts[0]) / steps,
        "top_sites": where.most_common(6),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    if not cuda and not args.cpu_smoke:
        raise SystemExit("no CUDA device: run on a GPU machine, or use --cpu-smoke to test the script")
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "runs": [],
    }
    sizes = [("smoke", 0.1)] if args.cpu_smoke else [("ml-100k-sized", args.small_scale), ("1M", args.large_scale)]
    for label, scale in sizes:
        # the mini-batch loop is the user-item attention model's (uigat); the default gat is timed after it
        cfg = RunConfig().with_overrides(model={"name": "uigat"}, data={"scale": scale}, features={"text": False})
        t0 = time.perf_counter()
        prep = prepare(cfg, cache_dir=Path(args.cache_dir))
        info = {
            "size": label,
            "scale": scale,
            "interactions": len(prep.dataset.interactions),
            "directed_edges": prep.graph.num_edges,
            "prepare_seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"\n== {label}: {info['interactions']:,} interactions, {info['directed_edges']:,} directed edges")
        modes: list[tuple[int, ...] | None] = [None, FANOUT]
        for fanout in modes:
            pair: dict[str, Any] = {}
            devices = ["cuda", "cpu"] if cuda else ["cpu"]
            for device in devices:
                on_gpu = device == "cuda"
                steps = None if on_gpu else args.cpu_steps
                epochs = args.epochs if on_gpu else 2
                try:
                    out = time_training(
                        prep, device, fanout, epochs=epochs, steps=steps, amp=on_gpu and not args.no_amp
                    )
                except Exception as err:  # one failing configuration must not lose the other figures
                    out = {"device": device, "mode": "full" if fanout is None else f"minibatch {list(fanout)}"}
                    out["error"] = f"{type(err).__name__}: {err}"[:300]
                    if on_gpu and not args.no_amp:
                        try:  # say whether bf16 autocast was the problem
                            out = {
                                **time_training(prep, device, fanout, epochs=epochs, steps=steps, amp=False),
                                "amp_error": out["error"],
                            }
                        except Exception as err2:
                            out["fp32_error"] = f"{type(err2).__name__}: {err2}"[:300]
                pair[device] = {**info, **out}
                report["runs"].append(pair[device])
                _print(pair[device])
            if (
                "cuda" in pair
                and "cpu" in pair
                and "seconds_per_epoch" in pair["cuda"]
                and "seconds_per_epoch" in pair["cpu"]
            ):
                speedup = pair["cpu"]["seconds_per_epoch"] / pair["cuda"]["seconds_per_epoch"]
                pair["cuda"]["speedup_over_cpu"] = speedup
                print(f"   speed-up over CPU: {speedup:.1f}x")
        # gat on CUDA in both modes (its sampled taste stage is new there); on the CPU full-batch only
        # (the CPU mini-batch figures are in BENCHMARKS.md).
        gat_runs = ([("cuda", "full"), ("cuda", "minibatch")] if cuda else []) + [("cpu", "full")]
        if args.cpu_smoke:  # the smoke run checks every path of the script, the sampled one too
            gat_runs.append(("cpu", "minibatch"))
        for device, mode in gat_runs:
            try:
                out = time_default_gat(cfg, prep, device, mode=mode)
            except Exception as err:  # a failure is a finding, not the end of the report
                out = {"device": device, "model": "gat", "mode": mode, "error": f"{type(err).__name__}: {err}"[:300]}
            report["runs"].append({**info, **out})
            print(
                f"   gat  staged fit ({mode}) on {device}: {out.get('seconds', out.get('error'))}",
                out.get("peak_gpu_gb", ""),
            )
        if cuda and args.sync_check:
            for fanout in modes:
                try:
                    syncs = count_syncs(prep, fanout)
                except Exception as err:
                    syncs = {"error": f"{type(err).__name__}: {err}"[:300]}
                syncs["size"], syncs["mode"] = label, "full" if fanout is None else "minibatch"
                report.setdefault("syncs", []).append(syncs)
                print(
                    f"   host syncs per step ({syncs['mode']}): {syncs.get('syncs_per_step', syncs.get('error'))}"
                    f"  sites: {syncs.get('top_sites')}"
                )
        del prep
    return report


def time_default_gat(cfg: RunConfig, prep: Prepared, device: str, *, mode: str = "full") -> dict[str, Any]:
    """The default gat's staged fit on ``device`` (taste stage there, relation in closed form): seconds, peak memory.

    Args:
        mode: ``"full"`` or ``"minibatch"`` (the taste stage on sampled subgraphs) (default: ``"full"``).
    """
    from dataclasses import replace

    from engine.assembly import train_model

    gat = replace(prep, config=cfg.with_overrides(model={"name": "gat"}, train={"device": device, "mode": mode}))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    _, result = train_model(gat)
    seconds = round(time.perf_counter() - t0, 2)
    out = {"device": device, "model": "gat", "mode": mode, "seconds": seconds, "epochs": result.epochs}
    if device == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    out["valid_ndcg@10"] = round(float(result.best_valid), 4)
    return out


def _print(run: dict[str, Any]) -> None:
    if "error" in run and "seconds_per_epoch" not in run:
        print(f"   {run['device']:4s} {run['mode']:22s} FAILED {run['error']}")
        return
    mem = f"  peak GPU {run['peak_gpu_gb']:.2f} GB" if "peak_gpu_gb" in run else ""
    steps = (
        f"  ({run['steps_timed']} of {run['steps_per_epoch']} steps timed)"
        if run["steps_timed"] < run["steps_per_epoch"]
        else ""
    )
    amp = "  bf16" if run.get("amp_bf16") else ""
    print(f"   {run['device']:4s} {run['mode']:22s} {run['seconds_per_epoch']:8.2f} s/epoch{mem}{amp}{steps}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="GPU speed, memory and speed-up over CPU for the graph recommender")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny world, CPU only: checks the script in seconds")
    p.add_argument("--small-scale", type=float, default=1.35, help="demo scale of the ~100k run (default: 1.35)")
    p.add_argument("--large-scale", type=float, default=13.0, help="demo scale of the ~1M run (default: 13)")
    p.add_argument("--epochs", type=int, default=3, help="GPU epochs per run; the first is warm-up (default: 3)")
    p.add_argument("--cpu-steps", type=int, default=8, help="CPU steps timed per epoch (default: 8)")
    p.add_argument("--no-amp", action="store_true", help="fp32 on the GPU instead of bf16 autocast")
    p.add_argument("--no-sync-check", dest="sync_check", action="store_false", help="skip the host-sync count")
    p.add_argument("--cache-dir", default="data/cache", help="feature cache (default: data/cache)")
    p.add_argument("--json", default=None, help="also write the report to this JSON file")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
