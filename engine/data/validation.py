"""Checking the columns and values of user-supplied tables.

Every loader reads its files with :func:`engine.data.reading.read_table` and parses
columns with the ``parse_*`` / ``check_*`` helpers here, which collect problems into
a :class:`~engine.data.problems.Problems` instead of stopping at the first one. Each
message is one line naming the file, the line as an editor shows it (header = line
1), the column, the bad value and what was expected::

    interactions.csv, line 7, column 'rating': got 'five', expected a number

The checks are vectorised (pandas) so a clean file costs little; exact line numbers
are computed only when there is something to report. The file-level names
(``Problems``, ``Table``, ``read_table``...) are re-exported here so loaders need one
import.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from engine.data.problems import MAX_PROBLEMS, MAX_VALUE_CHARS, PER_CHECK, Problems, Table, cell_message, clip
from engine.data.reading import ENCODING_ADVICE, check_folder, decode, read_table, require_files, separator_hint
from engine.data.schema import CATEGORIES, COUNT, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER

__all__ = [
    "ALIASES",
    "ENCODING_ADVICE",
    "MAX_PROBLEMS",
    "MAX_VALUE_CHARS",
    "OUTLIER_SPREADS",
    "PER_CHECK",
    "Problems",
    "Table",
    "apply_columns",
    "cell_message",
    "check_duplicate_rows",
    "check_folder",
    "check_known",
    "check_rating_outliers",
    "check_unique",
    "clip",
    "decode",
    "infer_attribute",
    "interactions_frame",
    "parse_ids",
    "parse_counts",
    "parse_ratings",
    "parse_timestamps",
    "read_table",
    "require_columns",
    "require_files",
    "separator_hint",
    "split_categories",
    "suggest_column",
]

logger = logging.getLogger(__name__)

# Unix seconds above this are almost certainly milliseconds (it is the year 5138).
_MILLISECONDS_FLOOR = 100_000_000_000
_EPOCH = pd.Timestamp(0, tz="UTC")
_INTEGER = re.compile(r"[+-]?\d+")
# Ratings more than this many median absolute deviations from the median are typos.
OUTLIER_SPREADS = 50

# Common spellings of the canonical columns, for "did you mean" suggestions only:
# nothing is renamed without the user saying so (an alias can be ambiguous).
ALIASES: dict[str, tuple[str, ...]] = {
    USER: ("user", "userid", "uid", "customer", "customerid", "visitor", "visitorid", "member", "memberid"),
    ITEM: ("item", "itemid", "iid", "movie", "movieid", "product", "productid", "sku", "asin", "articleid"),
    RATING: ("score", "stars", "rate", "value", "ratingvalue"),
    COUNT: ("plays", "playcount", "clicks", "views", "quantity", "weight", "frequency"),
    TIMESTAMP: ("time", "ts", "date", "datetime", "eventtime", "createdat", "unixtime"),
    TITLE: ("name", "itemname", "movietitle", "productname"),
    CATEGORIES: ("genres", "genre", "category", "tags"),
    TEXT: ("description", "desc", "overview", "summary", "plot"),
}


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
    hint = separator_hint(list(table.source_columns.values()), table.sep)
    canonical = set(required) | set(optional)
    spare = [c for c in present if c not in canonical]
    ok = True
    for wanted in required:
        if wanted in present:
            continue
        ok = False
        # A ;- or tab-separated header is one long "column": a mapping suggestion would mislead.
        guess = None if hint else suggest_column(wanted, spare)
        if guess is not None:
            problems.add(
                f"{table.name}, line 1: missing column {wanted!r} (found {guess!r}; did you mean "
                f"{wanted!r}? use {flag} {guess}={wanted})"
            )
        else:
            found = ", ".join(repr(c) for c in present) or "none"
            problems.add(
                f"{table.name}, line 1: missing column {wanted!r} (found {found}); name a column "
                f"{wanted!r} or map one with {flag} <name>={wanted}{hint}"
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
    """The id column as ``str``, NFC-normalised; empty ids and ids with a NUL byte are problems.

    Ids are compared after Unicode NFC normalisation: ``"é"`` typed as one code point
    and as ``"e"`` + a combining accent look the same on screen and name the same user
    or item, so both spellings become one id (a file listing both in ``items.csv``
    then reports a repeated id). The normalised ids are written back into
    ``table.frame`` so the later checks (unique, known, duplicate rows) compare the
    same strings. A NUL byte is rejected: it truncates C strings in other tools and
    is invisible in every message.
    """
    values = table.frame[column]
    _report(table, values == "", column, f"a non-empty {column}", problems)
    _report(
        table,
        values.str.contains("\x00", regex=False),
        column,
        f"a {column} without NUL (\\x00) characters",
        problems,
    )
    non_ascii = ~values.str.isascii().to_numpy(dtype=bool)
    if non_ascii.any():  # ASCII is already NFC; the common case costs one vectorised test
        original = values[non_ascii]
        normalised = original.map(lambda v: unicodedata.normalize("NFC", v))
        changed = int((normalised != original).sum())
        if changed:
            logger.warning(
                "%s, column %r: %d id(s) were not in Unicode NFC form and were normalised "
                "(ids that differ only in normalisation are the same id)",
                table.name,
                table.column_label(column),
                changed,
            )
            values = values.copy()
            values[non_ascii] = normalised
            table.frame[column] = values
    return values.astype(str)


def parse_ratings(table: Table, column: str, problems: Problems, scale: tuple[float, float] | None = None) -> pd.Series:
    """The rating column as float64; non-numbers and values outside ``scale`` are problems.

    Args:
        table: the table.
        column: the rating column.
        problems: where problems go.
        scale: inclusive (min, max) the ratings must lie in (default: None, any number).
    """
    values = table.frame[column]
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce").astype("float64")
    array = numbers.to_numpy()
    bad = ~np.isfinite(array)
    # "inf" and "1e999" parse as numbers but no scale holds them: say so rather than "a number".
    _report(table, np.isnan(array), column, "a number", problems)
    _report(table, np.isinf(array), column, "a finite number", problems)
    if scale is not None:
        low, high = scale
        outside = ~bad & ((numbers < low) | (numbers > high)).to_numpy()
        _report(table, outside, column, f"a rating in the scale [{low:g}, {high:g}]", problems)
    return numbers


def parse_counts(table: Table, column: str, problems: Problems) -> pd.Series:
    """The count column as float64; anything but a finite number >= 0 is a problem (with its line).

    Counts (plays, clicks, purchases) have no scale and no outliers to catch: a heavy tail is
    what they look like. They become weights ``log(1 + count)`` relative to the largest.
    """
    values = table.frame[column]
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce").astype("float64")
    array = numbers.to_numpy()
    _report(table, ~np.isfinite(array) | (array < 0), column, "a count: a finite number >= 0", problems)
    return numbers


def check_rating_outliers(table: Table, column: str, ratings: pd.Series, problems: Problems) -> None:
    """Ratings absurdly far from the others are problems (for an inferred rating scale).

    Without a given scale the scale is the smallest and largest rating, and edge
    weights are ``(r - min) / (max - min)``: one typo such as ``1e308`` would squash
    every other weight to about 0 and train on noise. A rating is absurd when it
    lies more than ``OUTLIER_SPREADS`` (default 50) median absolute deviations
    (at least 1) from the median: a 1-5 or 0.5-5 scale accepts [-46, 54], a
    0-100 scale far more. Non-finite ratings are reported by :func:`parse_ratings`.

    Args:
        table: the table.
        column: the rating column.
        ratings: the parsed ratings, aligned with ``table.frame``.
        problems: where problems go.
    """
    values = ratings.to_numpy(dtype="float64")
    finite = np.isfinite(values)
    if finite.sum() < 2:
        return
    median = float(np.median(values[finite]))
    spread = max(float(np.median(np.abs(values[finite] - median))), 1.0)
    low, high = median - OUTLIER_SPREADS * spread, median + OUTLIER_SPREADS * spread
    far = finite & ((values < low) | (values > high))
    _report(
        table,
        far,
        column,
        f"a rating in [{low:g}, {high:g}] like the others (median {median:g}): the rating scale is "
        "inferred from the smallest and largest rating, so this value would squash every other "
        "rating's weight to ~0; fix or drop the row (for counts such as plays or clicks, name the column "
        "'count', e.g. --columns plays=count)",
        problems,
    )


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


def check_duplicate_rows(
    table: Table, key: pd.DataFrame, problems: Problems, *, fix: str = "remove the repeated row"
) -> None:
    """Rows whose ``key`` values repeat an earlier row are problems naming both lines.

    Args:
        table: the table (for names and line numbers).
        key: parsed key columns aligned with ``table.frame`` (e.g. user, item, timestamp).
        problems: where problems go.
        fix: what each message tells the user to do (default: ``"remove the repeated row"``).
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
    # A key column the file lacks (no timestamp: a -1 stand-in) is not the user's to see.
    columns = [c for c in key.columns if c in table.frame.columns]
    labels = [table.column_label(c) for c in columns]
    messages = []
    for p, line, first in zip(shown, lines, first_lines, strict=True):
        # The parsed key, not the raw cell: ids may differ from the file only by NFC normalisation.
        same = ", ".join(
            f"{label} {clip(key[c].iat[int(p)] if c != TIMESTAMP else table.frame[c].iat[int(p)])!r}"
            for c, label in zip(columns, labels, strict=True)
        )
        messages.append(
            f"{table.name}, line {int(line)}, columns {', '.join(map(repr, labels))}: got a "
            f"duplicate of line {int(first)} ({same}), expected each row once; {fix}"
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
                timestamps.to_numpy(dtype="int64") if timestamps is not None else np.full(n, -1, dtype=np.int64)
            ),
        }
    ).astype({USER: str, ITEM: str})
