"""Early stopping with best-checkpoint restore, shared by the full-batch and mini-batch loops."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:
    from engine.config import TrainConfig
    from engine.training.callbacks import Callback
    from engine.training.result import TrainResult

log = logging.getLogger(__name__)


class EarlyStopping:
    """End-of-epoch bookkeeping: best validation score, patience, wall-clock cap, callbacks.

    Args:
        model: the model whose best weights are kept (a deep copy of its ``state_dict``).
        cfg: ``patience`` (evaluations without improvement) and ``max_seconds`` are read here.
        result: the :class:`~engine.training.result.TrainResult` being filled in.
        callbacks: told about every epoch (``on_epoch_end``).
    """

    def __init__(
        self, model: nn.Module, cfg: TrainConfig, result: TrainResult, callbacks: Sequence[Callback] = ()
    ) -> None:
        self.model, self.cfg, self.result, self.callbacks = model, cfg, result, callbacks
        self.bad_evals = 0
        self.best_state: dict[str, Tensor] | None = None
        self.start = time.perf_counter()
        self.out_of_time = False

    def end_epoch(self, epoch: int, logs: dict[str, Any], score: float | None, epoch_start: float) -> bool:
        """Record one epoch (``score`` is None where it was not evaluated); True means stop now."""
        result = self.result
        if score is not None:
            logs["valid_ndcg@10"] = score
            if score > result.best_valid:
                result.best_valid, result.best_epoch, self.bad_evals = score, epoch, 0
                self.best_state = copy.deepcopy(self.model.state_dict())
            else:
                self.bad_evals += 1
        logs["seconds"] = time.perf_counter() - epoch_start
        logs["best_valid"] = result.best_valid
        result.curve.append(logs)
        result.epochs = epoch
        # Callbacks also learn when patience would run out (for an honest ETA); the stored curve does not need it.
        seen = {**logs, "best_epoch": result.best_epoch, "max_epochs": self.cfg.epochs, "stop_by": self.stop_by(epoch)}
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, seen)
        if self.bad_evals >= self.cfg.patience:
            result.stopped_early = True
            return True
        if self.cfg.max_seconds is not None and time.perf_counter() - self.start > self.cfg.max_seconds:
            log.info("stopping at epoch %d: max_seconds=%s reached", epoch, self.cfg.max_seconds)
            self.out_of_time = True
            return True
        return False

    def stop_by(self, epoch: int) -> int:
        """The epoch at which patience runs out if validation never improves again (at most ``cfg.epochs``).

        With ``p`` evaluations of patience left and one every ``eval_every`` epochs, training
        ends at the ``p``-th evaluation after ``epoch``; progress bars show it beside the ETA.
        """
        every, left = self.cfg.eval_every, self.cfg.patience - self.bad_evals
        return min(self.cfg.epochs, (epoch // every + left) * every)

    def summary(self) -> dict[str, Any]:
        """What ``Callback.on_train_end`` receives: how the run ended and its best epoch."""
        result = self.result
        return {
            "epochs": result.epochs,
            "max_epochs": self.cfg.epochs,
            "best_epoch": result.best_epoch,
            "best_valid": result.best_valid,
            "stopped_early": result.stopped_early,
            "out_of_time": self.out_of_time,
            "max_seconds": self.cfg.max_seconds,
            "seconds": result.seconds,
        }

    def restore_best(self) -> None:
        """Load the best weights seen (no-op when no epoch was evaluated) and set ``result.seconds``."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.result.seconds = time.perf_counter() - self.start
