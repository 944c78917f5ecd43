"""Collecting problems a user can fix, and the table they point into.

:class:`Problems` gathers every problem found in the files instead of stopping at
the first; :class:`Table` is one file read as text cells and knows how to turn a
row position into the line an editor shows. Messages look like::

    interactions.csv, line 7, column 'rating': got 'five', expected a number
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.errors import DataValidationError

MAX_PROBLEMS = 20  # lines shown in one report; the rest are counted
PER_CHECK = 5  # examples per kind of problem, so one flood cannot hide every other kind
MAX_VALUE_CHARS = 60  # values are quoted in messages; a whole paragraph helps nobody
# The csv module stores the limit in a C long; 2**31 - 1 fits on every platform.
_MAX_FIELD_LIMIT = 2**31 - 1


class Problems:
    """Collects user-fixable problems and raises them together.

    Args:
        limit: most problems listed in the error (default: ``MAX_PROBLEMS``);
            the rest are counted on a final line.
        per_check: most examples one vectorised check lists (default: ``PER_CHECK``).
    """

    def __init__(self, limit: int = MAX_PROBLEMS, per_check: int = PER_CHECK) -> None:
        self.limit = limit
        self.per_check = per_check
        self._messages: list[str] = []
        self._total = 0

    def __len__(self) -> int:
        return self._total

    def __bool__(self) -> bool:
        return self._total > 0

    @property
    def messages(self) -> list[str]:
        """The problems kept so far (at most ``limit``)."""
        return list(self._messages)

    def add(self, message: str) -> None:
        """Record one problem."""
        self._total += 1
        if len(self._messages) < self.limit:
            self._messages.append(message)

    def add_many(self, messages: Iterable[str], total: int) -> None:
        """Record ``total`` problems of one kind, of which ``messages`` are examples."""
        shown = 0
        for message in messages:
            if shown >= self.per_check:
                break
            if len(self._messages) < self.limit:
                self._messages.append(message)
            shown += 1
        self._total += max(total, shown)

    def raise_if_any(self) -> None:
        """Raise :class:`DataValidationError` listing the problems, if there are any."""
        if not self._total:
            return
        lines = list(self._messages)
        hidden = self._total - len(lines)
        if hidden:
            lines.append(f"... and {hidden} more problem(s) not listed; fix these and run again")
        err = DataValidationError(lines)
        # DataValidationError counts its list entries; with a truncated list the
        # real count is larger, so state it.
        if hidden:
            err.args = (f"{lines[0]} (and {self._total - 1} more problem(s))",)
        raise err


@dataclass
class Table:
    """One file read as text cells.

    Attributes:
        name: how messages name the file (e.g. ``"interactions.csv"``).
        frame: every cell a stripped ``str`` (``""`` when empty); columns renamed
            to canonical names where a mapping applied.
        header: whether line 1 is a header.
        source_columns: canonical column -> the name the user sees in the file.
    """

    name: str
    frame: pd.DataFrame
    header: bool
    source_columns: dict[str, str]
    _text: str = field(repr=False)
    _sep: str = field(repr=False)
    _quoting: int = field(repr=False)
    _lines: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def sep(self) -> str:
        """The field separator the file was read with."""
        return self._sep

    def column_label(self, column: str) -> str:
        """The column as the user knows it (the file's header name)."""
        return self.source_columns.get(column, column)

    def lines(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        """Editor line numbers (1-based, header = line 1) of data rows at ``positions``."""
        if self._lines is None:
            self._lines = _record_lines(self._text, self._sep, self._quoting, self.header)
        return self._lines[np.asarray(positions, dtype=np.int64)]

    def cell(self, position: int, column: str, expected: str, value: str | None = None) -> str:
        """One problem message for the cell at row ``position`` of ``column``."""
        line = int(self.lines([position])[0])
        if value is None:
            value = self.frame[column].iat[position]
        return cell_message(self.name, line, self.column_label(column), value, expected)


def cell_message(name: str, line: int, column: str, value: str, expected: str) -> str:
    """Format ``"<file>, line <n>, column '<col>': got '<value>', expected <what>"``."""
    return f"{name}, line {line}, column {column!r}: got {clip(value)!r}, expected {expected}"


def clip(value: object) -> str:
    """``value`` as a string, shortened for a one-line message."""
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _record_lines(text: str, sep: str, quoting: int, header: bool) -> np.ndarray:
    """Start line of every data record, skipping blank lines as pandas does.

    Exact even when quoted fields span lines; only run on the error path.
    """
    starts = [start for start, record in csv_records(text, sep, quoting) if not _blank(record)]
    return np.asarray(starts[1:] if header else starts, dtype=np.int64)


def _blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def csv_records(text: str, sep: str, quoting: int) -> Iterator[tuple[int, list[str]]]:
    """``(start line, fields)`` of every record of ``text``, blank ones included.

    The csv module refuses fields over its process-wide limit (131,072 characters
    by default) although pandas reads them, so a long description cell would turn
    a problem report into a crash. No field can be longer than the text it comes
    from, so the limit is raised to that bound while this reader runs and then
    restored (it is global state other code may rely on).
    """
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, min(len(text) + 1, _MAX_FIELD_LIMIT)))
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=False)
        previous_end = 0
        for record in reader:
            yield previous_end + 1, record
            previous_end = reader.line_num
    finally:
        csv.field_size_limit(previous)


def first_record(text: str, sep: str, quoting: int) -> list[str]:
    """The first record of ``text`` (the header line), however long its fields."""
    for _, record in csv_records(text, sep, quoting):
        return record
    return []
