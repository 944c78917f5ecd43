"""Study progress for people: one line per finished trial (a tqdm bar above them on a terminal).

Each line says which trial of the budget finished, its validation NDCG@10, the best so far
and its parameters, e.g.::

    tune bprmf on ml-100k: trial 4 of 20: valid NDCG@10 0.2634 in 0:12 (31 epochs); best 0.2701 (trial 2);
    ~3:10 left at this pace; lr=0.00123 weight_decay=0 batch_size=2048
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.training.callbacks import Callback, duration

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards the trial budget


def format_params(params: dict[str, Any]) -> str:
    """``{"train.lr": 0.001234, "model.num_layers": 2}`` -> ``"lr=0.00123 num_layers=2"``."""
    parts = []
    for key, value in params.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key.rpartition('.')[2]}={shown}")
    return " ".join(parts)


def best_of(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None while there is none (Optuna raises instead)."""
    return study.best_trial if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) else None


class TrialProgress:
    """An Optuna callback (``study.optimize(callbacks=[...])``) writing one line per finished trial.

    Args:
        desc: what is tuned, e.g. ``"tune bprmf on ml-100k"``.
        total: the study's trial budget (resumed trials included).
        done: trials the study had finished before this run (default: 0).
        stream: where to write (default: ``sys.stderr`` at the time of writing).
        bar: draw a tqdm bar over the trials (default: when ``stream`` is a terminal).
        clock: seconds since an arbitrary point, for the pace (default: ``time.perf_counter``).
    """

    def __init__(
        self,
        desc: str,
        total: int,
        *,
        done: int = 0,
        stream: TextIO | None = None,
        bar: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.desc, self.total, self.done, self.stream, self.clock = desc, total, done, stream, clock
        self.start_done, self.start = done, clock()
        out = self._out()
        use_bar = bool(getattr(out, "isatty", lambda: False)()) if bar is None else bar
        self.bar: Any = None
        if use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, file=out, unit="trial", dynamic_ncols=True)

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def line(self, study: optuna.Study, trial: FrozenTrial) -> str:
        """The text for one finished trial (also what the bar prints above itself)."""
        head = f"{self.desc}: trial {self.done} of {self.total}"
        if trial.state == TrialState.COMPLETE:
            epochs = trial.user_attrs.get("epochs")
            ran = f" ({epochs} epochs)" if epochs else ""
            twin = trial.user_attrs.get("duplicate_of")
            if twin is not None:
                ran = f" (same point as trial {twin}: not trained again)"
            what = f"valid NDCG@10 {trial.value:.4f} in {duration(_seconds(trial))}{ran}"
        elif trial.state == TrialState.PRUNED:
            steps = trial.intermediate_values
            peak = max(steps.values()) if steps else float("nan")
            what = f"pruned at epoch {trial.last_step} (best valid NDCG@10 {peak:.4f}) in {duration(_seconds(trial))}"
        else:
            what = f"{trial.state.name.lower()} after {duration(_seconds(trial))}"
        best = best_of(study)
        so_far = f"best {best.value:.4f} (trial {best.number + 1})" if best is not None else "no complete trial yet"
        parts = [f"{head}: {what}", so_far]
        ran_here = self.done - self.start_done
        if ran_here and self.done < self.total:
            pace = (self.clock() - self.start) / ran_here
            parts.append(f"~{duration(pace * (self.total - self.done))} left at this pace")
        if trial.params:
            parts.append(format_params(trial.params))
        return "; ".join(parts)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state in FINISHED:
            self.done += 1
        text = self.line(study, trial)
        if self.bar is not None:
            self.bar.update(1 if trial.state in FINISHED else 0)
            self.bar.write(text, file=self._out())
        else:
            out = self._out()
            out.write(text + "\n")
            out.flush()

    def epochs(self) -> Callback | None:
        """A training callback showing the running trial's epoch on the bar (None without a bar).

        A trained model's trial can take minutes; on a terminal the bar's postfix says where it
        is. Logs get no per-epoch lines: one line per trial keeps them readable.
        """
        return None if self.bar is None else _EpochPostfix(self)

    def close(self) -> None:
        """End the bar (lines need no ending)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _EpochPostfix(Callback):
    def __init__(self, progress: TrialProgress) -> None:
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        bar = self.progress.bar
        if bar is None:
            return
        best = logs.get("best_valid")
        shown = f", valid NDCG@10 so far {best:.4f}" if best is not None and math.isfinite(best) else ""
        bar.set_postfix_str(f"trial {self.progress.done + 1}: epoch {epoch}{shown}")


def _seconds(trial: FrozenTrial) -> float:
    d = trial.duration  # None for a trial that never ended (a crashed process)
    return d.total_seconds() if d is not None else 0.0
