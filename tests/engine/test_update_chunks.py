"""A large update file is checked a slice at a time: same rows, same messages, the file's own line numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import engine.update.read as read
from engine.data.schema import DataValidationError
from engine.data.synthetic import generate_demo_world


@pytest.fixture(scope="module")
def dataset():
    return generate_demo_world(seed=0, n_users=60, n_items=80).dataset


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("user_id,item_id,rating,timestamp\n" + "".join(r + "\n" for r in rows))
    return path


def _rows(n: int) -> list[str]:
    return [f"nu{k},i{(k % 50) + 1:04d},{(k % 5) + 1},{2_000_000_000 + k}" for k in range(n)]


def test_slices_give_the_same_rows_as_the_whole_file(dataset, tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "new.csv", _rows(10))
    whole, _ = read.read_updates(path, dataset)
    monkeypatch.setattr(read, "CHUNK_BYTES", 0)
    monkeypatch.setattr(read, "CHUNK_ROWS", 3)
    sliced, _ = read.read_updates(path, dataset)
    assert len(sliced) == 10 and sliced["user_id"].tolist()[-1] == "nu9"
    pd.testing.assert_frame_equal(sliced, whole)


def test_slices_report_the_files_line_numbers_and_repeats_across_slices(dataset, tmp_path: Path, monkeypatch) -> None:
    rows = _rows(8)
    rows[6] = "nu6,i0001,9,2000000006"  # line 8: a rating outside the scale, in the third slice
    rows.append(rows[1])  # line 10 repeats line 3, two slices apart
    rows.append(rows[8])  # line 11 repeats line 10, inside one slice: check_duplicate_rows' own message
    path = _write(tmp_path / "new.csv", rows)
    monkeypatch.setattr(read, "CHUNK_BYTES", 0)
    monkeypatch.setattr(read, "CHUNK_ROWS", 3)
    with pytest.raises(DataValidationError) as err:
        read.read_updates(path, dataset)
    assert err.value.problems == [
        "new.csv, line 8, column 'rating': got '9', expected a rating in the scale [1, 5]",
        "new.csv, line 10, columns 'user_id', 'item_id', 'timestamp': got a duplicate of line 3 "
        "(user_id 'nu1', item_id 'i0002', timestamp '2000000001'), expected each row once; remove the repeated row",
        "new.csv, line 11, columns 'user_id', 'item_id', 'timestamp': got a duplicate of line 10 "
        "(user_id 'nu1', item_id 'i0002', timestamp '2000000001'), expected each row once; remove the repeated row",
    ]


def test_quoted_or_small_files_are_read_whole(tmp_path: Path, monkeypatch) -> None:
    small = _write(tmp_path / "small.csv", _rows(3))
    assert not read._chunkable(small)
    monkeypatch.setattr(read, "CHUNK_BYTES", 0)
    assert read._chunkable(small)
    quoted = _write(tmp_path / "quoted.csv", ['"nu1",i0001,5,2000000000'])
    assert not read._chunkable(quoted)  # a quoted field may span lines
    assert not read._chunkable(tmp_path / "missing.csv")
