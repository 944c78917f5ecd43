"""Background training for the dashboard: a detached process that trains one config and reports its progress.

``gatlens dashboard`` must answer in the browser within seconds, but training the demo model takes
minutes. So the command starts the server at once and, when it needs a model, :func:`start_training`
launches ``python -m engine.jobs`` as its own process (its own session: it survives the app's script
reruns, blocks no browser session, and keeps running if the page is closed). That process writes a
small JSON status file, atomically (write a temporary file, then ``os.replace``), at every stage and
epoch; every dashboard page reads it and shows the progress until the model is stored.

The status file (``<cache>/jobs/<dataset>-<model>-<hash>.json``)::

    {"state": "running",            # starting | running | done | failed
     "stage": "training",           # data | text features | training | saving | done
     "dataset": "demo", "model": "gat", "pid": 4242,
     "epoch": 12, "max_epochs": 300, "loss": 0.31,
     "valid_ndcg@10": 0.2213, "best_valid": 0.2213, "best_epoch": 12, "stop_by": 22,
     "eta_seconds": 431.0,           # upper bound: every remaining epoch at the measured pace
     "eta": "at most 7:11 left, sooner if it stops early (at epoch 22 unless NDCG@10 improves)",
     "summary": "stopped early at epoch 38 of 300 (best epoch 28, valid NDCG@10 0.2213)",
     "model_key": "gat-02a36f00-v1", # when done
     "error": "ValueError: ...",     # when failed
     "log": "/.../jobs/demo-gat-1a2b3c4d.log", "started": ..., "updated": ...}

One job per configuration runs at a time: the job holds a writers' lock
(:class:`engine.artifacts.lock.WriterLock`) on ``<file>.lock`` while it runs, and
:func:`start_training` reuses a running job instead of starting another. The model itself is
saved under the store's own per-dataset+fingerprint writers' lock, so a ``gatlens train`` of the
same model never writes at the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.config import RunConfig

log = logging.getLogger(__name__)

JOBS_DIR = "jobs"
ACTIVE = ("starting", "running")
# The job trains at a lower CPU priority than the server: pages stay responsive on a small machine.
NICENESS = 5


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def status_path(config: RunConfig, cache_dir: str | Path) -> Path:
    """Where the job for ``config`` writes its status: ``<cache>/jobs/<dataset>-<model>-<hash8>.json``."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in config.data.dataset)
    return Path(cache_dir) / JOBS_DIR / f"{safe}-{config.model.name}-{digest}.json"


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write ``status`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({**status, "updated": _now()}, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def active_pid(path: str | Path) -> int | None:
    """The pid of the job whose status file is ``path`` while it is still running, else None.

    (The dashboard reads the whole status itself, in ``dashboard/training.py``: it imports no engine
    module before a model exists, since the engine imports torch.)
    """
    try:
        status = json.loads(Path(path).read_text(encoding="utf-8"))
        pid = int(status["pid"]) if status.get("state") in ACTIVE else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return pid if pid is not None and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds that pid: ours is gone
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def start_training(config: RunConfig, cache_dir: str | Path, *, env: dict[str, str] | None = None) -> Path:
    """Start (or reuse) the background job that trains ``config``; returns its status file.

    Returns at once: the job runs in its own session (``start_new_session``) with its output in
    ``<status>.log``. An active job for the same configuration is reused, not doubled.

    Args:
        config: what to train (loaded instead when a valid model is cached).
        cache_dir: artifact and feature cache root.
        env: the job's environment (default: this process's).
    """
    cache_dir = Path(cache_dir).expanduser().resolve()
    path = status_path(config, cache_dir)
    if active_pid(path) is not None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    config_file = path.with_suffix(".config.json")
    config_file.write_text(json.dumps(config.to_dict(), indent=1), encoding="utf-8")
    log_file = path.with_suffix(".log")
    argv = [sys.executable, "-m", "engine.jobs", str(config_file), "--cache-dir", str(cache_dir), "--status", str(path)]
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env),
            start_new_session=True,  # not killed with the server's process group; survives reruns
            cwd=str(Path(__file__).resolve().parent.parent),
        )
    write_status(path, _base(config, proc.pid, log_file) | {"state": "starting", "stage": "data"})
    return path


def _base(config: RunConfig, pid: int, log_file: Path) -> dict[str, Any]:
    return {
        "dataset": config.data.name or config.data.dataset,
        "model": config.model.name,
        "pid": pid,
        "log": str(log_file),
        "started": _now(),
    }


def _progress_callback(path: Path, status: dict[str, Any]) -> Any:
    """A training callback that writes epoch progress to the status file (built lazily: it imports torch)."""
    from engine.training.callbacks import ProgressBar, stop_summary

    class JobProgress(ProgressBar):
        """Epoch n of max, validation NDCG@10 and the measured ETA, written to the status file."""

        def __init__(self) -> None:
            super().__init__("train", bar=False)

        def on_train_begin(self, max_epochs: int) -> None:
            super().on_train_begin(max_epochs)
            status.update(stage="training", epoch=0, max_epochs=max_epochs, eta=None, eta_seconds=None)
            write_status(path, status)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            per_epoch = (self.clock() - self.start) / max(epoch, 1)
            status.update(
                epoch=epoch,
                loss=_num(logs.get("loss")),
                best_valid=_num(logs.get("best_valid")),
                best_epoch=logs.get("best_epoch"),
                stop_by=logs.get("stop_by"),
                eta_seconds=round(per_epoch * (self.max_epochs - epoch), 1),
                eta=self.eta(epoch, logs),
                seconds_per_epoch=round(per_epoch, 3),
            )
            if logs.get("valid_ndcg@10") is not None:
                status["valid_ndcg@10"] = _num(logs["valid_ndcg@10"])
            write_status(path, status)

        def on_train_end(self, logs: dict[str, Any]) -> None:
            status.update(stage="saving", summary=stop_summary(logs), epochs_run=logs.get("epochs"))
            write_status(path, status)

    return JobProgress()


def _num(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


def run_job(config: RunConfig, cache_dir: Path, path: Path) -> int:
    """Train (or load) ``config`` in this process, reporting to the status file ``path``.

    Returns:
        0 when the model is stored (or was cached), 1 when the job failed (the status says why).
    """
    from engine.artifacts.lock import LockTimeoutError, WriterLock

    status = _base(config, os.getpid(), path.with_suffix(".log")) | {"state": "running", "stage": "data"}
    # Keep the start time the launcher wrote, so the page's "running for" counts from the command.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        status["started"] = json.loads(path.read_text(encoding="utf-8")).get("started") or status["started"]
    try:
        with WriterLock(path.with_suffix(".lock"), f"training job {path.stem}", timeout=0):
            write_status(path, status)
            return _train(config, cache_dir, path, status)
    except LockTimeoutError:
        log.warning("another job is already training %s; leaving it to that one", path.stem)
        return 0


def _train(config: RunConfig, cache_dir: Path, path: Path, status: dict[str, Any]) -> int:
    t0 = time.perf_counter()
    try:
        from engine import service
        from engine.assembly import load_data

        dataset = load_data(config)
        status.update(stage="text features", dataset=dataset.name, data_seconds=round(time.perf_counter() - t0, 1))
        write_status(path, status)
        from engine.pipeline import train_or_load

        rec = train_or_load(config, callbacks=[_progress_callback(path, status)], cache_dir=cache_dir, dataset=dataset)
        model = service.ServedModel(rec)
    except Exception as exc:  # reported in the status file, with the traceback in the log
        traceback.print_exc()
        status.update(state="failed", error=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - t0, 1))
        write_status(path, status)
        return 1
    key = None
    if model.fingerprint is not None:
        key = f"{model.model_name or 'model'}-{model.fingerprint[:8]}-v{model.version}"
    status.update(state="done", stage="done", model_key=key, seconds=round(time.perf_counter() - t0, 1))
    if "summary" not in status:
        status["summary"] = "loaded the cached model"
    write_status(path, status)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.jobs CONFIG.json --cache-dir DIR --status FILE`` (started by :func:`start_training`)."""
    p = argparse.ArgumentParser(prog="python -m engine.jobs", description=__doc__.splitlines()[0])
    p.add_argument("config", help="RunConfig as JSON (written by start_training)")
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--status", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    path = Path(args.status)
    try:
        config = RunConfig.from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        write_status(path, {"state": "failed", "pid": os.getpid(), "error": f"unreadable job config: {exc}"})
        return 1
    return run_job(config, Path(args.cache_dir), path)


if __name__ == "__main__":
    sys.exit(main())
