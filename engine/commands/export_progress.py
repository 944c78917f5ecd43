"""``gatlens recommend --all --out FILE``: the export with a progress bar on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.commands.common import echo

if TYPE_CHECKING:
    from engine.service import ServedModel


def export_with_progress(model: ServedModel, out: str, k: int) -> int:
    """Write every user's top-``k`` of ``model`` to ``out``; a tqdm bar on a terminal, one line otherwise."""
    from engine import service

    bar = None
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=len(model.user_ids), desc="ranking users", unit="user", file=sys.stderr)

    def on_progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        info = service.export_lists(model, Path(out), k=k, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    echo(
        f"wrote the top {info['k']} of {info['users']:,} users of {model.model_name} on {model.dataset_name} "
        f"({info['rows']:,} rows, {info['format']}) to {info['path']}"
    )
    return 0
