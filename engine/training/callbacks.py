"""Training callbacks: progress, logging and TensorBoard stay out of the loop (minGPT's trainer).

:class:`ProgressBar` is for people: epoch n of max, loss, validation NDCG@10, an honest ETA and
how the run ended. A terminal gets one tqdm bar that ends complete; a log file or pipe gets one
line per evaluation (``\\r``-redrawn bars make unreadable logs). The ETA is measured (wall time per
epoch so far, validation included) and says what it is: an upper bound, because early stopping
may end the run sooner, at the epoch where patience runs out unless validation improves. The
last line says how the run ended, e.g. ``stopped early at epoch 38 of 300 (best epoch 28, valid
NDCG@10 0.2213)``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger(__name__)


class Callback:
    """Hooks called by the epoch loop (:func:`engine.training.trainer.train_epochs`); every hook is optional.

    ``on_epoch_end`` receives the epoch's curve entry plus ``best_epoch``, ``max_epochs`` and
    ``stop_by`` (the epoch at which patience runs out unless validation improves);
    ``on_train_end`` receives how the run ended (``epochs``, ``max_epochs``, ``best_epoch``,
    ``best_valid``, ``stopped_early``, ``out_of_time``, ``max_seconds``, ``seconds``).
    """

    def on_train_begin(self, max_epochs: int) -> None: ...

    def on_step(self, loss: float) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None: ...

    def on_train_end(self, logs: dict[str, Any]) -> None: ...


# Curve and summary entries that count epochs (EpochOffset shifts them).
_EPOCH_KEYS = frozenset({"epoch", "epochs", "best_epoch", "max_epochs", "stop_by"})


class EpochOffset(Callback):
    """``callback`` seeing epoch numbers shifted by ``offset``: a later training stage continues the count.

    A second stage (gat's attention fine-tuning after its taste epochs) restarts its loop at epoch
    1; without the shift a pruner would be told twice about the same step, and a log would repeat
    epoch numbers.

    Args:
        callback: the callback to forward to.
        offset: epochs already run by the earlier stages.
    """

    def __init__(self, callback: Callback, offset: int) -> None:
        self.callback, self.offset = callback, int(offset)

    def on_train_begin(self, max_epochs: int) -> None:
        self.callback.on_train_begin(max_epochs + self.offset)

    def on_step(self, loss: float) -> None:
        self.callback.on_step(loss)

    def _shift(self, logs: dict[str, Any]) -> dict[str, Any]:
        return {k: v + self.offset if k in _EPOCH_KEYS and isinstance(v, int) else v for k, v in logs.items()}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.callback.on_epoch_end(epoch + self.offset, self._shift(logs))

    def on_train_end(self, logs: dict[str, Any]) -> None:
        self.callback.on_train_end(self._shift(logs))


def duration(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``4000`` -> ``"1:06:40"`` (rounded to the second)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def stop_summary(logs: dict[str, Any]) -> str:
    """How a run ended, from ``EarlyStopping.summary()`` (what ``on_train_end`` receives).

    Examples: ``"stopped early at epoch 38 of 300 (best epoch 28, valid NDCG@10 0.2213)"``,
    ``"ran all 300 epochs (best epoch 290, valid NDCG@10 0.2301)"``.
    """
    epochs, max_epochs = int(logs.get("epochs", 0)), int(logs.get("max_epochs", 0))
    best_valid = float(logs.get("best_valid", float("-inf")))
    best = (
        f"best epoch {logs.get('best_epoch', 0)}, valid NDCG@10 {best_valid:.4f}"
        if math.isfinite(best_valid)
        else "not validated"
    )
    if logs.get("stopped_early"):
        return f"stopped early at epoch {epochs} of {max_epochs} ({best})"
    if logs.get("out_of_time"):
        limit = f"time limit of {logs.get('max_seconds'):g} s reached"
        return f"stopped at epoch {epochs} of {max_epochs}: {limit} ({best})"
    if epochs >= max_epochs:
        return f"ran all {max_epochs} epochs ({best})"
    return f"stopped at epoch {epochs} of {max_epochs} ({best})"


class ProgressBar(Callback):
    """Epoch progress on ``stream`` (stderr): a tqdm bar on a terminal, else one line per evaluation.

    Args:
        desc: what is being trained, e.g. ``"train gat on demo"`` (default: ``"train"``).
        stream: where to write (default: ``sys.stderr`` at the time of training).
        bar: draw a tqdm bar (default: when ``stream`` is a terminal).
        clock: seconds since an arbitrary point, for the ETA (default: ``time.perf_counter``).
    """

    def __init__(
        self,
        desc: str = "train",
        *,
        stream: TextIO | None = None,
        bar: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.desc, self.stream, self.use_bar, self.clock = desc, stream, bar, clock
        self.bar: Any = None
        self.max_epochs = 0
        self.start = 0.0

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def on_train_begin(self, max_epochs: int) -> None:
        self.max_epochs, self.start = max_epochs, self.clock()
        stream = self._out()
        if self.use_bar is None:
            self.use_bar = bool(getattr(stream, "isatty", lambda: False)())
        if self.use_bar:
            from tqdm.auto import tqdm  # optional at import time: only terminals draw a bar

            # No tqdm rate/remaining fields: its ETA assumes every epoch runs (see eta()).
            fmt = "{desc}: epoch {n_fmt} of {total_fmt} |{bar}|{postfix}"  # postfix starts ", "
            self.bar = tqdm(total=max_epochs, desc=self.desc, file=stream, bar_format=fmt, dynamic_ncols=True)

    def eta(self, epoch: int, logs: dict[str, Any]) -> str:
        """``"at most 4:32 left, sooner if it stops early (at epoch 48 unless NDCG@10 improves)"``."""
        per_epoch = (self.clock() - self.start) / max(epoch, 1)
        left = per_epoch * (self.max_epochs - epoch)
        text = f"at most {duration(left)} left"
        stop_by = logs.get("stop_by")
        if stop_by is not None and epoch < stop_by < self.max_epochs:
            text += f", sooner if it stops early (at epoch {stop_by} unless NDCG@10 improves)"
        return text

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        parts = [f"loss {logs['loss']:.4f}"]
        score = logs.get("valid_ndcg@10")
        if score is not None:
            parts.append(
                f"valid NDCG@10 {score:.4f} (best {logs['best_valid']:.4f} at epoch {logs.get('best_epoch', '?')})"
            )
        parts.append(self.eta(epoch, logs))
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(parts), refresh=False)
            self.bar.update(1)
        elif score is not None or epoch == self.max_epochs:
            self._line(f"epoch {epoch} of {self.max_epochs}: " + ", ".join(parts))

    def on_train_end(self, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            # An early stop leaves the bar at 38/300: end it complete at the epochs that ran.
            self.bar.total = self.bar.n
            self.bar.set_postfix_str(f"{duration(self.clock() - self.start)} in all", refresh=False)
            self.bar.close()
            self.bar = None
        self._line(stop_summary(logs))

    def _line(self, text: str) -> None:
        stream = self._out()
        stream.write(f"{self.desc}: {text}\n")
        stream.flush()


class LogCallback(Callback):
    """Log one line per evaluation at INFO (for headless runs and tests)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if logs.get("valid_ndcg@10") is not None:
            log.info("epoch %d loss %.4f valid ndcg@10 %.4f", epoch, logs["loss"], logs["valid_ndcg@10"])


class FunctionCallback(Callback):
    """Call ``fn(epoch, max_epochs, logs)`` after each epoch (the dashboard's Train button)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.max_epochs = 0

    def on_train_begin(self, max_epochs: int) -> None:
        self.max_epochs = max_epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.fn(epoch, self.max_epochs, logs)


class TensorBoard(Callback):
    """Write training curves as TensorBoard event files (needs the ``tensorboard`` extra)."""

    def __init__(self, log_dir: str) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency

        self.writer = SummaryWriter(log_dir)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.writer.add_scalar("train/loss", logs["loss"], epoch)
        if logs.get("valid_ndcg@10") is not None:
            self.writer.add_scalar("valid/ndcg@10", logs["valid_ndcg@10"], epoch)

    def on_train_end(self, logs: dict[str, Any]) -> None:
        self.writer.close()
