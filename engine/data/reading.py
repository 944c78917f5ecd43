"""Reading user-supplied files into :class:`~engine.data.problems.Table` s.

Missing, unreadable, empty, undecodable and ragged files become one-line problems
(see :mod:`engine.data.problems`) rather than exceptions, so a user sees every
problem at once and never a traceback.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from engine.data.problems import Problems, Table, clip, csv_records, first_record

_SURROGATE = re.compile("[\udc80-\udcff]")
# How the CLI lets a user read a file in another encoding; every csv-reading command takes it.
ENCODING_ADVICE = "pass --encoding {encoding}"
_PERMISSION_FIX = "make it readable for this user (e.g. chmod u+r) or copy the files to a folder you own"


def require_files(folder: Path, names: Sequence[str], problems: Problems, *, layout: str) -> bool:
    """Check that ``folder`` holds every file in ``names``; False (and problems) when not.

    Args:
        folder: the data folder.
        names: required file names.
        problems: where problems go.
        layout: what the folder should look like, for the message (e.g. ``"the
            official MovieLens 100K layout"``).
    """
    if not check_folder(folder, problems, expected=f"a folder with {layout}"):
        return False
    ok = True
    for name in names:
        if not (folder / name).is_file():
            problems.add(f"{name}: file not found in {folder}; expected {layout}")
            ok = False
    return ok


def check_folder(folder: Path, problems: Problems, *, expected: str) -> bool:
    """Check ``folder`` is a folder whose entries can be listed; False (and a problem) when not.

    Args:
        folder: the data folder.
        problems: where problems go.
        expected: what the folder should hold, for the message.
    """
    try:
        is_dir = folder.is_dir()
        if is_dir:
            os.listdir(folder)  # a folder without read/search permission fails here, not later
    except PermissionError:
        problems.add(f"{folder}: cannot open the data folder: permission denied; {_PERMISSION_FIX}")
        return False
    except OSError as exc:
        problems.add(f"{folder}: cannot open the data folder ({exc.strerror or exc}); expected {expected}")
        return False
    if not is_dir:
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        problems.add(f"{folder}: the data folder {what}; expected {expected}")
        return False
    return True


def read_bytes(path: Path, name: str, problems: Problems, *, expected: str) -> bytes | None:
    """The bytes of ``path``, or None (and one problem) when it is missing or unreadable."""
    try:
        if not path.is_file():
            problems.add(f"{name}: file not found at {path}; expected {expected}")
            return None
        return path.read_bytes()
    except PermissionError:
        problems.add(f"{name}: cannot read {path}: permission denied; {_PERMISSION_FIX}")
    except OSError as exc:
        problems.add(f"{name}: cannot read {path} ({exc.strerror or exc}); expected {expected}")
    return None


def decode(
    raw: bytes,
    name: str,
    problems: Problems,
    *,
    encoding: str = "utf-8",
    sep: str = ",",
    columns: Sequence[str] | None = None,
    advice: str | None = ENCODING_ADVICE,
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
        advice: how to load the file in another encoding, formatted with the
            guessed ``encoding`` (default: :data:`ENCODING_ADVICE`, the
            ``--encoding`` option); None when the caller takes no encoding (the
            MovieLens files have a fixed one), leaving "re-save it as UTF-8".

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
        index = len(first_record(before + "x", sep, csv.QUOTE_MINIMAL)) - 1 if sep == "," else before.count(sep)
        column = header[index] if 0 <= index < len(header) else f"field {index + 1}"
        fields = first_record(line.rstrip("\r"), sep, csv.QUOTE_MINIMAL) if sep == "," else line.split(sep)
        field_text = fields[index].strip() if index < len(fields) else line
        value = field_text.encode(codec, errors="surrogateescape").decode(guess, errors="replace")
        byte = ord(line[at]) - 0xDC00
        byte_offset = line_offset + len(before.encode(codec, errors="surrogateescape"))
        messages.append(
            f"{name}, line {number}, column {column!r}: got {clip(value)!r} (read as {guess}), "
            f"expected {codec} text: byte 0x{byte:02x} at offset {byte_offset} is not valid {codec}; "
            f"the file looks {_ENCODING_NAMES.get(guess, guess)} encoded: re-save it as UTF-8"
            + (f" or {advice.format(encoding=guess)}" if advice else "")
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
    advice: str | None = ENCODING_ADVICE,
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
        advice: how to choose another encoding, see :func:`decode`
            (default: :data:`ENCODING_ADVICE`).

    Returns:
        The table, or None when the file is missing, unreadable, empty,
        undecodable or ragged.
    """
    name = name or path.name
    raw = read_bytes(path, name, problems, expected=expected or "a delimited text file")
    if raw is None:
        return None
    if not raw.strip():
        problems.add(f"{name}: the file is empty; expected {expected or 'a header line and data rows'}")
        return None
    text = decode(raw, name, problems, encoding=encoding, sep=sep, columns=names, advice=advice)
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
        frame = _parse_frame(text, sep, quote_mode, names)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        _report_ragged(text, name, sep, quote_mode, names, problems)
        return None
    except pd.errors.EmptyDataError:
        problems.add(f"{name}: the file is empty; expected {expected or 'a header line and data rows'}")
        return None
    if header:
        columns = _header_columns(text, name, sep, quote_mode, problems)
        if columns is None:
            return None
        frame.columns = columns
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


def _parse_frame(text: str, sep: str, quoting: int, names: Sequence[str] | None) -> pd.DataFrame:
    """Every cell as text (pandas' C parser: no field-size limit, vectorised)."""
    with warnings.catch_warnings():
        # pandas only *warns* when every row has more fields than the header
        # and then drops the extra values; that is a problem to report.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if names is None else None,
            names=names,
            dtype=str,
            na_filter=False,
            keep_default_na=False,
            index_col=False,
            quoting=quoting,
            skip_blank_lines=True,
            engine="c",
        )


def _header_columns(text: str, name: str, sep: str, quoting: int, problems: Problems) -> list[str] | None:
    """Line 1's column names, stripped; None (and problems) when a name repeats."""
    raw_header = first_record(text, sep, quoting)
    seen: dict[str, int] = {}
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
    return [c.strip() for c in raw_header]


def _report_ragged(
    text: str,
    name: str,
    sep: str,
    quoting: int,
    names: Sequence[str] | None,
    problems: Problems,
) -> None:
    expected_fields: int | None = len(names) if names is not None else None
    columns = ",".join(names) if names is not None else ""
    messages, total = [], 0
    for start, record in csv_records(text, sep, quoting):
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


def separator_hint(header: Sequence[str], sep: str = ",") -> str:
    """A hint when a one-column header is really a ``;``/tab/``|``-separated one ("" when not).

    Spreadsheets in many locales save "CSV" with semicolons; read with commas the
    whole header becomes one column name, and the missing-column message alone
    would not say why.
    """
    if len(header) != 1:
        return ""
    for other, label in ((";", "semicolon"), ("\t", "tab"), ("|", "'|'")):
        if other != sep and other in header[0]:
            return (
                f"; the header looks {label}-separated ({header[0][:60]!r}): save the file with "
                f"{sep!r} between values (in a spreadsheet: CSV, comma-delimited)"
            )
    return ""
