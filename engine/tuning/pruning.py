"""Optuna pruning as a training callback: hopeless trials stop before early stopping would stop them.

The epoch loop knows nothing of Optuna: this :class:`~engine.training.callbacks.Callback`
reports each evaluated epoch's validation NDCG@10 to the trial (step = epoch) and raises
:class:`optuna.TrialPruned` when the study's pruner says the trial cannot catch up. The
exception leaves the loop like any other; Optuna records the trial as pruned.
"""

from __future__ import annotations

from typing import Any, Protocol

import optuna

from engine.training.callbacks import Callback


class ReportingTrial(Protocol):
    """What pruning needs of a trial (Optuna's ``Trial`` fits; tests pass a fake)."""

    def report(self, value: float, step: int) -> None: ...
    def should_prune(self) -> bool: ...


class PruningCallback(Callback):
    """Report validation NDCG@10 per evaluated epoch; raise :class:`optuna.TrialPruned` when told to.

    Args:
        trial: the running trial.
    """

    def __init__(self, trial: ReportingTrial) -> None:
        self.trial = trial

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        score = logs.get("valid_ndcg@10")
        if score is None:  # not an evaluated epoch (eval_every > 1): nothing new to judge
            return
        self.trial.report(float(score), epoch)
        if self.trial.should_prune():
            best = logs.get("best_valid", score)
            raise optuna.TrialPruned(
                f"pruned at epoch {epoch}: valid NDCG@10 {score:.4f} (best {best:.4f}) is behind the other trials"
            )
