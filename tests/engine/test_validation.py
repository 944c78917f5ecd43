"""Malformed user files: every message names the file, line, column and bad value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.csv_loader import load_csv_dataset
from engine.data.schema import DataValidationError
from engine.data.validation import (
    Problems,
    infer_attribute,
    split_categories,
    suggest_column,
)

GOOD_ITEMS = "item_id,title,categories\na,Alpha,Drama|Comedy\nb,Beta,\nc,Gamma,Drama\n"
GOOD_INTERACTIONS = "user_id,item_id,rating,timestamp\nu1,a,4,100\nu1,b,5,200\nu2,a,3,300\n"


def write(
    folder: Path,
    *,
    interactions: str | bytes | None = GOOD_INTERACTIONS,
    items: str | bytes | None = GOOD_ITEMS,
    users: str | bytes | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("interactions.csv", interactions), ("items.csv", items), ("users.csv", users)):
        if content is None:
            continue
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(data)
    return folder


def problems(folder: Path, **kwargs) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        load_csv_dataset(folder, **kwargs)
    return info.value.problems


def only(found: list[str], needle: str) -> str:
    """The single problem containing ``needle``."""
    matching = [p for p in found if needle in p]
    assert len(matching) == 1, (needle, found)
    return matching[0]


def test_good_folder_loads(tmp_path: Path) -> None:
    data = load_csv_dataset(write(tmp_path))
    assert len(data.interactions) == 3 and len(data.items) == 3


def test_missing_file(tmp_path: Path) -> None:
    found = problems(write(tmp_path, items=None))
    assert found == [
        f"items.csv: file not found at {tmp_path / 'items.csv'}; expected a header line "
        "'item_id,title[,categories][,text]' and one row per item (or pass --unknown-items add to title every "
        "item by its id)"
    ]


def test_missing_folder(tmp_path: Path) -> None:
    found = problems(tmp_path / "nope")
    assert found[0].startswith(f"{tmp_path / 'nope'}: the data folder does not exist")


def test_empty_file(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions=""))
    assert found == [
        "interactions.csv: the file is empty; expected a header line "
        "'user_id,item_id[,rating|count][,timestamp]' and one row per interaction"
    ]


def test_header_without_rows(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id\n"))
    assert found == ["interactions.csv, line 2: got no data rows after the header, expected at least one row"]


def test_misnamed_column_suggests_the_mapping(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,itemid\nu1,a\n"))
    assert found == [
        "interactions.csv, line 1: missing column 'item_id' (found 'itemid'; did you mean "
        "'item_id'? use --columns itemid=item_id)"
    ]


def test_missing_column_without_a_close_name(tmp_path: Path) -> None:
    found = problems(write(tmp_path, items="item_id,zzz\na,1\n"))
    assert found == [
        "items.csv, line 1: missing column 'title' (found 'item_id', 'zzz'); name a column "
        "'title' or map one with --columns <name>=title"
    ]


def test_alias_suggestion_for_movielens_style_header(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="userId,movieId,rating\n1,a,4\n"))
    assert "use --columns userId=user_id" in found[0]
    assert "use --columns movieId=item_id" in found[1]


def test_non_numeric_rating(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id,rating\nu1,a,4\nu2,b,five\n"))
    assert found == ["interactions.csv, line 3, column 'rating': got 'five', expected a number"]


def test_empty_rating_in_an_explicit_log(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id,rating\nu1,a,4\nu2,b,\n"))
    assert found == ["interactions.csv, line 3, column 'rating': got '', expected a number"]


def test_rating_outside_the_declared_scale(tmp_path: Path) -> None:
    found = problems(
        write(tmp_path, interactions="user_id,item_id,rating\nu1,a,4\nu2,b,7\nu3,c,0.5\n"),
        rating_scale=(1, 5),
    )
    assert found == [
        "interactions.csv, line 3, column 'rating': got '7', expected a rating in the scale [1, 5]",
        "interactions.csv, line 4, column 'rating': got '0.5', expected a rating in the scale [1, 5]",
    ]


def test_empty_ids(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id\nu1,a\n,b\nu2,\n"))
    assert (
        only(found, "'user_id'") == "interactions.csv, line 3, column 'user_id': got '', expected a non-empty user_id"
    )
    assert only(found, "line 4") == "interactions.csv, line 4, column 'item_id': got '', expected a non-empty item_id"


def test_unknown_item(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id\nu1,a\nu1,zz9\n"))
    assert found == [
        "interactions.csv, line 3, column 'item_id': got 'zz9', expected one of the item_id values in items.csv "
        "(or pass --unknown-items add to add them, titled by their id)"
    ]


def test_unknown_user_when_users_csv_is_given(tmp_path: Path) -> None:
    found = problems(write(tmp_path, users="user_id,gender\nu1,F\n"))
    assert found == [
        "interactions.csv, line 4, column 'user_id': got 'u2', expected one of the user_id values in users.csv"
    ]


def test_duplicate_rows(tmp_path: Path) -> None:
    text = "user_id,item_id,rating,timestamp\nu1,a,4,100\nu1,b,4,100\nu1,a,2,100\n"
    found = problems(write(tmp_path, interactions=text))
    assert found == [
        "interactions.csv, line 4, columns 'user_id', 'item_id', 'timestamp': got a duplicate of "
        "line 2 (user_id 'u1', item_id 'a', timestamp '100'), expected each row once; remove the "
        "repeated row, or pass --duplicates drop to keep the first of each"
    ]


def test_same_pair_at_different_times_is_not_a_duplicate(tmp_path: Path) -> None:
    text = "user_id,item_id,timestamp\nu1,a,100\nu1,a,200\n"
    assert len(load_csv_dataset(write(tmp_path, interactions=text)).interactions) == 2


def test_wrong_encoding_names_line_column_byte_and_encoding(tmp_path: Path) -> None:
    items = b'item_id,title\na,Alpha\nb,"Mis\xe9rables, Les"\n'
    found = problems(write(tmp_path, items=items))
    assert found == [
        "items.csv, line 3, column 'title': got 'Misérables, Les' (read as latin-1), expected "
        "utf-8 text: byte 0xe9 at offset 28 is not valid utf-8; the file looks Latin-1 "
        "(ISO-8859-1) encoded: re-save it as UTF-8 or pass --encoding latin-1"
    ]
    assert items[28] == 0xE9


def test_wrong_encoding_is_accepted_with_the_suggested_encoding(tmp_path: Path) -> None:
    items = b'item_id,title\na,Alpha\nb,"Mis\xe9rables, Les"\nc,Gamma\n'
    interactions = GOOD_INTERACTIONS.encode("latin-1")
    data = load_csv_dataset(write(tmp_path, items=items, interactions=interactions), encoding="latin-1")
    assert data.items.set_index("item_id").loc["b", "title"] == "Misérables, Les"


def test_windows_1252_is_suggested_for_curly_quotes(tmp_path: Path) -> None:
    items = b"item_id,title\na,Alpha\nb,\x93Quoted\x94\nc,Gamma\n"
    found = problems(write(tmp_path, items=items))
    assert found[0].startswith("items.csv, line 3, column 'title': got '\u201cQuoted\u201d' (read as cp1252)")
    assert found[0].endswith("pass --encoding cp1252")


def test_unparseable_timestamp(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id,timestamp\nu1,a,2021-03-04\nu2,b,yesterday\n"))
    assert found == [
        "interactions.csv, line 3, column 'timestamp': got 'yesterday', expected Unix seconds (an "
        "integer) or an ISO 8601 date such as '2021-03-04' or '2021-03-04T10:00:00'"
    ]


def test_millisecond_timestamps(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id,timestamp\nu1,a,1614816000000\n"))
    assert found == [
        "interactions.csv, line 2, column 'timestamp': got '1614816000000', expected Unix seconds "
        "(this looks like milliseconds: divide by 1000)"
    ]


def test_timestamp_before_1970(tmp_path: Path) -> None:
    found = problems(write(tmp_path, interactions="user_id,item_id,timestamp\nu1,a,1969-12-31\n"))
    assert found == [
        "interactions.csv, line 2, column 'timestamp': got '1969-12-31', expected a time at or after 1970-01-01"
    ]


def test_duplicate_item_ids(tmp_path: Path) -> None:
    found = problems(write(tmp_path, items="item_id,title\na,Alpha\nb,Beta\na,Alpha again\n"))
    assert found == ["items.csv, line 4, column 'item_id': got 'a', expected a unique item_id (already on line 2)"]


def test_users_csv_without_user_id(tmp_path: Path) -> None:
    found = problems(write(tmp_path, users="uid,gender\nu1,F\nu2,M\n"))
    assert found == [
        "users.csv, line 1: missing column 'user_id' (found 'uid'; did you mean 'user_id'? use --columns uid=user_id)"
    ]


def test_duplicate_user_ids(tmp_path: Path) -> None:
    found = problems(write(tmp_path, users="user_id,gender\nu1,F\nu2,M\nu1,M\n"))
    assert found == ["users.csv, line 4, column 'user_id': got 'u1', expected a unique user_id (already on line 2)"]


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    found = problems(write(tmp_path, items="item_id,title\na,Alpha\nb,Beta, the sequel\nc,Gamma\n"))
    assert found == [
        "items.csv, line 3, column 3: got 3 fields ('b,Beta, the sequel'), expected 2 "
        "(item_id,title); remove the extra ',' or quote values that contain it"
    ]


def test_duplicate_column_names(tmp_path: Path) -> None:
    found = problems(write(tmp_path, items="item_id,title,title\na,Alpha,A\n"))
    assert found == [
        "items.csv, line 1, column 'title': got the name twice (fields 2 and 3), expected unique column names"
    ]


def test_line_numbers_count_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    items = 'item_id,title,text\na,Alpha,"first line\nsecond line"\n\nb,Beta,x\nc,Gamma,y\n'
    found = problems(write(tmp_path, items=items, interactions="user_id,item_id,rating\nu1,a,4\n\n\nu1,b,bad\n"))
    assert found == ["interactions.csv, line 5, column 'rating': got 'bad', expected a number"]
    found = problems(write(tmp_path, items=items + "a,Again,z\n", interactions="user_id,item_id,rating\nu1,a,4\n"))
    assert found == ["items.csv, line 7, column 'item_id': got 'a', expected a unique item_id (already on line 2)"]


def test_mapped_column_is_named_as_in_the_file(tmp_path: Path) -> None:
    found = problems(
        write(tmp_path, interactions="uid,item_id,score\nu1,a,4\nu2,b,x\n"),
        columns={"uid": "user_id", "score": "rating"},
    )
    assert found == ["interactions.csv, line 3, column 'score': got 'x', expected a number"]


def test_mapping_key_matching_no_file(tmp_path: Path) -> None:
    found = problems(write(tmp_path), columns={"movie": "item_id"})
    assert len(found) == 1
    assert found[0].startswith(
        "--columns movie=item_id: got column 'movie', expected a column of "
        "interactions.csv, items.csv or users.csv (interactions.csv has 'user_id'"
    )


def test_problems_in_several_files_are_reported_together(tmp_path: Path) -> None:
    found = problems(
        write(
            tmp_path,
            interactions="user_id,item_id,rating\nu1,a,x\n",
            items="item_id,title\na,Alpha\na,Again\n",
            users="user_id,age\nu1,3\nu1,4\n",
        )
    )
    assert [p.split(",")[0] for p in found] == ["interactions.csv", "items.csv", "users.csv"]


def test_report_is_capped_with_a_count_of_the_rest(tmp_path: Path) -> None:
    rows = "".join(f"u{i},a,bad{i}\n" for i in range(30))
    with pytest.raises(DataValidationError) as info:
        load_csv_dataset(write(tmp_path, interactions="user_id,item_id,rating\n" + rows))
    found = info.value.problems
    assert found[:5] == [
        f"interactions.csv, line {i + 2}, column 'rating': got 'bad{i}', expected a number" for i in range(5)
    ]
    assert found[5:] == ["... and 25 more problem(s) not listed; fix these and run again"]
    assert str(info.value) == found[0] + " (and 29 more problem(s))"


def test_nothing_is_written_on_rejection(tmp_path: Path) -> None:
    folder = write(tmp_path, interactions="user_id,item_id,rating\nu1,a,x\n")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    problems(folder)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_problems_collector_caps_total_and_per_check() -> None:
    collected = Problems(limit=3, per_check=2)
    collected.add_many((f"m{i}" for i in range(10)), total=10)
    collected.add("x")
    collected.add("y")
    assert len(collected) == 12
    assert collected.messages == ["m0", "m1", "x"]
    with pytest.raises(DataValidationError) as info:
        collected.raise_if_any()
    assert info.value.problems == [
        "m0",
        "m1",
        "x",
        "... and 9 more problem(s) not listed; fix these and run again",
    ]
    Problems().raise_if_any()  # nothing collected: no error


def test_suggest_column() -> None:
    assert suggest_column("item_id", ["foo", "ItemID"]) == "ItemID"
    assert suggest_column("item_id", ["movieId", "userId"]) == "movieId"
    assert suggest_column("timestamp", ["time_stamp"]) == "time_stamp"
    assert suggest_column("rating", ["colour", "size"]) is None


def test_split_categories() -> None:
    assert split_categories(pd.Series(["Action| Comedy |", "", "A|A|B"])) == [
        ("Action", "Comedy"),
        (),
        ("A", "B"),
    ]


def test_infer_attribute() -> None:
    assert infer_attribute(pd.Series(["24", "53"])).dtype == np.int64
    assert infer_attribute(pd.Series(["1.5", "2"])).tolist() == [1.5, 2.0]
    zips = infer_attribute(pd.Series(["02134", "94043"]))
    assert zips.tolist() == ["02134", "94043"]
    assert infer_attribute(pd.Series(["F", "M"])).tolist() == ["F", "M"]
    assert infer_attribute(pd.Series(["3", ""])).tolist() == ["3", ""]


def test_unknown_encoding_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown encoding \\(got 'klingon'\\)"):
        load_csv_dataset(write(tmp_path), encoding="klingon")
