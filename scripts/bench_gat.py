"""Print the default model's speed and memory figures: ``gat`` (ItemGAT), issue targets in brackets.

Parts (``--only``, comma-separated; default: all of them, in this order):

* ``train``: ml-100k, ``gat`` and ``lightgcn`` to early stop in the same run (same config, seed 0),
  each in its own child process (``engine.evaluation.benchmark``, as ``gatlens benchmark``): the
  training seconds of each and their ratio [gat <= 2x lightgcn], and each process's peak RSS.
* ``demo``: the default ``gat`` (``RunConfig()``) on the embedded demo world, trained from scratch
  in a child process into the work directory: the model's training seconds from its model card
  [<= 60 s on the 2-core CPU], apart from the total wall time with the data and the item text
  features (encoded from scratch unless ``--text-cache`` lends already-encoded ones).
* ``recommend``: ``ServedModel.recommend(user, 10)`` on the demo model for ``--users`` random known
  users after one warm-up call, median and p95 milliseconds [<= 5 ms].
* ``explain``: ``ServedModel.explain(user, top-1 item)`` with the default method (``exact`` for
  gat) and the service's default counterfactual, for ``--explain-users`` distinct users (so the
  service's memo never answers) after one warm-up explanation, median and p95 seconds
  [<= 0.5 s median]; on the demo model, and on ml-100k with ``--explain-dataset demo,ml-100k``.
* ``scale``: the ~1M-interaction demo world (``--scale-value``, default 13.4, the ``DataConfig.scale``
  that ``gatlens train --scale`` sets), gat trained in a child process as ``gatlens train``
  does (``train_or_load``, stored in the work directory): its peak RSS [<= 6 GB], wall seconds and
  data sizes. Expect many minutes; progress goes to stderr.
* ``itemitem``: the item-item relation of a synthetic ``--ii-items`` catalog (100,000 items:
  above ``relation_dense_max``, so no ``A x A`` matrix is built): a popularity-skewed random
  user x item matrix, then, in a child process, ``relation_buffers`` as ItemGAT calls it there:
  EASE refitted on ``--ii-sources`` sources per item (128, the largest form) from the sparse
  co-occurrence (``--ii-relation gfcf``: GF-CF's top ``--ii-neighbours``); the peak RSS of the
  call above the process's RSS before it, the returned buffers' bytes and the seconds [<= 2 GB],
  and the seconds of one more refit at another ridge (what each step of a ridge search costs).
  Also, unless ``--no-ii-scoring``, the scoring cache ItemGAT builds from those buffers
  (``_attended_relation``, in ``cache_embeddings``), and, unless ``--ii-lowpass 0``, the relation's
  low-pass factors at rank ``--ii-lowpass`` (256, the largest the fit tries), measured the same way.

Memory: each child reports ``getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water mark
since it started) and, for ``itemitem``, ``VmHWM`` of ``/proc/self/status`` after resetting it
(``echo 5 > /proc/self/clear_refs``, which resets ``ru_maxrss`` too) just before the measured
call, so data generation does not count; the JSON says which one each figure is. GB here means
GiB (2**30 bytes).

Run it on a quiet machine: the figures are wall-clock times, and ``uptime`` is recorded before
and after. Usage::

    .venv/bin/python scripts/bench_gat.py --data-dir ../shared/datasets/ml-100k --json bench_gat.json
    .venv/bin/python scripts/bench_gat.py --only demo,recommend,explain --demo-scale 0.1  # a smoke run
    .venv/bin/python scripts/bench_gat.py --only scale --scale-value 0.05
    .venv/bin/python scripts/bench_gat.py --only itemitem --ii-items 5000 --ii-users 10000 --ii-interactions 200000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from engine.config import RunConfig

PARTS = ("train", "demo", "recommend", "explain", "scale", "itemitem")
GIB = 2**30
TARGETS = {
    "train": "gat training seconds <= 2x lightgcn's",
    "demo": "training seconds <= 60",
    "recommend": "median <= 5 ms",
    "explain": "median <= 0.5 s",
    "scale": "peak RSS <= 6 GB",
    "itemitem": "peak RSS of the call above the RSS before it <= 2 GB",
}


# ------------------------------------------------------------------------------ measurement helpers
def status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def maxrss_gib() -> float:
    """``ru_maxrss`` of this process in GiB (Linux reports KiB): its peak RSS since it started."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def to_gib(kib: int | None) -> float | None:
    """KiB -> GiB rounded to 3 places (None stays None)."""
    return None if kib is None else round(kib / 2**20, 3)


def quantiles(values: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """Median, p95 and max of ``values`` times ``scale``."""
    a = np.asarray(values, dtype=np.float64) * scale
    return {
        "median": round(float(np.median(a)), digits),
        "p95": round(float(np.percentile(a, 95)), digits),
        "max": round(float(a.max()), digits),
    }


def uptime() -> str:
    """``uptime``'s line (load averages over 1, 5 and 15 minutes), or ``os.getloadavg`` without it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    """Where the figures come from: host, platform, CPU count, torch and its threads, load."""
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "uptime_before": uptime(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def say(text: str) -> None:
    """One progress line on stdout, flushed (the JSON summary comes last)."""
    print(text, flush=True)


# ------------------------------------------------------------------------------------ child processes
def run_child(part: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``part`` of this script in a fresh process: its peak RSS is its own.

    The child reads ``payload`` as JSON on stdin and writes its result as the last stdout line;
    its stderr (progress bars, logs) passes through.

    Raises:
        RuntimeError: the child failed.
    """
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", part],
        input=json.dumps(payload),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {part} child process failed (exit {proc.returncode}); its stderr is above")
    return json.loads(lines[-1])


def child_main(part: str) -> int:
    """Entry of a child process: payload on stdin, one JSON line on stdout."""
    payload = json.loads(sys.stdin.read())
    if payload.get("log"):
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="  [%(asctime)s %(name)s] %(message)s")
    result = CHILDREN[part](payload)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def text_files(cache_dir: Path) -> int:
    """Files in the text-feature cache of ``cache_dir`` (to tell an encoding from a cache hit)."""
    folder = cache_dir / "text"
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def child_train(payload: dict[str, Any]) -> dict[str, Any]:
    """Child: prepare the data (text features included), then train and store the model from scratch.

    ``train_or_load(force=True)`` is what ``gatlens train --force`` runs: training, the test and
    validation evaluation, and saving the artifact.
    """
    from engine.assembly import prepare
    from engine.pipeline import train_or_load

    cfg = RunConfig.from_dict(payload["config"])
    cache, progress = Path(payload["cache_dir"]), bool(payload.get("progress"))
    files_before = text_files(cache)
    t0 = time.perf_counter()
    prep = prepare(cfg, cache_dir=cache, progress=progress)
    t_prep = time.perf_counter() - t0
    sizes = {
        "n_users": prep.split.n_users,
        "n_items": prep.split.n_items,
        "n_interactions": len(prep.dataset.interactions),
        "train_pairs": len(prep.split.train),
    }
    text = "off" if prep.text.embeddings is None else "encoded" if text_files(cache) > files_before else "cached"
    sys.stderr.write(f"  prepared {sizes} in {t_prep:.1f} s (text features: {text})\n")
    dataset, rss_prepared = prep.dataset, status_kib("VmRSS")
    del prep
    gc.collect()
    t1 = time.perf_counter()
    rec = train_or_load(cfg, dataset=dataset, cache_dir=cache, force=True, progress=progress)
    t_train = time.perf_counter() - t1
    training = rec.meta["training"]
    return {
        **sizes,
        "text_features": text,
        "text_note": rec.meta["language_model"]["note"],
        "prepare_seconds": round(t_prep, 2),
        "train_or_load_seconds": round(t_train, 2),
        "total_wall_seconds": round(t_prep + t_train, 2),
        "training_seconds": training["seconds"],
        "epochs": training["epochs"],
        "best_epoch": training["best_epoch"],
        "relation": _relation_label(rec.model),
        "fit_report": _fit_summary(getattr(rec.model, "fit_report", {})),
        "valid_ndcg@10": _round(rec.meta["metrics"].get("valid_ndcg@10")),
        "test_ndcg@10": _round(rec.meta["metrics"].get("test_ndcg@10")),
        "rss_after_prepare_gib": to_gib(rss_prepared),
        "peak_rss_gib": round(maxrss_gib(), 3),
        "peak_rss_source": "ru_maxrss of the child process (whole run: data, text, training, evaluation, save)",
        "torch_threads": torch.get_num_threads(),
    }


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def _relation_label(model: Any) -> str:
    """Which form the relation took: dense EASE, EASE refitted on k sources per item, or GF-CF top-k."""
    if getattr(model, "dense", False):
        return "dense EASE"
    k = int(getattr(model, "relation_sources", 0))
    return f"EASE refitted on {k} sources per item" if k else "GF-CF top-k"


def _fit_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The staged fit's choices without its per-grid-point scores."""
    out: dict[str, Any] = {}
    if "taste" in report:
        out["taste_epochs"] = report["taste"]["epochs"]
    if "relation" in report:
        out["relation_l2"] = round(report["relation"]["l2"], 2)
        out["relation_fits"] = len(report["relation"]["valid"])
        out["relation_sources"] = report["relation"].get("sources", 0)
    if "gamma" in report:
        out["taste_weight"] = report["gamma"]["weight"]
    return out


def synthetic_matrix(users: int, items: int, interactions: int, skew: float, seed: int) -> sp.csr_matrix:
    """A binary users x items matrix: Zipf(``skew``) item popularity, lognormal user activity, repeats dropped."""
    rng = np.random.default_rng(seed)
    p_item = 1.0 / np.arange(1, items + 1) ** skew
    p_item = rng.permutation(p_item / p_item.sum())  # popular items spread over the ids
    activity = rng.lognormal(0.0, 1.0, users)
    u = rng.choice(users, size=interactions, p=activity / activity.sum()).astype(np.int32)
    i = rng.choice(items, size=interactions, p=p_item).astype(np.int32)
    X = sp.csr_matrix((np.ones(interactions, np.float32), (u, i)), shape=(users, items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


_PEAK = {"gib": 0.0}  # this process's peak RSS before the last reset of its high-water mark


def measured(fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Call ``fn`` and report its seconds and its peak RSS above the RSS just before the call."""
    gc.collect()
    rss_before = status_kib("VmRSS")
    _PEAK["gib"] = max(_PEAK["gib"], maxrss_gib())  # the reset below resets ru_maxrss too
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    hwm = status_kib("VmHWM")
    figures: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "rss_before_gib": to_gib(rss_before),
        "vmhwm_after_gib": to_gib(hwm),
        "ru_maxrss_after_gib": round(maxrss_gib(), 3),
    }
    if reset and hwm is not None and rss_before is not None:
        figures["peak_above_before_gib"] = to_gib(hwm - rss_before)
        figures["peak_source"] = "VmHWM (reset by /proc/self/clear_refs just before the call) - VmRSS before"
    elif rss_before is not None:
        figures["peak_above_before_gib"] = round(maxrss_gib() - rss_before / 2**20, 3)
        figures["peak_source"] = "ru_maxrss - VmRSS before (an upper bound: the peak could not be reset)"
    return out, figures


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes held by the tensors (a sparse CSR tensor: its index and value arrays)."""
    total = 0
    for t in tensors:
        parts = (t.crow_indices(), t.col_indices(), t.values()) if t.layout == torch.sparse_csr else (t,)
        total += sum(p.numel() * p.element_size() for p in parts)
    return total


def child_itemitem(payload: dict[str, Any]) -> dict[str, Any]:
    """Child: the large-catalog relation buffers of a synthetic catalog, and optionally ItemGAT's scoring cache."""
    from engine.models.itemgat import ItemGAT
    from engine.models.relation import default_l2, ease_refit, form_sources, relation_buffers

    t0 = time.perf_counter()
    X = synthetic_matrix(payload["users"], payload["items"], payload["interactions"], payload["skew"], payload["seed"])
    active = np.flatnonzero(X.getnnz(axis=0) > 0)
    l2 = default_l2(X)
    gen = time.perf_counter() - t0
    sys.stderr.write(f"  synthetic matrix {X.shape} with {X.nnz:,} interactions in {gen:.1f} s; fitting ...\n")
    k, sources, ease = payload["neighbours"], payload["sources"], payload["relation"] == "ease"

    def relation() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return relation_buffers(
            X, active, n_items=X.shape[1], dense=ease, l2=l2, neighbours=k, sources=sources, dense_gram=False
        )

    (dense, index, value), fig = measured(relation)
    out: dict[str, Any] = {
        "users": X.shape[0],
        "items": X.shape[1],
        "active_items": len(active),
        "interactions": int(X.nnz),
        "matrix_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
        "generate_seconds": round(gen, 2),
        "relation": f"EASE refitted on {sources} sources per item" if ease else f"GF-CF top-{k}",
        "relation_buffers": {**fig, "buffer_bytes": tensor_bytes(dense, index, value)},
    }
    sys.stderr.write(f"  relation_buffers: {out['relation_buffers']}\n")
    if ease:  # one more ridge on the same sources: the cost of each step of the staged fit's ridge search
        Xa = X[:, active].tocsc()
        nb = form_sources(Xa, sources, dense_gram=False)  # the search again: relation_buffers keeps none
        t1 = time.perf_counter()
        ease_refit(nb, 2.0 * l2)
        out["refit_seconds_per_ridge"] = round(time.perf_counter() - t1, 2)
        del nb
    if payload.get("lowpass"):  # the low-pass part at the largest rank the staged fit tries
        from engine.models.lowpass import lowpass_factors

        rank = min(payload["lowpass"], min(X.shape[0], len(active)) - 1)
        factors, fig = measured(lambda: lowpass_factors(X[:, active].tocsr(), rank))
        out["lowpass_factors"] = {**fig, "rank": rank, "factor_bytes": tensor_bytes(*factors)}
        sys.stderr.write(f"  lowpass_factors: {out['lowpass_factors']}\n")
        del factors
    if payload.get("scoring"):
        model = ItemGAT(X.shape[0], X.shape[1], relation="ease" if ease else "gfcf", neighbours=k)
        model.active, model.nbr_index, model.nbr_value = torch.as_tensor(active), index, value
        del dense, index, value
        cache, fig = measured(model._attended_relation)
        out["attended_relation"] = {**fig, "csr_bytes": tensor_bytes(cache)}
    out["process_peak_rss_gib"] = round(max(_PEAK["gib"], maxrss_gib()), 3)
    return out


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train": child_train,
    "itemitem": child_itemitem,
}


# ------------------------------------------------------------------------------------------- parts
def demo_config(args: argparse.Namespace) -> RunConfig:
    """The default configuration on the demo world at ``--demo-scale`` (1.0: ``RunConfig()`` itself)."""
    cfg = RunConfig()
    return cfg if args.demo_scale == 1.0 else cfg.with_overrides(data={"scale": args.demo_scale})


def ml100k_config(args: argparse.Namespace) -> RunConfig:
    """The default configuration on ml-100k read from ``--data-dir``."""
    return RunConfig().with_overrides(data={"dataset": "ml-100k", "data_dir": args.data_dir})


def part_train(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """gat vs lightgcn on ml-100k to early stop, each in a child process of ``run_benchmark``."""
    from engine.evaluation.benchmark import run_benchmark

    out: dict[str, Any] = {"dataset": "ml-100k", "seed": 0, "config": "RunConfig() defaults, model name aside"}
    for name in ("lightgcn", "gat"):
        say(f"train: {name} on ml-100k to early stop, in a child process ...")
        t0 = time.perf_counter()
        (row,) = run_benchmark(ml100k_config(args), (name,), (0,), cache_dir=Path(args.cache_dir))
        out[name] = {
            "train_seconds": row["train_seconds"],
            "process_wall_seconds": round(time.perf_counter() - t0, 1),
            "epochs": row["epochs"],
            "best_epoch": row["best_epoch"],
            "seconds_per_epoch": row["seconds_per_epoch"],
            "peak_rss_gib": round(row["peak_rss_mb"] / 1024, 3),
            "test_ndcg@10": round(row["test"]["ndcg@10"], 4),
        }
        say(f"train: {name} {json.dumps(out[name])}")
    ratio = out["gat"]["train_seconds"] / out["lightgcn"]["train_seconds"]
    out["ratio_gat_over_lightgcn"] = round(ratio, 2)
    out["train_seconds_note"] = "run_one's train_model: training to early stop (gat: every staged-fit stage)"
    out["peak_rss_source"] = "ru_maxrss of each child process (data, text features, training, evaluation)"
    out["meets_target"] = ratio <= 2.0
    say(f"train: gat/lightgcn training seconds {ratio:.2f}x [target <= 2x]")
    return out


def link_text_cache(args: argparse.Namespace, work: Path) -> None:
    """Lend ``--text-cache``'s files to the work directory's text cache, one link per file.

    Links to the files, not to the folder: features encoded during the run are written to the
    work directory, never into the lent cache.
    """
    if not args.text_cache:
        return
    target = work / "text"
    target.mkdir(parents=True, exist_ok=True)
    for src in Path(args.text_cache).resolve().iterdir():
        if src.is_file() and not (target / src.name).exists():
            (target / src.name).symlink_to(src)


def part_demo(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The default gat on the demo world, trained from scratch in a child process."""
    cfg = demo_config(args)
    say(f"demo: training gat on the demo world (scale {cfg.data.scale}) from scratch in a child process ...")
    out = run_child("train", {"config": cfg.to_dict(), "cache_dir": str(work)})
    out["scale"] = cfg.data.scale
    out["meets_target"] = out["training_seconds"] <= 60
    say(
        f"demo: training {out['training_seconds']} s [target <= 60 s]; total wall {out['total_wall_seconds']} s "
        f"(prepare {out['prepare_seconds']} s, text {out['text_features']}); peak RSS {out['peak_rss_gib']} GiB"
    )
    return out


_SERVED: dict[str, Any] = {}


def served_model(args: argparse.Namespace, work: Path, dataset: str) -> tuple[Any, float]:
    """The ServedModel of ``dataset`` (demo: from the work dir; ml-100k: ``--cache-dir``) and its load seconds.

    Trains it when no valid artifact is cached (the demo part stores one in the work directory).
    """
    from engine import service

    if dataset not in _SERVED:
        cfg, cache = (demo_config(args), work) if dataset == "demo" else (ml100k_config(args), Path(args.cache_dir))
        say(f"loading the {dataset} gat model from {cache} (trained first when none is cached) ...")
        t0 = time.perf_counter()
        _SERVED[dataset] = (service.train(cfg, cache_dir=cache), time.perf_counter() - t0)
    return _SERVED[dataset]


def known_users(served: Any, n: int, seed: int) -> list[str]:
    """``n`` distinct random users with training history (fewer when the data has fewer)."""
    ids = served.user_ids
    pick = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [ids[int(i)] for i in pick]


def part_recommend(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``recommend(user, 10)`` latency per user on the demo model."""
    served, load_s = served_model(args, work, "demo")
    users = known_users(served, args.users + 1, seed=0)
    t0 = time.perf_counter()
    served.recommend(users[0], 10)  # the first call pays lazy set-up (the training CSR, caches)
    warm_up = time.perf_counter() - t0
    times = []
    for user in users[1:]:
        t = time.perf_counter()
        served.recommend(user, 10)
        times.append(time.perf_counter() - t)
    ms = quantiles(times, scale=1000, digits=2)
    out = {
        "model": served.key,
        "load_seconds": round(load_s, 2),
        "from_cache": served.from_cache,
        "users": len(times),
        "k": 10,
        "warm_up_ms": round(warm_up * 1000, 2),
        **{f"{key}_ms": v for key, v in ms.items()},
        "meets_target": ms["median"] <= 5.0,
    }
    say(f"recommend: median {ms['median']} ms, p95 {ms['p95']} ms over {len(times)} users [target <= 5 ms]")
    return out


def explain_one(served: Any, user: str) -> tuple[float, Any]:
    """Seconds of one fresh explanation of the user's top-1 item (the service's defaults), and it."""
    item = str(served.recommend(user, 1).items["item_id"].iloc[0])
    t = time.perf_counter()
    exp = served.explain(user, item)
    return time.perf_counter() - t, exp


def explain_on(args: argparse.Namespace, work: Path, dataset: str) -> dict[str, Any]:
    """Explanation latency on one dataset's model: one warm-up, then distinct users."""
    served, load_s = served_model(args, work, dataset)
    users = known_users(served, args.explain_users + 1, seed=1)
    warm_up, first = explain_one(served, users[0])
    times, stages, found = [], {}, 0
    for user in users[1:]:
        seconds, exp = explain_one(served, user)
        times.append(seconds)
        for stage, s in exp.timings.items():
            stages.setdefault(stage, []).append(s)
        found += bool(exp.counterfactual is not None and exp.counterfactual.found)
    q = quantiles(times)
    out = {
        "model": served.key,
        "load_seconds": round(load_s, 2),
        "from_cache": served.from_cache,
        "method": first.method,
        "counterfactual": "on (the service's default)",
        "users": len(times),
        "warm_up_seconds": round(warm_up, 3),
        **{f"{key}_seconds": v for key, v in q.items()},
        "median_stage_seconds": {stage: round(float(np.median(v)), 4) for stage, v in stages.items()},
        "counterfactual_found": found,
        "meets_target": q["median"] <= 0.5,
    }
    say(f"explain ({dataset}): median {q['median']} s, p95 {q['p95']} s over {len(times)} users [target <= 0.5 s]")
    return out


def part_explain(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Explanation latency on every dataset of ``--explain-dataset``."""
    return {name: explain_on(args, work, name) for name in args.explain_dataset}


def part_scale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """gat on the ~1M-interaction demo world in a child process: peak RSS, seconds, sizes."""
    cfg = RunConfig().with_overrides(data={"scale": args.scale_value}, features={"text": not args.scale_no_text})
    if args.scale_epochs is not None:  # memory per taste epoch is constant; the relation fit follows regardless
        cfg = cfg.with_overrides(train={"epochs": args.scale_epochs})
    cfg = cfg.with_overrides(train={"mode": args.scale_mode})
    say(f"scale: training gat on the demo world at scale {args.scale_value} in a child process (progress below) ...")
    t0 = time.perf_counter()
    out = run_child("train", {"config": cfg.to_dict(), "cache_dir": str(work), "progress": True, "log": True})
    out["scale"] = args.scale_value
    out["taste_epoch_cap"] = args.scale_epochs
    out["mode"] = args.scale_mode
    out["process_wall_seconds"] = round(time.perf_counter() - t0, 1)
    out["meets_target"] = out["peak_rss_gib"] <= 6.0
    say(
        f"scale: {out['n_interactions']:,} interactions, {out['n_users']:,} users x {out['n_items']:,} items "
        f"({out['relation']}): peak RSS {out['peak_rss_gib']} GiB [target <= 6 GB], "
        f"{out['process_wall_seconds']} s wall, training {out['training_seconds']} s"
    )
    return out


def part_itemitem(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The sparse item-item relation of a synthetic catalog, in a child process."""
    payload = {
        "users": args.ii_users,
        "items": args.ii_items,
        "interactions": args.ii_interactions,
        "skew": args.ii_skew,
        "seed": 0,
        "neighbours": args.ii_neighbours,
        "sources": args.ii_sources,
        "relation": args.ii_relation,
        "scoring": args.ii_scoring,
        "lowpass": args.ii_lowpass,
    }
    say(
        f"itemitem: {args.ii_relation} relation of {args.ii_items:,} items x {args.ii_users:,} users "
        "in a child process ..."
    )
    out = run_child("itemitem", payload)
    rel = out["relation_buffers"]
    out["meets_target"] = rel["peak_above_before_gib"] <= 2.0
    say(
        f"itemitem: relation_buffers {rel['seconds']} s, peak {rel['peak_above_before_gib']} GiB above the RSS "
        f"before [target <= 2 GB], buffers {rel['buffer_bytes'] / GIB:.3f} GiB ({out['relation']})"
    )
    if "refit_seconds_per_ridge" in out:
        say(f"itemitem: one more refit at another ridge {out['refit_seconds_per_ridge']} s")
    if "attended_relation" in out:
        att = out["attended_relation"]
        say(
            f"itemitem: scoring cache (_attended_relation) {att['seconds']} s, peak {att['peak_above_before_gib']} "
            f"GiB above the RSS before, CSR {att['csr_bytes'] / GIB:.3f} GiB"
        )
    return out


PART_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "train": part_train,
    "demo": part_demo,
    "recommend": part_recommend,
    "explain": part_explain,
    "scale": part_scale,
    "itemitem": part_itemitem,
}


# -------------------------------------------------------------------------------------------- main
def comma_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated subset of ``choices``, in the order given."""

    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in names if x not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)} (got {text!r})")
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Parts and targets: " + "; ".join(f"{k}: {v}" for k, v in TARGETS.items()),
    )
    p.add_argument(
        "--only", type=comma_list(PARTS), default=list(PARTS), help=f"parts to run (default: {','.join(PARTS)})"
    )
    p.add_argument(
        "--data-dir", default="../shared/datasets/ml-100k", help="ml-100k folder (train, explain on ml-100k)"
    )
    p.add_argument(
        "--cache-dir",
        default="data/cache",
        help="feature cache of 'train' and model cache of the ml-100k explanations (default: data/cache)",
    )
    p.add_argument(
        "--work-dir",
        default=None,
        help="model cache of the demo and scale parts (default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--text-cache",
        default=None,
        help="an existing text-feature cache (e.g. data/cache/text) lent to the work dir "
        "(default: none, item texts are encoded from scratch)",
    )
    p.add_argument(
        "--demo-scale", type=float, default=1.0, help="demo world scale of demo/recommend/explain (default: 1)"
    )
    p.add_argument("--users", type=int, default=200, help="users timed for 'recommend' (default: 200)")
    p.add_argument("--explain-users", type=int, default=50, help="distinct users timed for 'explain' (default: 50)")
    p.add_argument(
        "--explain-dataset",
        type=comma_list(("demo", "ml-100k")),
        default=["demo"],
        help="models 'explain' times: demo and/or ml-100k, comma-separated (default: demo)",
    )
    p.add_argument("--scale-value", type=float, default=13.4, help="demo world scale of 'scale' (default: 13.4, ~1M)")
    p.add_argument("--scale-no-text", action="store_true", help="'scale' without language-model item features")
    p.add_argument(
        "--scale-epochs",
        type=int,
        default=None,
        help="'scale': cap on the taste stage's epochs (an epoch's memory is the same every epoch, so a cap "
        "measures the same peak RSS in less time; the relation is fitted after it either way) (default: none, "
        "early stopping)",
    )
    p.add_argument(
        "--scale-mode",
        default="auto",
        choices=("auto", "full", "minibatch"),
        help="'scale': training mode; minibatch samples the taste stage's subgraphs (default: auto, full-graph)",
    )
    p.add_argument("--ii-items", type=int, default=100_000, help="'itemitem': catalog size (default: 100000)")
    p.add_argument("--ii-users", type=int, default=200_000, help="'itemitem': users (default: 200000)")
    p.add_argument(
        "--ii-interactions", type=int, default=5_000_000, help="'itemitem': sampled interactions (default: 5000000)"
    )
    p.add_argument(
        "--ii-skew", type=float, default=0.8, help="'itemitem': Zipf exponent of item popularity (default: 0.8)"
    )
    p.add_argument(
        "--ii-relation",
        default="ease",
        choices=("ease", "gfcf"),
        help="'itemitem': the relation, as ItemGAT fits it above relation_dense_max (default: ease, refitted)",
    )
    p.add_argument(
        "--ii-sources", type=int, default=128, help="'itemitem': EASE sources per item, refitted (default: 128)"
    )
    p.add_argument(
        "--ii-neighbours", type=int, default=512, help="'itemitem': GF-CF sources kept per item (default: 512)"
    )
    p.add_argument(
        "--no-ii-scoring",
        dest="ii_scoring",
        action="store_false",
        help="'itemitem': skip measuring ItemGAT's scoring cache built from the relation",
    )
    p.add_argument(
        "--ii-lowpass",
        type=int,
        default=256,
        help="'itemitem': rank of the low-pass factors measured, 0 skips them (default: 256, the fit's largest)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads here and in the children (default: torch's)"
    )
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--child", default=None, choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_parts(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every part of ``--only`` in the canonical order; a failing part is reported, the others still run."""
    link_text_cache(args, work)
    out: dict[str, Any] = {"machine": machine(), "work_dir": str(work)}
    for name in (p for p in PARTS if p in args.only):
        t0 = time.perf_counter()
        try:
            out[name] = {"target": TARGETS[name], **PART_FUNCTIONS[name](args, work)}
        except Exception as err:  # a benchmark reports a failed part and goes on
            say(f"{name}: FAILED: {type(err).__name__}: {err}")
            out[name] = {"target": TARGETS[name], "error": f"{type(err).__name__}: {err}"}
        out[name]["part_seconds"] = round(time.perf_counter() - t0, 1)
    out["machine"]["uptime_after"] = uptime()
    out["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the children read it when torch starts
        torch.set_num_threads(args.threads)
    if args.child:
        return child_main(args.child)
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        out = run_parts(args, work)
    else:
        with tempfile.TemporaryDirectory(prefix="gatlens-bench-gat-") as tmp:
            out = run_parts(args, Path(tmp))
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    failed = [name for name in PARTS if isinstance(out.get(name), dict) and "error" in out[name]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
