"""Every user's top-K of a model to a CSV or Parquet file: ``gatlens recommend --all --out FILE``.

The lists are ranked by the one top-K (:func:`engine.evaluation.topk.top_k`) in batches of
users, with the same exclusions as the audit of the test part (the user's training and
validation items: the model has seen both), so an exported file imported back
(``gatlens import-recs``) audits exactly like the model itself.

Columns ``user_id, item_id, rank, score`` with external ids. The file is written to a hidden
temporary file next to the target and renamed into place, so a reader never sees half a
file. Text cells of a CSV that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) get a leading ``'`` (OWASP's advice against CSV
injection); ids that are numbers (``-5``) are left alone, and the importer reads ``'=x`` back
as ``=x``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.schema import ITEM, USER
from engine.evaluation.topk import held_out, top_k
from engine.recommender import Recommender
from engine.recs.reading import FORMULA_START, PARQUET_SUFFIXES

COLUMNS = (USER, ITEM, "rank", "score")
BATCH_USERS = 2048  # users ranked per step: a [2048, n_items] float32 block, 80 MB at 10k items

Progress = Callable[[int, int], None]


def neutralise_formulas(values: pd.Series) -> pd.Series:
    """Text cells a spreadsheet would evaluate, prefixed with ``'``; numbers and other text unchanged.

    Args:
        values: string cells.

    Returns:
        The cells, with ``'`` before those starting with ``= + - @``, tab or CR that are not numbers.
    """
    text = values.astype(str)
    risky = text.str.startswith(FORMULA_START).to_numpy(dtype=bool)
    if not risky.any():
        return text
    numeric = pd.to_numeric(text[risky], errors="coerce").notna().to_numpy()
    flagged = np.flatnonzero(risky)[~numeric]
    out = text.copy()
    out.iloc[flagged] = "'" + text.iloc[flagged]
    return out


def _frame(rec: Recommender, users: np.ndarray, items: np.ndarray, scores: np.ndarray, csv: bool) -> pd.DataFrame:
    """One batch as rows (empty slots, where exclusion left fewer than K items, dropped)."""
    k = items.shape[1]
    filled = items.reshape(-1) >= 0
    user_ids = np.asarray(rec.idmap.users, dtype=object)[np.repeat(users, k)[filled]]
    item_ids = np.asarray(rec.idmap.items, dtype=object)[items.reshape(-1)[filled]]
    frame = pd.DataFrame(
        {
            USER: pd.Series(user_ids, dtype=str),
            ITEM: pd.Series(item_ids, dtype=str),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(users))[filled],
            "score": scores.reshape(-1)[filled],
        }
    )
    if csv:
        frame[USER] = neutralise_formulas(frame[USER])
        frame[ITEM] = neutralise_formulas(frame[ITEM])
    return frame


def export_lists(
    rec: Recommender,
    out: str | Path,
    *,
    k: int = 10,
    batch_users: int = BATCH_USERS,
    on_progress: Progress | None = None,
) -> dict[str, object]:
    """Write the top-``k`` of every user with training history to ``out`` (CSV, or Parquet by suffix).

    Args:
        rec: the model.
        out: target file; ``.parquet`` / ``.pq`` writes Parquet, anything else CSV.
        k: list length (default: 10).
        batch_users: users ranked per step (default: 2048).
        on_progress: called as ``on_progress(users_done, users_total)`` after each batch (default: None).

    Returns:
        ``path``, ``format``, ``users``, ``rows`` and ``k``.
    """
    out = Path(out)
    n_items = rec.prep.split.n_items
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_items:
        raise ValueError(f"-k must be a whole number in [1, {n_items}] (the catalog size) (got {k!r})")
    if batch_users < 1:
        raise ValueError(f"batch_users must be positive (got {batch_users!r})")
    parquet = out.suffix.lower() in PARQUET_SUFFIXES
    _, _, exclude = held_out(rec.prep.split, "test")
    users = np.arange(rec.prep.split.n_users, dtype=np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    rows = 0
    try:
        writer = None
        for start in range(0, len(users), batch_users):
            batch = users[start : start + batch_users]
            found = top_k(rec.model, batch, exclude, int(k), batch_size=batch_users)
            frame = _frame(rec, batch, found.items, found.scores, csv=not parquet)
            rows += len(frame)
            if parquet:
                writer = _write_parquet(writer, tmp, frame)
            else:
                # float repr round-trips exactly, so an imported file audits like the model.
                frame.to_csv(tmp, mode="a", header=start == 0, index=False)
            if on_progress is not None:
                on_progress(min(start + batch_users, len(users)), len(users))
        if writer is not None:
            writer.close()
        os.chmod(tmp, 0o644)  # mkstemp makes it private; an export is meant to be shared
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"path": str(out), "format": "parquet" if parquet else "csv", "users": len(users), "rows": rows, "k": k}


def _write_parquet(writer: object, path: Path, frame: pd.DataFrame) -> object:
    import pyarrow as pa  # installed with streamlit; imported only when writing Parquet
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(str(path), table.schema)
    writer.write_table(table)
    return writer
