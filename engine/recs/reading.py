"""Reading and validating another system's recommendation lists (CSV or Parquet).

A lists file has one row per recommended item: ``user_id, item_id, rank[, score]`` (other
column names are mapped with ``--columns a=user_id,...``). Validation follows the data layer
(:mod:`engine.data.validation`): every problem is collected, each message names the file, the
line (CSV, as an editor counts them) or row (Parquet, from 1), the column, the value and what
was expected, and nothing is returned from a file with a problem::

    recs.csv, line 7, column 'rank': got '0', expected a whole number >= 1

Checks, in order (the list-shape checks run only on rows that passed the cell checks, so one
typo does not also report a "gap" in its user's ranks): empty file, encoding, columns; empty,
unknown or NUL ids, ranks that are not whole numbers >= 1, scores that are not finite numbers;
a repeated (user, rank) or (user, item); ranks of a user that do not run 1, 2, 3, ...; lists
longer or shorter than the others; scores that increase with rank.

Users the dataset knows but the split has no training history for cannot be audited (the
model-side audit ranks only users with history); their rows are left out and counted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.idmap import IdMap
from engine.data.problems import Problems, Table, clip
from engine.data.reading import read_table
from engine.data.schema import ITEM, USER
from engine.data.validation import apply_columns, parse_ids, require_columns
from engine.recs.model import FILE, RANK, rank_scores

log = logging.getLogger(__name__)

RANK_COL, SCORE_COL = "rank", "score"
REQUIRED = (USER, ITEM, RANK_COL)
PARQUET_SUFFIXES = (".parquet", ".pq")
EXPECTED = "columns user_id,item_id,rank[,score], one row per recommended item"
# Characters a spreadsheet treats as the start of a formula; the exporter puts a ' before them.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class SourceFile:
    """The imported file, as its card records it."""

    name: str
    path: str
    sha256: str
    bytes: int
    format: str  # "csv" or "parquet"


@dataclass
class ParsedLists:
    """A validated lists file in internal indices.

    Attributes:
        users: ``int64 [N]`` internal user indices, ascending.
        items: ``int64 [N, L]`` internal item indices, best first.
        scores: ``float64 [N, L]`` the file's scores, or rank-derived ones (``score_source``).
        score_source: ``"file"`` or ``"rank"``.
        rows: data rows in the file.
        users_without_history: listed users the dataset knows but the split has no training
            history for (their rows are left out).
        source: the file's name, path, sha256, size and format.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    score_source: str
    rows: int
    users_without_history: int
    source: SourceFile


def file_digest(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class _Cells:
    """A read file as text cells, and how messages name a row of it."""

    def __init__(self, table: Table, parquet: bool) -> None:
        self.table = table
        self.parquet = parquet

    @property
    def frame(self) -> pd.DataFrame:
        return self.table.frame

    def where(self, positions: np.ndarray) -> list[str]:
        """``"line N"`` (CSV, header = line 1) or ``"row N"`` (Parquet, from 1) of data rows."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.parquet:
            return [f"row {int(p) + 1}" for p in positions]
        return [f"line {int(n)}" for n in self.table.lines(positions)]

    def message(self, where: str, column: str, value: object, expected: str) -> str:
        label = self.table.column_label(column)
        return f"{self.table.name}, {where}, column {label!r}: got {clip(value)!r}, expected {expected}"

    def report(
        self, mask: np.ndarray, column: str, expected: str, problems: Problems, values: pd.Series | None = None
    ) -> None:
        """One message per flagged row (the first few), every flagged row counted."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if not len(positions):
            return
        shown = positions[: problems.per_check]
        source = self.frame[column] if values is None else values
        messages = (
            self.message(w, column, source.iat[int(p)], expected) for p, w in zip(shown, self.where(shown), strict=True)
        )
        problems.add_many(messages, len(positions))


def _read_parquet(path: Path, problems: Problems, expected: str) -> Table | None:
    """A Parquet file as text cells (a Table without source text: rows are named by number)."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors subclass these
        problems.add(f"{path.name}: cannot read it as Parquet ({exc}); expected a Parquet file with {expected}")
        return None
    if frame.empty:
        problems.add(f"{path.name}: the file has no rows; expected {expected}")
        return None
    cells = pd.DataFrame({str(c): frame[c].astype(str).where(frame[c].notna(), "").str.strip() for c in frame.columns})
    return Table(path.name, cells, True, {str(c): str(c) for c in frame.columns}, _text="", _sep=",", _quoting=0)


def read_cells(
    path: Path,
    problems: Problems,
    *,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
    required: tuple[str, ...] = REQUIRED,
    optional: tuple[str, ...] = (SCORE_COL,),
    expected: str = EXPECTED,
) -> _Cells | None:
    """Read a CSV or Parquet file (by suffix: ``.parquet`` / ``.pq``) as text cells and check its columns.

    Args:
        path: the file.
        problems: where problems go.
        columns: file column -> canonical name (default: None).
        encoding: the CSV file's encoding (default: ``"utf-8"``).
        required: canonical columns the file must have (default: ``user_id, item_id, rank``).
        optional: canonical columns it may have (default: ``score``).
        expected: what the file should hold, for messages (default: the lists layout).
    """
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    if parquet:
        if not path.is_file():
            problems.add(f"{path.name}: file not found at {path}; expected a Parquet file with {expected}")
            return None
        table = _read_parquet(path, problems, expected)
    else:
        table = read_table(path, problems, encoding=encoding, expected=f"a CSV file with {expected}")
    if table is None:
        return None
    apply_columns(table, columns, problems)
    if not require_columns(table, required, problems, optional=optional):
        return None
    return _Cells(table, parquet)


def parse_known_ids(cells: _Cells, column: str, known: pd.Index, problems: Problems, expected: str) -> np.ndarray:
    """Positions of ``column``'s ids in ``known`` (-1: unknown, reported). An id an export
    protected against spreadsheet formulas (``'=x``) is read back as ``=x`` when only that is known."""
    values = parse_ids(cells.table, column, problems)
    index = known.get_indexer(values)
    quoted = (index < 0) & values.str.startswith("'").to_numpy(dtype=bool)
    if quoted.any():
        stripped = values[quoted].str.slice(1)
        protected = stripped.str.startswith(FORMULA_START).to_numpy(dtype=bool)
        index[np.flatnonzero(quoted)[protected]] = known.get_indexer(stripped[protected])
    cells.report((index < 0) & (values != "").to_numpy(), column, expected, problems)
    return index


def numbers(cells: _Cells, column: str) -> np.ndarray:
    """``float64``: the column's numbers, NaN where a cell is empty or not a number."""
    values = cells.frame[column]
    # A clean column casts in one vectorised step: Arrow's parser (correctly rounded, so a score
    # written with repr() reads back exactly) takes 0.04 s for 2M cells, to_numeric 2 s.
    for dtype in ("float64[pyarrow]", "float64"):
        try:
            return values.astype(dtype).to_numpy(dtype=np.float64, na_value=np.nan)
        except (ValueError, TypeError, ImportError, NotImplementedError):
            continue
    return pd.to_numeric(values.where(values != "", None), errors="coerce").to_numpy(dtype=np.float64)


def _duplicates(cells: _Cells, users: np.ndarray, values: np.ndarray, what: str, problems: Problems) -> None:
    """Rows repeating an earlier row's (user, ``what``) pair, naming the earlier row."""
    # A stable sort puts equal pairs next to each other in file order: the first of a run is the
    # earliest row, every other one a repeat of it (numpy: 3x faster than DataFrame.duplicated).
    order = np.lexsort((values, users))
    same = (users[order][1:] == users[order][:-1]) & (values[order][1:] == values[order][:-1])
    if not same.any():
        return
    run_start = np.maximum.accumulate(np.where(np.r_[False, same], 0, np.arange(len(order))))
    first = np.empty(len(order), dtype=np.int64)
    first[order] = order[run_start]
    repeated = np.sort(order[1:][same])
    shown = repeated[: problems.per_check]
    column = RANK_COL if what == "rank" else ITEM
    user_ids = cells.frame[USER]
    messages = (
        cells.message(
            w,
            column,
            cells.frame[column].iat[int(p)],
            f"each {what} once per user (user {clip(user_ids.iat[int(p)])!r} already has it on {e})",
        )
        for p, w, e in zip(shown, cells.where(shown), cells.where(first[shown]), strict=True)
    )
    problems.add_many(messages, len(repeated))


def _check_cells(cells: _Cells, idmap: IdMap, known_users: pd.Index, problems: Problems) -> dict[str, np.ndarray]:
    """Cell-level checks; returns the parsed columns (user positions in ``known_users``, item
    indices, ranks, scores or None)."""
    user_pos = parse_known_ids(cells, USER, known_users, problems, "a user_id of this dataset")
    item_idx = parse_known_ids(cells, ITEM, pd.Index(idmap.items), problems, "an item_id of this dataset's catalog")
    ranks = numbers(cells, RANK_COL)
    bad_rank = ~np.isfinite(ranks) | (ranks < 1) | (ranks != np.floor(ranks))
    cells.report(bad_rank, RANK_COL, "a whole number >= 1 (1 = the top of the list)", problems)
    scores = None
    if SCORE_COL in cells.frame.columns:
        scores = numbers(cells, SCORE_COL)
        cells.report(
            ~np.isfinite(scores),
            SCORE_COL,
            "a finite number on every row (or leave the score column out to use rank-derived scores)",
            problems,
        )
    return {"user": user_pos, "item": item_idx, "rank": ranks, "score": scores}


def _check_shape(cells: _Cells, rows: np.ndarray, parsed: dict[str, np.ndarray], problems: Problems) -> int:
    """List-shape checks on rows sorted by (user, rank); returns the common list length."""
    users, ranks = parsed["user"][rows], parsed["rank"][rows].astype(np.int64)
    user_ids = cells.frame[USER]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    expected = np.arange(len(users)) - np.repeat(starts, sizes) + 1
    gap = ranks != expected
    first_gap = np.unique(np.searchsorted(starts, np.flatnonzero(gap), side="right") - 1)
    messages = []
    for s in first_gap[: problems.per_check]:
        at = starts[s] + int(np.argmax(gap[starts[s] : starts[s] + sizes[s]]))
        p = int(rows[at])
        messages.append(
            cells.message(
                cells.where([p])[0],
                RANK_COL,
                cells.frame[RANK_COL].iat[p],
                f"rank {int(expected[at])} for user {clip(user_ids.iat[p])!r}: a list's ranks run 1, 2, 3, ... "
                "without gaps",
            )
        )
    problems.add_many(messages, len(first_gap))
    values, counts = np.unique(sizes, return_counts=True)
    length = int(values[np.argmax(counts)])  # the most common length; a tie goes to the shorter
    odd = np.flatnonzero(sizes != length)
    messages = []
    for s in odd[: problems.per_check]:
        p = int(rows[starts[s]])
        messages.append(
            cells.message(
                cells.where([p])[0],
                USER,
                user_ids.iat[p],
                f"a list of {length} items like {int(counts.max()):,} other users (got {int(sizes[s])}): every list "
                "must be equally long; cut the longer lists or leave the shorter users out",
            )
        )
    problems.add_many(messages, len(odd))
    if parsed["score"] is not None:
        scores = parsed["score"][rows]
        rise = np.flatnonzero((scores[1:] > scores[:-1]) & (users[1:] == users[:-1])) + 1
        messages = [
            cells.message(
                cells.where([int(rows[i])])[0],
                SCORE_COL,
                cells.frame[SCORE_COL].iat[int(rows[i])],
                f"a score <= {cells.frame[SCORE_COL].iat[int(rows[i - 1])]} (the score at rank {int(ranks[i - 1])}): "
                "scores must not increase with rank; leave the score column out to use rank-derived scores",
            )
            for i in rise[: problems.per_check]
        ]
        problems.add_many(messages, len(rise))
    return length


def read_lists(
    path: str | Path,
    *,
    idmap: IdMap,
    known_users: pd.Index,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
) -> ParsedLists:
    """Read, validate and index a lists file.

    Args:
        path: the CSV or Parquet file (by suffix: ``.parquet`` / ``.pq`` is Parquet).
        idmap: the split's id map (users with training history, the whole catalog).
        known_users: every user id the dataset knows (interactions and users table).
        columns: file column -> canonical name, e.g. ``{"uid": "user_id"}`` (default: None).
        encoding: the CSV file's encoding (default: ``"utf-8"``).

    Raises:
        DataValidationError: listing every problem (file, line or row, column, value, expectation).
    """
    path = Path(path)
    problems = Problems()
    cells = read_cells(path, problems, columns=columns, encoding=encoding)
    if cells is None:
        problems.raise_if_any()
        raise AssertionError("read_cells returned nothing without a problem")  # pragma: no cover
    parsed = _check_cells(cells, idmap, known_users, problems)
    # Rows with a bad cell get a key of their own, so they are not also reported as repeats.
    own = -1 - np.arange(len(cells.frame))
    user_ok = np.where(parsed["user"] >= 0, parsed["user"], own)
    ranks = parsed["rank"]
    rank_ok = np.where(np.isfinite(ranks) & (ranks >= 1) & (ranks == np.floor(ranks)), np.nan_to_num(ranks), own)
    _duplicates(cells, user_ok, rank_ok.astype(np.int64), "rank", problems)
    _duplicates(cells, user_ok, np.where(parsed["item"] >= 0, parsed["item"], own), "item", problems)
    problems.raise_if_any()
    # Users the dataset knows but the split has no history for: left out (counted), not an error.
    internal = pd.Index(idmap.users).get_indexer(known_users)[parsed["user"]]  # per known user, then per row
    keep = np.flatnonzero(internal >= 0)
    without_history = int(pd.unique(parsed["user"][internal < 0]).size)
    parsed["user"] = internal
    rows = keep[np.lexsort((parsed["rank"][keep], internal[keep]))]
    if not len(rows):
        problems.add(
            f"{path.name}: none of the {len(internal):,} rows is for a user with training history in this "
            "dataset's split; expected lists for the users the models are trained on"
        )
        problems.raise_if_any()
    length = _check_shape(cells, rows, parsed, problems)
    problems.raise_if_any()
    users = internal[rows][::length]
    items = parsed["item"][rows].reshape(-1, length)
    if parsed["score"] is not None:
        scores, source = parsed["score"][rows].reshape(-1, length), FILE
    else:
        scores, source = rank_scores(len(users), length), RANK
    sha, size = file_digest(path)
    fmt = "parquet" if cells.parquet else "csv"
    info = SourceFile(path.name, str(path.resolve()), sha, size, fmt)
    if without_history:
        log.warning("%s: %d listed user(s) have no training history in the split; left out", path.name, without_history)
    return ParsedLists(users, items, scores, source, len(cells.frame), without_history, info)
