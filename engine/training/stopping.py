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
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        if self.bad_evals >= self.cfg.patience:
            result.stopped_early = True
            return True
        if self.cfg.max_seconds is not None and time.perf_counter() - self.start > self.cfg.max_seconds:
            log.info("stopping at epoch %d: max_seconds=%s reached", epoch, self.cfg.max_seconds)
            return True
        return False

    def restore_best(self) -> None:
        """Load the best weights seen (no-op when no epoch was evaluated) and set ``result.seconds``."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.result.seconds = time.perf_counter() - self.start
