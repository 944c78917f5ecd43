"""The background training job as the dashboard shows it: a progress view on every page while it runs.

``gatlens dashboard`` starts the server at once and trains a missing model in a separate
process (``engine.jobs``), which writes its progress to a small JSON file named by
``GATLENS_JOB_FILE``. This module reads that file (plain JSON: no engine import, so the page
appears before torch has even loaded) and draws it: the stage, epoch n of max, validation
NDCG@10, the measured ETA, and at the end how the run ended ("stopped early at epoch 38 of 300
(best epoch 28, …)"). While the job runs, a fragment re-reads the file every few seconds and
reruns the app when it changed; when the model is stored the page becomes the dashboard. A failed
job is shown with its message on every page, never swallowed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.components.text import md, md_code
from dashboard.settings import Settings

ACTIVE = ("starting", "running")
STAGES = {
    "data": "Loading the data",
    "text features": "Preparing item text features and the graph (or loading the cached model)",
    "training": "Training",
    "saving": "Evaluating on the test split and storing the model",
}
_SEEN_ACTIVE = "gl_job_seen_active"


def read_job(path: Path | None) -> dict[str, Any] | None:
    """The job's status (see ``engine/jobs.py`` for the fields), or None when there is none.

    An active status whose process is gone comes back as ``failed``, saying so.
    """
    if path is None:
        return None
    try:
        status = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    if status.get("state") in ACTIVE and not _alive(status.get("pid")):
        status = {
            **status,
            "state": "failed",
            "error": f"the training process (pid {status.get('pid')}) ended without finishing "
            "(killed, or out of memory?)",
        }
    return status


def _alive(pid: Any) -> bool:
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE
    except (TypeError, ValueError, psutil.Error):
        return False


def is_active(status: dict[str, Any] | None) -> bool:
    return bool(status) and status.get("state") in ACTIVE


def progress_lines(status: dict[str, Any]) -> tuple[float, str, list[str]]:
    """``(fraction, bar text, detail lines)`` for a status; plain text (the caller escapes it)."""
    stage = str(status.get("stage") or "data")
    epoch, max_epochs = int(status.get("epoch") or 0), int(status.get("max_epochs") or 0)
    details: list[str] = []
    if stage == "training" and max_epochs:
        fraction = min(epoch / max_epochs, 1.0)
        text = f"Training: epoch {epoch} of {max_epochs}"
        ndcg, best, best_epoch = status.get("valid_ndcg@10"), status.get("best_valid"), status.get("best_epoch")
        if isinstance(ndcg, (int, float)):
            line = f"Validation NDCG@10 {ndcg:.4f}"
            if isinstance(best, (int, float)) and best_epoch:
                line += f" (best {best:.4f} at epoch {best_epoch})"
            details.append(line)
        if status.get("eta"):
            per = status.get("seconds_per_epoch")
            pace = f" (measured: {per:.1f} s per epoch)" if isinstance(per, (int, float)) else ""
            details.append(f"Time left: {status['eta']}{pace}.")
        else:
            details.append("Time left: measuring the first epoch…")
    elif stage == "saving":
        fraction = 1.0
        text = f"Training finished: {status.get('summary') or 'done'}"
        details.append("Evaluating on the test split and storing the model…")
    else:
        fraction = 0.0
        text = STAGES.get(stage, stage) + "…"
    return fraction, text, details


def elapsed_text(status: dict[str, Any], now: datetime | None = None) -> str | None:
    """``"Running for 2:05."`` since the job started, or None when the start is unknown."""
    started = _parse_time(status.get("started"))
    if started is None:
        return None
    elapsed = max(0, round(((now or datetime.now(timezone.utc)) - started).total_seconds()))
    return f"Running for {elapsed // 60}:{elapsed % 60:02d}."


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def render_progress(cfg: Settings, status: dict[str, Any]) -> None:
    """The progress view (shown instead of any page while the job runs), refreshing itself."""
    st.session_state[_SEEN_ACTIVE] = True
    model, dataset = status.get("model") or "model", status.get("dataset") or cfg.dataset
    st.header("Preparing the dashboard", anchor=False)
    st.markdown(
        f"The **{md(model)}** model for the dataset **{md(dataset)}** is being prepared in the background "
        "(trained when none is cached; a few minutes for the demo world on a laptop CPU). This page updates "
        "itself and turns into the dashboard when the model is stored; every page shows this meanwhile, and "
        "closing the browser does not stop it."
    )
    fraction, text, details = progress_lines(status)
    st.progress(fraction, text=md(text))
    for line in details:
        st.caption(md(line))
    order = list(STAGES)
    stage = str(status.get("stage") or "data")
    here = order.index(stage) if stage in order else 0
    marks = [("✓ " if n < here else "▶ " if n == here else "· ") + name for n, name in enumerate(order)]
    st.caption(md("  →  ".join(marks)))
    if status.get("log"):
        st.caption(f"Log: {md_code(status['log'])}")
    _watch(cfg, status)


def _signature(status: dict[str, Any] | None) -> tuple[Any, ...]:
    if status is None:
        return (None,)
    return (status.get("state"), status.get("stage"), status.get("epoch"), status.get("updated"))


def _watch(cfg: Settings, shown: dict[str, Any]) -> None:
    """Re-read the status every ``cfg.job_refresh`` seconds; rerun the app when it changed.

    A fragment: between changes only this part (the elapsed time) runs, so the page neither
    flickers nor holds a script thread asleep (fragments do not run under ``AppTest``).
    """
    signature = _signature(shown)
    path = cfg.job_file

    @st.fragment(run_every=cfg.job_refresh)
    def watch() -> None:
        now = read_job(path)
        if _signature(now) != signature:
            st.rerun(scope="app")
        elapsed = elapsed_text(shown)
        if elapsed:
            st.caption(elapsed)

    watch()


def show_failure(status: dict[str, Any]) -> None:
    """The job's error, on every page (the pages below still offer the Train button)."""
    log = f" Its log: {md_code(status['log'])}." if status.get("log") else ""
    st.error(
        f"Preparing the **{md(status.get('model') or 'model')}** model for **{md(status.get('dataset') or '?')}** "
        f"in the background failed: {md(status.get('error') or 'no message')}.{log} Fix the cause and restart "
        "`gatlens dashboard`, or train from a page's Train button.",
        icon=":material/error:",
    )


def finished_model(status: dict[str, Any] | None) -> str | None:
    """The stored model's key (``model`` URL key) once the job is done, else None."""
    if status and status.get("state") == "done" and status.get("model_key"):
        return str(status["model_key"])
    return None


def just_finished() -> bool:
    """True once per session, on the first run after this session saw the job active (refresh model lists)."""
    return bool(st.session_state.pop(_SEEN_ACTIVE, False))
