"""Read and validate an update's new interactions (and new catalog items) against a dataset.

Every problem is reported at once, naming file, line, column and value, with the loaders' own
checks; a bad file is rejected whole before anything is computed or written.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, COUNT, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset
from engine.data.validation import (
    Problems,
    Table,
    check_duplicate_rows,
    check_known,
    check_unique,
    clip,
    infer_attribute,
    interactions_frame,
    parse_counts,
    parse_ids,
    parse_ratings,
    parse_timestamps,
    read_table,
    require_columns,
    split_categories,
)

log = logging.getLogger(__name__)

# Files above this size (and without quotes) are checked CHUNK_ROWS lines at a time: a 50 MB file
# read whole peaked at 715 MB RSS while validated (every cell a Python str, plus the text); 450 MB in slices.
CHUNK_BYTES = 8 * 1024 * 1024
CHUNK_ROWS = 50_000


def read_updates(
    interactions: str | Path | pd.DataFrame,
    dataset: Dataset,
    *,
    items: str | Path | pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read and validate new interactions (and new catalog items) against ``dataset``.

    ``interactions`` has columns ``user_id, item_id[, rating | count][, timestamp]`` (``rating``
    is required when the dataset has explicit ratings, and must lie in its rating scale;
    ``count``, a finite number >= 0, when it has counts);
    every item must be in the catalog or in ``items``; new user ids are welcome. ``items``
    (``item_id, title[, categories][, text]``) lists items that are not in the catalog yet.

    Args:
        interactions: a CSV path, or a frame (validated as if it were that CSV).
        dataset: the dataset the model was trained on.
        items: new catalog items, as a path or frame (default: None).

    Returns:
        ``(interactions, items)`` in the canonical schema; ``items`` is None when not given.

    Raises:
        DataValidationError: listing every problem, each naming file, line, column and value.
    """
    problems = Problems()
    new_items = None
    if items is not None:
        items_table = _table(items, "new items", problems)
        if items_table is not None and require_columns(
            items_table, [ITEM, TITLE], problems, optional=[CATEGORIES, TEXT]
        ):
            new_items = _new_items(items_table, dataset, problems)
    items_name = _name(items, "new items")
    if not isinstance(interactions, pd.DataFrame) and _chunkable(Path(interactions)):
        frame = _read_in_chunks(Path(interactions), dataset, new_items, problems, items_name=items_name)
    else:
        frame = None
        table = _table(interactions, "new interactions", problems)
        if table is not None and require_columns(table, [USER, ITEM], problems, optional=[RATING, COUNT, TIMESTAMP]):
            frame = _new_interactions(table, dataset, new_items, problems, items_name=items_name)
    problems.raise_if_any()
    assert frame is not None  # guaranteed when there were no problems
    return frame, new_items


def _chunkable(path: Path) -> bool:
    """A large file without quotes: one record per line, so it can be checked a slice at a time."""
    try:
        if path.stat().st_size <= CHUNK_BYTES:
            return False
        with open(path, "rb") as fh:
            # A quoted field may hold a newline: such files are read whole, as before.
            return all(b'"' not in block for block in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return False  # read_table reports unreadable files with their own message


def _line_slices(path: Path) -> Iterator[tuple[bytes, list[bytes], int]]:
    """``(header, lines, data lines before them)`` for every :data:`CHUNK_ROWS` data lines."""
    with open(path, "rb") as fh:
        header = fh.readline()
        done = 0
        while True:
            lines = list(itertools.islice(fh, CHUNK_ROWS))
            if not lines and done:
                return
            yield header, lines, done
            if not lines:
                return
            done += len(lines)


def _read_in_chunks(
    path: Path, dataset: Dataset, new_items: pd.DataFrame | None, problems: Problems, *, items_name: str
) -> pd.DataFrame | None:
    """:func:`_new_interactions` a slice of the file at a time, in memory bounded by the slice.

    Each slice is written as a small CSV (the header plus its lines) and checked like the whole
    file; messages name the file's own line numbers. Rows that repeat a row of an earlier slice
    are found through 64-bit hashes of their (user, item, time) keys.
    """
    frames: list[pd.DataFrame] = []
    hashes: list[np.ndarray] = []
    lines_of: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="gatlens-update-") as tmp:
        chunk = Path(tmp) / path.name
        for header, lines, before in _line_slices(path):
            chunk.write_bytes(header + b"".join(lines))
            table = read_table(chunk, problems, expected="a header line and one row per interaction or item")
            if table is None or not require_columns(table, [USER, ITEM], problems, optional=[RATING, COUNT, TIMESTAMP]):
                return None
            _shift_lines(table, before)
            part = _new_interactions(table, dataset, new_items, problems, items_name=items_name)
            hashes.append(_key_hashes(part))
            lines_of.append(table.lines(np.arange(len(part))))
            frames.append(part)
            del table, lines
    frame = pd.concat(frames, ignore_index=True)
    _check_repeats_across_chunks(path.name, frame, hashes, lines_of, problems)
    return frame


def _shift_lines(table: Table, before: int) -> None:
    # The slice's line 2 is line before + 2 of the file: every message goes through table.lines.
    slice_lines = table.lines
    table.lines = lambda positions: slice_lines(positions) + before  # type: ignore[method-assign]


def _key_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[[USER, ITEM, TIMESTAMP]], index=False).to_numpy()


def _check_repeats_across_chunks(
    name: str, frame: pd.DataFrame, hashes: list[np.ndarray], lines_of: list[np.ndarray], problems: Problems
) -> None:
    """Rows repeating a row of an earlier slice (within a slice, check_duplicate_rows found them)."""
    if len(hashes) < 2:
        return
    keys = np.concatenate(hashes)
    chunk_of = np.repeat(np.arange(len(hashes)), [len(h) for h in hashes])
    order = np.argsort(keys, kind="stable")
    same = keys[order][1:] == keys[order][:-1]
    later, first = order[1:][same], order[:-1][same]
    across = chunk_of[later] != chunk_of[first]
    line = np.concatenate(lines_of)
    # Worded as check_duplicate_rows words a repeat inside one slice; no timestamp column: -1 stand-ins.
    columns = [USER, ITEM] + ([TIMESTAMP] if (frame[TIMESTAMP] != -1).any() else [])
    labels = ", ".join(map(repr, columns))
    messages = []
    for p, q in zip(later[across][: problems.per_check], first[across][: problems.per_check], strict=True):
        values = ", ".join(f"{c} {clip(str(frame[c].iat[int(p)]))!r}" for c in columns)
        messages.append(
            f"{name}, line {int(line[p])}, columns {labels}: got a duplicate of line {int(line[q])} ({values}), "
            "expected each row once; remove the repeated row"
        )
    if across.any():
        problems.add_many(messages, int(across.sum()))


def _name(source: Any, default: str) -> str:
    return Path(source).name if isinstance(source, str | Path) else default


def _table(source: str | Path | pd.DataFrame, default_name: str, problems: Problems) -> Table | None:
    if not isinstance(source, pd.DataFrame):
        return read_table(Path(source), problems, expected="a header line and one row per interaction or item")
    # A frame is checked exactly like the CSV it would be written as: line numbers refer to it.
    if CATEGORIES in source.columns:  # the catalog's tuples, written as the CSV format's "A|B"
        source = source.assign(
            **{CATEGORIES: source[CATEGORIES].map(lambda c: "|".join(c) if isinstance(c, tuple | list) else c)}
        )
    with tempfile.TemporaryDirectory(prefix="gatlens-update-") as tmp:
        path = Path(tmp) / "frame.csv"
        source.to_csv(path, index=False)
        return read_table(path, problems, name=default_name)


def _new_items(table: Table, dataset: Dataset, problems: Problems) -> pd.DataFrame:
    frame = table.frame
    ids = parse_ids(table, ITEM, problems)
    check_unique(table, ITEM, problems)
    known = dataset.items[ITEM]
    clash = np.flatnonzero(ids.isin(known).to_numpy())
    expected = f"a new item_id (it is already in the catalog of {dataset.name!r})"
    if len(clash):
        problems.add_many((table.cell(int(p), ITEM, expected) for p in clash[: problems.per_check]), len(clash))
    out = pd.DataFrame(
        {
            ITEM: ids.to_numpy(),
            TITLE: frame[TITLE].where(frame[TITLE] != "", ids).to_numpy(),
            CATEGORIES: split_categories(frame[CATEGORIES]) if CATEGORIES in frame.columns else [()] * len(frame),
            TEXT: frame[TEXT].to_numpy() if TEXT in frame.columns else np.full(len(frame), ""),
        }
    ).astype({ITEM: str, TITLE: str, TEXT: str})
    for column in dataset.items.columns:
        if column not in out.columns and column in frame.columns:
            out[column] = infer_attribute(frame[column]).to_numpy()
    return out


def _new_interactions(
    table: Table, dataset: Dataset, new_items: pd.DataFrame | None, problems: Problems, *, items_name: str
) -> pd.DataFrame:
    frame = table.frame
    users = parse_ids(table, USER, problems)
    items = parse_ids(table, ITEM, problems)
    ratings = None
    if dataset.counts:
        if COUNT in frame.columns:
            ratings = parse_counts(table, COUNT, problems)  # counts travel in the rating column
        else:
            problems.add(
                f"{table.name}, line 1: missing column {COUNT!r}; dataset {dataset.name!r} has counts, so "
                "every new interaction needs one (a finite number >= 0)"
            )
    elif dataset.rating_scale is not None:
        if RATING in frame.columns:
            ratings = parse_ratings(table, RATING, problems, dataset.rating_scale)
        else:
            lo, hi = dataset.rating_scale
            problems.add(
                f"{table.name}, line 1: missing column 'rating'; dataset {dataset.name!r} has explicit "
                f"ratings, so every new interaction needs one in [{lo:g}, {hi:g}]"
            )
    elif RATING in frame.columns or COUNT in frame.columns:
        column = RATING if RATING in frame.columns else COUNT
        log.warning("%s: dataset %r is implicit; the %s column is ignored", table.name, dataset.name, column)
    times = parse_timestamps(table, TIMESTAMP, problems) if TIMESTAMP in frame.columns else None
    known = set(dataset.items[ITEM])
    listed_in = f"the catalog of {dataset.name!r}"
    if new_items is not None:
        known |= set(new_items[ITEM])
        listed_in += f" or {items_name}"
    check_known(table, ITEM, known, problems, listed_in=listed_in)
    key = pd.DataFrame({USER: users, ITEM: items, TIMESTAMP: times if times is not None else -1})
    check_duplicate_rows(table, key, problems)
    _check_not_logged(table, key, dataset, problems)
    return interactions_frame(users, items, ratings, times)


def _check_not_logged(table: Table, key: pd.DataFrame, dataset: Dataset, problems: Problems) -> None:
    """Rows already in the dataset (same user, item and time) mean the file was applied before."""
    old = dataset.interactions
    old = old[old[USER].isin(set(key[USER]))]  # only the file's users can collide
    logged = pd.MultiIndex.from_arrays([old[USER], old[ITEM], old[TIMESTAMP]])
    mine = pd.MultiIndex.from_arrays([key[USER], key[ITEM], pd.to_numeric(key[TIMESTAMP])])
    positions = np.flatnonzero(mine.isin(logged))
    shown = positions[: problems.per_check]
    messages = [
        table.cell(
            int(p),
            USER,
            f"a new interaction (user {key[USER].iat[p]!r}, item {key[ITEM].iat[p]!r} at this time "
            f"is already in dataset {dataset.name!r}: was this file applied before?)",
        )
        for p in shown
    ]
    if len(positions):
        problems.add_many(messages, len(positions))
