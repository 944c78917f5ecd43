"""Training callbacks: progress, logging and TensorBoard stay out of the loop (minGPT's trainer)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class Callback:
    """Hooks called by :func:`engine.training.loop.fit`; every hook is optional."""

    def on_train_begin(self, max_epochs: int) -> None: ...

    def on_step(self, loss: float) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None: ...

    def on_train_end(self, logs: dict[str, Any]) -> None: ...


class ProgressBar(Callback):
    """A tqdm bar over epochs with live loss and validation NDCG@10 (written to stderr)."""

    def __init__(self, desc: str = "train") -> None:
        self.desc = desc
        self.bar = None

    def on_train_begin(self, max_epochs: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=max_epochs, desc=self.desc, unit="epoch", dynamic_ncols=True, leave=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.bar is None:
            return
        post = {"loss": f"{logs['loss']:.4f}"}
        if logs.get("valid_ndcg@10") is not None:
            post["val_ndcg@10"] = f"{logs['valid_ndcg@10']:.4f}"
            post["best"] = f"{logs['best_valid']:.4f}"
        self.bar.set_postfix(post)
        self.bar.update(1)

    def on_train_end(self, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()


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
