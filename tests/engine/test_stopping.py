"""Early stopping: best score, patience, best-checkpoint restore, the wall-clock cap."""

from __future__ import annotations

import time

import torch
from torch import nn

from engine.config import TrainConfig
from engine.training.loop import TrainResult
from engine.training.stopping import EarlyStopping


def test_patience_and_best_checkpoint_restore() -> None:
    model = nn.Linear(1, 1, bias=False)
    result = TrainResult()
    stopping = EarlyStopping(model, TrainConfig(patience=2), result)
    stops = []
    for epoch, score in enumerate([0.1, 0.3, 0.2, None, 0.25, 0.9], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)  # the weights "of" each epoch
        stops.append(stopping.end_epoch(epoch, {"epoch": epoch}, score, time.perf_counter()))
        if stops[-1]:
            break
    # Epoch 4 was not evaluated, so it does not use up patience; epoch 5 is the second miss.
    assert stops == [False, False, False, False, True]
    assert (result.best_epoch, result.best_valid, result.epochs, result.stopped_early) == (2, 0.3, 5, True)
    assert "valid_ndcg@10" not in result.curve[3] and result.curve[4]["best_valid"] == 0.3
    stopping.restore_best()
    assert model.weight.item() == 2.0 and result.seconds >= 0


def test_max_seconds_stops_without_marking_early_stop() -> None:
    model = nn.Linear(1, 1)
    result = TrainResult()
    stopping = EarlyStopping(model, TrainConfig(patience=5, max_seconds=0.0), result)
    assert stopping.end_epoch(1, {"epoch": 1}, 0.5, time.perf_counter()) is True
    assert result.stopped_early is False and result.best_epoch == 1
