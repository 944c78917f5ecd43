"""The dashboard's background training job (``engine/jobs.py``): its status file, its errors, one job at a time."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.config import RunConfig
from engine.jobs import active_pid, run_job, start_training, status_path, write_status


def _tiny() -> RunConfig:
    return RunConfig().with_overrides(
        data={"scale": 0.05},
        features={"text": False},
        model={"embedding_dim": 16, "heads": 1},
        train={"epochs": 2, "device": "cpu"},
    )


def test_a_job_reports_its_run_and_ends_with_the_stored_model(tmp_path: Path) -> None:
    config = _tiny()
    path = status_path(config, tmp_path)
    assert path.parent == tmp_path / "jobs" and path.name.startswith("demo-gat-")
    assert run_job(config, tmp_path, path) == 0
    status = json.loads(path.read_text(encoding="utf-8"))
    assert status["state"] == "done" and status["stage"] == "done"
    assert status["epoch"] == status["max_epochs"] == 2
    assert status["summary"].startswith("ran all 2 epochs (best epoch")
    assert status["eta"].startswith("at most 0:00 left") and status["eta_seconds"] == 0
    assert status["pid"] == os.getpid() and status["dataset"] == "demo"
    fp8 = status["model_key"].split("-")[1]
    assert status["model_key"] == f"gat-{fp8}-v1"
    assert list((tmp_path / "models" / "demo").glob(f"{fp8}*/v1/manifest.json"))
    # A second run finds the stored model and says so, without training again.
    assert run_job(config, tmp_path, path) == 0
    again = json.loads(path.read_text(encoding="utf-8"))
    assert again["model_key"] == status["model_key"]
    assert not list(path.parent.glob(".status-*"))  # atomic writes leave no temporary file behind


def test_a_failing_job_writes_its_error(tmp_path: Path) -> None:
    config = RunConfig().with_overrides(data={"dataset": "csv", "data_dir": str(tmp_path / "missing")})
    path = status_path(config, tmp_path)
    assert run_job(config, tmp_path, path) == 1
    status = json.loads(path.read_text(encoding="utf-8"))
    assert status["state"] == "failed" and "missing" in status["error"]
    assert active_pid(path) is None


def test_an_active_job_is_reused_not_doubled(tmp_path: Path) -> None:
    config = _tiny()
    path = status_path(config, tmp_path)
    write_status(path, {"state": "running", "stage": "training", "pid": os.getpid()})
    assert active_pid(path) == os.getpid()
    assert start_training(config, tmp_path) == path
    assert not path.with_suffix(".config.json").exists()  # nothing was started
    write_status(path, {"state": "running", "pid": 2**22 + 12345})  # a job that died: not active
    assert active_pid(path) is None
