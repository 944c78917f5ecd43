"""Training progress for people: the epoch lines, the honest ETA, the final line, and `gatlens train` (-q)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn

from engine.cli import main
from engine.config import TrainConfig
from engine.training.callbacks import ProgressBar, duration, stop_summary
from engine.training.result import TrainResult
from engine.training.stopping import EarlyStopping


def _clock(step: float) -> Iterator[float]:
    t = 0.0
    while True:
        yield t
        t += step


def _fake_run(scores: list[float | None], cfg: TrainConfig, bar: bool = False) -> str:
    """Drive EarlyStopping as the loop does, with a ProgressBar whose clock ticks 2 s per call."""
    stream, ticks = io.StringIO(), _clock(2.0)
    progress = ProgressBar("train demo", stream=stream, bar=bar, clock=lambda: next(ticks))
    model, result = nn.Linear(1, 1), TrainResult()
    progress.on_train_begin(cfg.epochs)
    stopping = EarlyStopping(model, cfg, result, [progress])
    for epoch, score in enumerate(scores, start=1):
        if stopping.end_epoch(epoch, {"epoch": epoch, "loss": 0.5 / epoch}, score, time.perf_counter()):
            break
    stopping.restore_best()
    progress.on_train_end(stopping.summary())
    return stream.getvalue()


def test_a_five_epoch_run_that_stops_early_prints_epoch_lines_and_the_final_line() -> None:
    out = _fake_run([0.1, 0.3, 0.2, 0.25, 0.28, 0.9], TrainConfig(epochs=10, patience=3))
    lines = out.splitlines()
    assert lines[0] == (
        "train demo: epoch 1 of 10: loss 0.5000, valid NDCG@10 0.1000 (best 0.1000 at epoch 1), "
        "at most 0:18 left, sooner if it stops early (at epoch 4 unless NDCG@10 improves)"
    )
    # Epoch 3 missed once: patience (3) now runs out at epoch 5; 2 s per epoch measured, 7 epochs to go.
    assert lines[2] == (
        "train demo: epoch 3 of 10: loss 0.1667, valid NDCG@10 0.2000 (best 0.3000 at epoch 2), "
        "at most 0:14 left, sooner if it stops early (at epoch 5 unless NDCG@10 improves)"
    )
    assert len(lines) == 6
    assert lines[-1] == "train demo: stopped early at epoch 5 of 10 (best epoch 2, valid NDCG@10 0.3000)"


def test_the_bar_ends_complete_at_the_epochs_that_ran() -> None:
    out = _fake_run([0.1, 0.3, 0.2, 0.25, 0.28], TrainConfig(epochs=300, patience=3), bar=True)
    assert "epoch 5 of 5 |##########|, 0:12 in all\n" in out  # complete, not frozen at 5/300; 6 ticks of 2 s
    assert out.rstrip().endswith("train demo: stopped early at epoch 5 of 300 (best epoch 2, valid NDCG@10 0.3000)")


def test_only_evaluated_epochs_get_a_line_when_not_a_terminal() -> None:
    out = _fake_run([None, 0.2, None, 0.3], TrainConfig(epochs=4, eval_every=2, patience=5))
    assert [line.split(":")[1] for line in out.splitlines()[:2]] == [" epoch 2 of 4", " epoch 4 of 4"]
    assert out.splitlines()[-1] == "train demo: ran all 4 epochs (best epoch 4, valid NDCG@10 0.3000)"


def test_stop_summary_variants_and_durations() -> None:
    base = {"epochs": 50, "max_epochs": 300, "best_epoch": 40, "best_valid": 0.25}
    assert stop_summary({**base, "out_of_time": True, "max_seconds": 600.0}) == (
        "stopped at epoch 50 of 300: time limit of 600 s reached (best epoch 40, valid NDCG@10 0.2500)"
    )
    assert (
        stop_summary({"epochs": 3, "max_epochs": 3, "best_valid": float("-inf")}) == "ran all 3 epochs (not validated)"
    )
    assert (duration(59.6), duration(75), duration(4000)) == ("1:00", "1:15", "1:06:40")


def test_stop_by_counts_evaluations_not_epochs() -> None:
    stopping = EarlyStopping(nn.Linear(1, 1), TrainConfig(epochs=100, patience=3, eval_every=5), TrainResult())
    assert stopping.stop_by(10) == 25  # three more evaluations: epochs 15, 20, 25
    stopping.bad_evals = 2
    assert stopping.stop_by(10) == 15
    assert EarlyStopping(nn.Linear(1, 1), TrainConfig(epochs=12, patience=10), TrainResult()).stop_by(5) == 12


@pytest.fixture()
def tiny_args(tmp_path: Path) -> list[str]:
    # The tests' tiny demo world (scale 0.1: 150 users, 200 items), LightGCN, no text encoder.
    return ["train", "--scale", "0.1", "--model", "lightgcn", "--no-text", "--epochs", "2"]


def test_gatlens_train_shows_progress_by_default_and_q_silences_it(
    tiny_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*tiny_args, "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "train lightgcn on demo: epoch 1 of 2: loss " in err
    assert "train lightgcn on demo: epoch 2 of 2: loss " in err
    final = [line for line in err.splitlines() if "ran all 2 epochs" in line]
    assert len(final) == 1 and final[0].startswith("train lightgcn on demo: ran all 2 epochs (best epoch ")
    for quiet in (["-q", *args, "--force"], [*args, "--force", "--quiet"]):
        assert main(quiet) == 0
        err = capsys.readouterr().err
        assert "epoch 1 of 2" not in err and "ran all" not in err
