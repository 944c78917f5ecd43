"""Reading and checking user-supplied tables, reporting every problem a user can fix.

Every loader reads its files through :func:`read_table` and parses columns with the
``parse_*`` / ``check_*`` helpers here, which collect problems into a :class:`Problems`
instead of stopping at the first one. Each message is one line naming the file, the
line as an editor shows it (header = line 1), the column, the bad value and what was
expected::

    interactions.csv, line 7, column 'rating': got 'five', expected a number

The checks are vectorised (pandas) so a clean file costs little; exact line numbers
are computed only when there is something to report.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import logging
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, DataValidationError

logger = logging.getLogger(__name__)

MAX_PROBLEMS = 20  # lines shown in one report; the rest are counted
PER_CHECK = 5  # examples per kind of problem, so one flood cannot hide every other kind
MAX_VALUE_CHARS = 60  # values are quoted in messages; a whole paragraph helps nobody

# Unix seconds above this are almost certainly milliseconds (it is the year 5138).
_MILLISECONDS_FLOOR = 100_000_000_000
_EPOCH = pd.Timestamp(0, tz="UTC")
_INTEGER = re.compile(r"[+-]?\d+")
_SURROGATE = re.compile("[\udc80-\udcff]")

# Common spellings of the canonical columns, for "did you mean" suggestions only:
# nothing is renamed without the user saying so (an alias can be ambiguous).
ALIASES: dict[str, tuple[str, ...]] = {
    USER: ("user", "userid", "uid", "customer", "customerid", "visitor", "visitorid", "member", "memberid"),
    ITEM: ("item", "itemid", "iid", "movie", "movieid", "product", "productid", "sku", "asin", "articleid"),
    RATING: ("score", "stars", "rate", "value", "ratingvalue"),
    TIMESTAMP: ("time", "ts", "date", "datetime", "eventtime", "createdat", "unixtime"),
    TITLE: ("name", "itemname", "movietitle", "productname"),
    CATEGORIES: ("genres", "genre", "category", "tags"),
    TEXT: ("description", "desc", "overview", "summary", "plot"),
}


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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=False)
    starts: list[int] = []
    previous_end = 0
    for record in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        starts.append(start)
    return np.asarray(starts[1:] if header else starts, dtype=np.int64)


# --------------------------------------------------------------------------- files


def require_files(folder: Path, names: Sequence[str], problems: Problems, *, layout: str) -> bool:
    """Check that ``folder`` holds every file in ``names``; False (and problems) when not.

    Args:
        folder: the data folder.
        names: required file names.
        problems: where problems go.
        layout: what the folder should look like, for the message (e.g. ``"the
            official MovieLens 100K layout"``).
    """
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        problems.add(f"{folder}: the data folder {what}; expected a folder with {layout}")
        return False
    ok = True
    for name in names:
        if not (folder / name).is_file():
            problems.add(f"{name}: file not found in {folder}; expected {layout}")
            ok = False
    return ok


def decode(
    raw: bytes,
    name: str,
    problems: Problems,
    *,
    encoding: str = "utf-8",
    sep: str = ",",
    columns: Sequence[str] | None = None,
) -> str | None:
    """Decode a file's bytes, reporting undecodable bytes by line, column and value.

    Args:
        raw: the file's bytes.
        name: the file name for messages.
        problems: where problems go.
        encoding: the expected encoding (default: ``"utf-8"``; a UTF-8 byte-order
            mark is accepted and dropped).
        sep: field separator, to name the column of a bad byte (default: ``","``).
        columns: column names of a headerless file (default: None, read line 1).

    Returns:
        The text, or None when it could not be decoded (problems were added).
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError as exc:
        raise ValueError(f"unknown encoding (got {encoding!r})") from exc
    if codec == "utf-8" and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        pass

    guess = _guess_encoding(raw)
    text = raw.decode(codec, errors="surrogateescape")
    header = columns
    if header is None:
        first = text.split("\n", 1)[0].rstrip("\r")
        header = [c.strip() for c in _SURROGATE.sub("?", first).split(sep)]
    bad_lines = []
    offset = 0  # byte offset of the current line's start
    for number, line in enumerate(text.split("\n"), start=1):
        match = _SURROGATE.search(line)
        if match:
            bad_lines.append((number, line, match.start(), offset))
        if len(bad_lines) > problems.per_check:
            break
        offset += len(line.encode(codec, errors="surrogateescape")) + 1
    total = sum(1 for line in text.split("\n") if _SURROGATE.search(line))
    messages = []
    for number, line, at, line_offset in bad_lines:
        before = line[:at]
        # Commas may sit inside quoted values; the MovieLens separators never do.
        index = len(next(csv.reader([before + "x"], delimiter=sep))) - 1 if sep == "," else before.count(sep)
        column = header[index] if 0 <= index < len(header) else f"field {index + 1}"
        fields = next(csv.reader([line.rstrip("\r")], delimiter=sep)) if sep == "," else line.split(sep)
        field_text = fields[index].strip() if index < len(fields) else line
        value = field_text.encode(codec, errors="surrogateescape").decode(guess, errors="replace")
        byte = ord(line[at]) - 0xDC00
        byte_offset = line_offset + len(before.encode(codec, errors="surrogateescape"))
        messages.append(
            f"{name}, line {number}, column {column!r}: got {clip(value)!r} (read as {guess}), "
            f"expected {codec} text: byte 0x{byte:02x} at offset {byte_offset} is not valid {codec}; "
            f"the file looks {_ENCODING_NAMES.get(guess, guess)} encoded: re-save it as UTF-8 "
            f"or load it with encoding={guess!r}"
        )
    problems.add_many(messages, total)
    return None


_ENCODING_NAMES = {"latin-1": "Latin-1 (ISO-8859-1)", "cp1252": "Windows-1252", "utf-16": "UTF-16"}


def _guess_encoding(raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # Bytes 0x80-0x9f are control codes in Latin-1 but curly quotes, dashes and the
    # euro sign in Windows-1252, which is what spreadsheet exports usually are.
    if re.search(rb"[\x80-\x9f]", raw):
        try:
            raw.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            pass
    return "latin-1"


def read_table(
    path: Path,
    problems: Problems,
    *,
    name: str | None = None,
    sep: str = ",",
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoting: bool = True,
    expected: str = "",
) -> Table | None:
    """Read a delimited file as text cells, recording problems instead of raising.

    Args:
        path: the file.
        problems: where problems go.
        name: how messages name the file (default: the file name).
        sep: field separator (default: ``","``); ``"::"`` is accepted for the
            MovieLens ``.dat`` files.
        names: column names of a headerless file (default: None, line 1 is a header).
        encoding: the file's encoding (default: ``"utf-8"``).
        quoting: whether ``"`` quotes fields (default: True; the MovieLens ``|``
            and ``::`` files do not quote, and titles contain bare quotes).
        expected: what the file should contain, for the empty-file message.

    Returns:
        The table, or None when the file is missing, empty, undecodable or ragged.
    """
    name = name or path.name
    if not path.is_file():
        problems.add(f"{name}: file not found at {path}; expected {expected or 'a delimited text file'}")
        return None
    raw = path.read_bytes()
    if not raw.strip():
        problems.add(f"{name}: the file is empty; expected {expected or 'a header line and data rows'}")
        return None
    text = decode(raw, name, problems, encoding=encoding, sep=sep, columns=names)
    if text is None:
        return None
    if len(sep) > 1:
        # pandas' C parser takes one-character separators only; "::" never occurs
        # inside MovieLens fields, so a tab stands in for it losslessly.
        text = text.replace(sep, "\t")
        sep = "\t"
    quote_mode = csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
    header = names is None
    try:
        with warnings.catch_warnings():
            # pandas only *warns* when every row has more fields than the header
            # and then drops the extra values; that is a problem to report.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                header=0 if header else None,
                names=names,
                dtype=str,
                na_filter=False,
                keep_default_na=False,
                index_col=False,
                quoting=quote_mode,
                skip_blank_lines=True,
                engine="c",
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        _report_ragged(text, name, sep, quote_mode, header, names, problems)
        return None
    except pd.errors.EmptyDataError:
        problems.add(f"{name}: the file is empty; expected {expected or 'a header line and data rows'}")
        return None
    if header:
        seen: dict[str, int] = {}
        raw_header = next(csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quote_mode))
        for position, column in enumerate(raw_header, start=1):
            column = column.strip()
            if column in seen:
                problems.add(
                    f"{name}, line 1, column {column!r}: got the name twice (fields {seen[column]} "
                    f"and {position}), expected unique column names"
                )
            seen.setdefault(column, position)
        if len(seen) < len(raw_header):
            return None  # columns cannot be told apart; reported above
        frame.columns = [c.strip() for c in raw_header]
        if len(frame) == 0:
            problems.add(f"{name}, line 2: got no data rows after the header, expected at least one row")
            return None
    frame = frame.fillna("")
    for column in frame.columns:
        frame[column] = frame[column].str.strip()
    return Table(
        name=name,
        frame=frame.reset_index(drop=True),
        header=header,
        source_columns={c: c for c in frame.columns},
        _text=text,
        _sep=sep,
        _quoting=quote_mode,
    )


def _report_ragged(
    text: str,
    name: str,
    sep: str,
    quoting: int,
    header: bool,
    names: Sequence[str] | None,
    problems: Problems,
) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=False)
    expected_fields: int | None = len(names) if names is not None else None
    columns = ",".join(names) if names is not None else ""
    messages, total, previous_end = [], 0, 0
    for record in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if expected_fields is None:
            expected_fields, columns = len(record), sep.join(record)
            continue
        if len(record) > expected_fields:
            total += 1
            if len(messages) < problems.per_check:
                row = sep.join(record)
                messages.append(
                    f"{name}, line {start}, column {len(record)}: got {len(record)} fields "
                    f"({clip(row)!r}), expected {expected_fields} ({columns}); "
                    f"remove the extra {sep!r} or quote values that contain it"
                )
    if total:
        problems.add_many(messages, total)
    else:  # pragma: no cover - pandas rejected something the csv module accepts
        problems.add(f"{name}: could not be parsed as {sep!r}-separated text; check its quoting")


# ------------------------------------------------------------------------- columns


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def suggest_column(wanted: str, candidates: Sequence[str]) -> str | None:
    """The candidate column that most likely means ``wanted`` (None when nothing is close)."""
    if not candidates:
        return None
    by_norm = {_normalise(c): c for c in candidates}
    for alias in (_normalise(wanted), *ALIASES.get(wanted, ())):
        if alias in by_norm:
            return by_norm[alias]
    close = difflib.get_close_matches(_normalise(wanted), list(by_norm), n=1, cutoff=0.6)
    return by_norm[close[0]] if close else None


def apply_columns(table: Table, columns: Mapping[str, str] | None, problems: Problems) -> set[str]:
    """Rename ``table``'s columns by a file-column -> canonical-name mapping.

    Returns:
        The mapping keys that matched a column of this table.
    """
    if not columns:
        return set()
    used = {k for k in columns if k in table.frame.columns}
    if not used:
        return used
    renamed = [columns.get(c, c) for c in table.frame.columns]
    seen: dict[str, str] = {}
    for original, new in zip(table.frame.columns, renamed, strict=True):
        if new in seen:
            problems.add(
                f"{table.name}, line 1, column {original!r}: got a second column named {new!r} "
                f"(after mapping; {seen[new]!r} is already {new!r}), expected one column per name"
            )
        seen.setdefault(new, original)
    table.source_columns = {new: original for original, new in zip(table.frame.columns, renamed, strict=True)}
    table.frame.columns = renamed
    return used


def require_columns(
    table: Table,
    required: Sequence[str],
    problems: Problems,
    *,
    optional: Sequence[str] = (),
    flag: str = "--columns",
) -> bool:
    """Check the header holds every ``required`` column, suggesting the closest names.

    Also logs a warning when an ``optional`` column is absent but a likely
    spelling of it is present (an implicit log by accident is easy to miss).

    Returns:
        True when every required column is present.
    """
    present = list(table.frame.columns)
    canonical = set(required) | set(optional)
    spare = [c for c in present if c not in canonical]
    ok = True
    for wanted in required:
        if wanted in present:
            continue
        ok = False
        guess = suggest_column(wanted, spare)
        if guess is not None:
            problems.add(
                f"{table.name}, line 1: missing column {wanted!r} (found {guess!r}; did you mean "
                f"{wanted!r}? use {flag} {guess}={wanted})"
            )
        else:
            found = ", ".join(repr(c) for c in present) or "none"
            problems.add(
                f"{table.name}, line 1: missing column {wanted!r} (found {found}); name a column "
                f"{wanted!r} or map one with {flag} <name>={wanted}"
            )
    for wanted in optional:
        if wanted not in present:
            guess = suggest_column(wanted, spare)
            if guess is not None:
                logger.warning(
                    "%s has no %r column but has %r; it is ignored (map it with %s %s=%s)",
                    table.name,
                    wanted,
                    guess,
                    flag,
                    guess,
                    wanted,
                )
    return ok


# -------------------------------------------------------------------------- values


def _report(
    table: Table,
    mask: np.ndarray | pd.Series,
    column: str,
    expected: str,
    problems: Problems,
    values: pd.Series | None = None,
) -> None:
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(positions) == 0:
        return
    shown = positions[: problems.per_check]
    lines = table.lines(shown)
    source = table.frame[column] if values is None else values
    label = table.column_label(column)
    messages = (
        cell_message(table.name, int(line), label, source.iat[int(p)], expected)
        for p, line in zip(shown, lines, strict=True)
    )
    problems.add_many(messages, len(positions))


def parse_ids(table: Table, column: str, problems: Problems) -> pd.Series:
    """The id column as ``str``; empty ids are problems."""
    values = table.frame[column]
    _report(table, values == "", column, f"a non-empty {column}", problems)
    return values.astype(str)


def parse_ratings(
    table: Table, column: str, problems: Problems, scale: tuple[float, float] | None = None
) -> pd.Series:
    """The rating column as float64; non-numbers and values outside ``scale`` are problems.

    Args:
        table: the table.
        column: the rating column.
        problems: where problems go.
        scale: inclusive (min, max) the ratings must lie in (default: None, any number).
    """
    values = table.frame[column]
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce").astype("float64")
    bad = ~np.isfinite(numbers.to_numpy())
    _report(table, bad, column, "a number", problems)
    if scale is not None:
        low, high = scale
        outside = ~bad & ((numbers < low) | (numbers > high)).to_numpy()
        _report(table, outside, column, f"a rating in the scale [{low:g}, {high:g}]", problems)
    return numbers


def parse_timestamps(table: Table, column: str, problems: Problems) -> pd.Series:
    """The time column as int64 Unix seconds (``-1`` where the cell is empty).

    Accepts integer (or fractional, floored) Unix seconds and ISO 8601 dates or
    date-times (``2021-03-04``, ``2021-03-04T10:00:00``, with or without an offset;
    naive times are read as UTC). Milliseconds and times before 1970 are problems:
    ``-1`` is the "unknown" marker and a millisecond log would make every recency
    weight wrong.
    """
    values = table.frame[column]
    empty = (values == "").to_numpy()
    numbers = pd.to_numeric(values.where(~empty, None), errors="coerce").astype("float64").to_numpy()
    seconds = np.full(len(values), -1, dtype=np.int64)
    is_number = np.isfinite(numbers)
    # Clipped so absurd values stay representable; they are reported below.
    seconds[is_number] = np.floor(np.clip(numbers[is_number], -(2.0**62), 2.0**62)).astype(np.int64)
    rest = ~empty & ~is_number
    bad = np.zeros(len(values), dtype=bool)
    if rest.any():
        dates = pd.to_datetime(values[rest], format="ISO8601", utc=True, errors="coerce")
        ok = dates.notna().to_numpy()
        parsed = ((dates[ok] - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
        index = np.flatnonzero(rest)
        seconds[index[ok]] = parsed
        bad[index[~ok]] = True
    _report(
        table,
        bad,
        column,
        "Unix seconds (an integer) or an ISO 8601 date such as '2021-03-04' or '2021-03-04T10:00:00'",
        problems,
    )
    _report(
        table,
        is_number & (numbers >= _MILLISECONDS_FLOOR),
        column,
        "Unix seconds (this looks like milliseconds: divide by 1000)",
        problems,
    )
    _report(table, ~empty & ~bad & (seconds < 0), column, "a time at or after 1970-01-01", problems)
    return pd.Series(seconds, index=values.index, name=column)


def check_unique(table: Table, column: str, problems: Problems) -> None:
    """Repeated values in ``column`` are problems naming the line of the first one."""
    values = table.frame[column]
    repeated = values.duplicated(keep="first").to_numpy() & (values != "").to_numpy()
    positions = np.flatnonzero(repeated)
    if len(positions) == 0:
        return
    order = pd.Series(np.arange(len(values)), index=values.index)
    first_position = order.groupby(values.to_numpy()).transform("min").to_numpy()
    shown = positions[: problems.per_check]
    lines = table.lines(shown)
    first_lines = table.lines(first_position[shown])
    label = table.column_label(column)
    messages = (
        cell_message(
            table.name,
            int(line),
            label,
            values.iat[int(p)],
            f"a unique {column} (already on line {int(first)})",
        )
        for p, line, first in zip(shown, lines, first_lines, strict=True)
    )
    problems.add_many(messages, len(positions))


def check_known(
    table: Table, column: str, known: pd.Index | pd.Series | set[str], problems: Problems, *, listed_in: str
) -> None:
    """Values of ``column`` not in ``known`` are problems (``listed_in`` names the other file)."""
    values = table.frame[column]
    unknown = ~values.isin(known).to_numpy() & (values != "").to_numpy()
    _report(table, unknown, column, f"one of the {column} values in {listed_in}", problems)


def check_duplicate_rows(table: Table, key: pd.DataFrame, problems: Problems) -> None:
    """Rows whose ``key`` values repeat an earlier row are problems naming both lines.

    Args:
        table: the table (for names and line numbers).
        key: parsed key columns aligned with ``table.frame`` (e.g. user, item, timestamp).
        problems: where problems go.
    """
    repeated = key.duplicated(keep="first").to_numpy()
    positions = np.flatnonzero(repeated)
    if len(positions) == 0:
        return
    first_position = (
        pd.Series(np.arange(len(key)), index=key.index)
        .groupby([key[c] for c in key.columns])
        .transform("min")
        .to_numpy()
    )
    shown = positions[: problems.per_check]
    lines = table.lines(shown)
    first_lines = table.lines(first_position[shown])
    labels = [table.column_label(c) for c in key.columns]
    messages = []
    for p, line, first in zip(shown, lines, first_lines, strict=True):
        same = ", ".join(
            f"{label} {clip(table.frame[c].iat[int(p)])!r}"
            for c, label in zip(key.columns, labels, strict=True)
        )
        messages.append(
            f"{table.name}, line {int(line)}, columns {', '.join(map(repr, labels))}: got a "
            f"duplicate of line {int(first)} ({same}), expected each row once; remove the "
            f"repeated row"
        )
    problems.add_many(messages, len(positions))


# ------------------------------------------------------------------------- helpers


def split_categories(values: pd.Series, sep: str = "|") -> list[tuple[str, ...]]:
    """``"Action|Comedy"`` -> ``("Action", "Comedy")``; blanks dropped, order and first copy kept."""
    return [tuple(dict.fromkeys(p.strip() for p in v.split(sep) if p.strip())) if v else () for v in values]


def infer_attribute(values: pd.Series) -> pd.Series:
    """A user attribute column as numbers when every value is one, else as text.

    Values with a leading zero (zip codes such as ``"02134"``) keep the column text,
    since they are labels and the zero matters.
    """
    text = values.astype(str)
    if (text == "").any() or text.str.match(r"^[+-]?0\d").any():
        return text
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.isna().any():
        return text
    if text.str.fullmatch(_INTEGER.pattern).all():
        return numbers.astype("int64")
    return numbers.astype("float64")


def interactions_frame(
    users: pd.Series, items: pd.Series, ratings: pd.Series | None, timestamps: pd.Series | None
) -> pd.DataFrame:
    """Assemble the canonical interactions frame (NaN ratings / -1 times where absent)."""
    n = len(users)
    return pd.DataFrame(
        {
            USER: users.astype(str).to_numpy(),
            ITEM: items.astype(str).to_numpy(),
            RATING: (ratings.to_numpy(dtype="float64") if ratings is not None else np.full(n, np.nan)),
            TIMESTAMP: (
                timestamps.to_numpy(dtype="int64")
                if timestamps is not None
                else np.full(n, -1, dtype=np.int64)
            ),
        }
    ).astype({USER: str, ITEM: str})
