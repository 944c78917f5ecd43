"""The background training job as every page shows it (AppTest on status files written by hand).

``gatlens dashboard`` starts the server at once and trains a missing model in a background process
that writes a JSON status file (``engine/jobs.py``); the app reads it through ``GATLENS_JOB_FILE``.
The end-to-end run (the real command on an empty cache) is in ``test_dashboard_start.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dashboard_support import APP, html_of

from dashboard.training import elapsed_text, progress_lines

RUNNING = {
    "state": "running",
    "stage": "training",
    "dataset": "tiny-demo",
    "model": "gat",
    "epoch": 12,
    "max_epochs": 300,
    "loss": 0.31,
    "valid_ndcg@10": 0.2101,
    "best_valid": 0.2213,
    "best_epoch": 9,
    "stop_by": 19,
    "eta": "at most 7:11 left, sooner if it stops early (at epoch 19 unless NDCG@10 improves)",
    "eta_seconds": 431.0,
    "seconds_per_epoch": 1.5,
    "log": "/tmp/job.log",
    "started": "2026-12-04T10:00:00+00:00",
}


@pytest.fixture
def job_app(tiny_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``job_app(status, **url)``: the app with ``status`` as the background job's status file."""
    from streamlit.testing.v1 import AppTest

    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "jobs" / "tiny-gat.json"
    path.parent.mkdir()
    monkeypatch.setenv("GATLENS_JOB_FILE", str(path))

    def _open(status: dict, **params: str):
        path.write_text(json.dumps(status), encoding="utf-8")
        at = AppTest.from_file(str(APP), default_timeout=90)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open


def _plain(text: str) -> str:
    """Markdown as read: without the escapes and invisible word joiners of ``md()``."""
    return text.replace("\u2060", "").replace("\\", "")


def _text(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [h.value for h in at.header]
    return _plain("\n".join(parts))


@pytest.mark.parametrize("page", ["overview", "recommendations", "why", "fairness", "compare"])
def test_every_page_shows_the_progress_while_the_job_trains(job_app, tiny_world, page: str) -> None:
    at = job_app({**RUNNING, "pid": os.getpid()}, page=page, user=tiny_world.gat.user_ids[0])
    assert at.header[0].value == "Preparing the dashboard"
    bar = at.get("progress")[0].proto
    assert bar.value == 4  # 12 of 300 epochs, in percent
    assert "epoch 12 of 300" in _plain(bar.text)
    text = _text(at)
    assert "Validation NDCG@10 0.2101 (best 0.2213 at epoch 9)" in text
    assert "at most 7:11 left, sooner if it stops early (at epoch 19 unless NDCG@10 improves)" in text
    assert "1.5 s per epoch" in text
    assert not at.get("plotly_chart") and "data-item=" not in html_of(at)  # no page body meanwhile


def test_stages_before_training_and_the_end_of_training(job_app) -> None:
    at = job_app({**RUNNING, "stage": "text features", "epoch": 0, "pid": os.getpid()})
    assert at.get("progress")[0].proto.value == 0
    assert "Preparing item text features" in _plain(at.get("progress")[0].proto.text)
    summary = "stopped early at epoch 38 of 300 (best epoch 28, valid NDCG@10 0.2213)"
    at = job_app({**RUNNING, "stage": "saving", "epoch": 38, "summary": summary, "pid": os.getpid()})
    bar = at.get("progress")[0].proto
    assert bar.value == 100 and summary in _plain(bar.text)


def test_a_failed_job_is_shown_with_its_message_on_every_page(job_app, tiny_world) -> None:
    status = {**RUNNING, "state": "failed", "error": "ValueError: no user has an item in the 'valid' part"}
    user = tiny_world.gat.user_ids[3]
    at = job_app(status, page="recommendations", model=tiny_world.gat_key, user=user)
    error = _plain(at.error[0].value)
    assert "no user has an item in the 'valid' part" in error and "/tmp/job.log" in error
    assert "data-item=" in html_of(at)  # the page itself still works with the models that are stored


def test_a_job_whose_process_died_is_reported_not_awaited(job_app) -> None:
    dead = 2**22 + 12345  # above any pid_max default: no such process
    at = job_app({**RUNNING, "pid": dead}, page="recommendations")
    assert not at.get("progress")
    assert f"pid {dead}) ended without finishing" in _plain(at.error[0].value)


def test_when_the_job_is_done_the_dashboard_opens_its_model(job_app, tiny_world) -> None:
    # The job stored the baseline: with no model in the link, that is the one the sidebar opens.
    done = {**RUNNING, "state": "done", "stage": "done", "model_key": tiny_world.pop_key, "pid": 1}
    at = job_app(done, page="recommendations")
    assert not at.get("progress") and not at.error
    assert at.selectbox(key="w_model").value == tiny_world.pop_key


def test_status_strings_are_escaped(job_app) -> None:
    at = job_app({**RUNNING, "dataset": "[click](http://evil)", "pid": os.getpid()})
    assert "[click](http://evil)" not in at.markdown[0].value  # escaped: shows as typed, links nowhere
    assert "evil" in at.markdown[0].value


def test_progress_lines_and_elapsed_time() -> None:
    fraction, text, details = progress_lines({**RUNNING, "eta": None, "epoch": 0})
    assert fraction == 0 and text == "Training: epoch 0 of 300"
    assert details[-1] == "Time left: measuring the first epoch…"
    from datetime import datetime, timezone

    now = datetime(2026, 12, 4, 10, 2, 5, tzinfo=timezone.utc)
    assert elapsed_text(RUNNING, now) == "Running for 2:05."
    assert elapsed_text({}) is None
