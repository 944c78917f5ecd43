"""Hostile and unusual data inputs (issue 16): each is a clean one-line error or works as documented."""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import build_parser, main
from engine.commands.common import config_from_args, terminal_safe
from engine.config import DataConfig, parse_columns
from engine.data.csv_loader import csv_dataset_name, load_csv_dataset
from engine.data.download import Archive, _structure_problem
from engine.data.registry import load_configured
from engine.data.schema import Dataset
from engine.data.split import split
from engine.errors import DataValidationError
from engine.update.read import read_updates

ITEMS = "item_id,title\n" + "".join(f"i{i},Title {i}\n" for i in range(30))


def write(folder: Path, interactions: str, items: str = ITEMS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(interactions, encoding="utf-8")
    (folder / "items.csv").write_text(items, encoding="utf-8")
    return folder


def first_problem(folder: Path, **kwargs: object) -> str:
    with pytest.raises(DataValidationError) as info:
        load_csv_dataset(folder, **kwargs)
    return info.value.problems[0]


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(tmp_path / "d", "user_id,item_id\nu1,i1\n")
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "interactions.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    message = first_problem(folder)
    assert message.startswith(f"interactions.csv: cannot read {folder / 'interactions.csv'}: permission denied")


def test_unreadable_folder_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(tmp_path / "d", "user_id,item_id\nu1,i1\n")
    real = os.listdir
    monkeypatch.setattr(
        os, "listdir", lambda p=".": (_ for _ in ()).throw(PermissionError(13, "x")) if Path(p) == folder else real(p)
    )
    assert first_problem(folder).startswith(f"{folder}: cannot open the data folder: permission denied")


def test_cli_turns_permission_error_into_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import engine.commands.data as data_cmd

    def boom(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/root/cache")

    monkeypatch.setattr(data_cmd, "run", boom)
    parser_args = ["data", "list"]
    monkeypatch.setattr("engine.cli.build_parser", lambda: _parser_with(boom))
    assert main(parser_args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: /root/cache: permission denied; make it readable (or writable) for this user or choose a folder you own"
    ]


def _parser_with(func):  # a real parser whose `data` command raises
    parser = build_parser()
    for action in parser._subparsers._group_actions:
        action.choices["data"].set_defaults(func=func)
    return parser


def test_text_cell_over_the_csv_field_limit(tmp_path: Path) -> None:
    long_text = "x" * 200_000  # the csv module's default limit is 131,072
    items = "item_id,title,text\n" + f'i0,A,"{long_text}"\n' + "i1,B,t\ni1,C,t\n"
    folder = write(tmp_path / "d", "user_id,item_id\nu1,i0\n", items)
    limit = csv.field_size_limit()
    assert (
        first_problem(folder)
        == "items.csv, line 4, column 'item_id': got 'i1', expected a unique item_id (already on line 3)"
    )
    assert csv.field_size_limit() == limit  # raised only while reading, then restored


def test_absurd_rating_is_rejected_with_its_line(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "user_id,item_id,rating\nu1,i1,4\nu1,i2,1e308\nu2,i1,5\nu2,i3,3\n")
    message = first_problem(folder)
    assert message.startswith(
        "interactions.csv, line 3, column 'rating': got '1e308', expected a rating in [-45.5, 54.5]"
    )
    assert "squash" in message


def test_counts_are_positives_weighted_by_their_log_and_shown_as_counts(tmp_path: Path) -> None:
    # a Last.fm-like log: play counts from 0 to 300,000 (as a rating column they are "absurd")
    rows = [
        (f"u{u}", f"i{(u * 7 + k) % 30}", plays)
        for u in range(12)
        for k, plays in enumerate((300_000, 5_000, 250, 40, 12, 3, 1, 0, 2, 7, 90, 1_000))
    ]
    body = "".join(f"{u},{i},{c}\n" for u, i, c in rows)
    as_rating = write(tmp_path / "r", "user_id,item_id,plays\n" + body)
    assert "name the column 'count', e.g. --columns plays=count" in first_problem(
        as_rating, columns={"plays": "rating"}
    )
    ds = load_csv_dataset(as_rating, columns={"plays": "count"})
    assert ds.counts and ds.is_implicit and ds.rating_scale is None
    assert ds.summary()["count_range"] == [0.0, 300_000.0, 26.0]
    sp = split(ds, threshold=3.0)  # a threshold is for ratings: a count of 0, 1 or 2 is a positive too
    parts = pd.concat([sp.train, sp.valid, sp.test])
    assert len(parts) == len(rows) == 144
    w = parts.sort_values("w_rating")["w_rating"].to_numpy()
    assert w[0] == 0.0 and w[-1] == pytest.approx(1.0)
    # log(1 + count) over the largest: 250 plays weigh 0.44, not 0.0008
    assert parts.loc[parts["w_rating"].between(0.43, 0.45)].shape[0] == 12
    # a log of daily counts: a repeated (user, item) pair is one positive weighing its total
    daily = write(tmp_path / "daily", "user_id,item_id,count,timestamp\n" + body.replace("\n", ",100\n"))
    with (daily / "interactions.csv").open("a", encoding="utf-8") as f:
        f.write("u0,i2,299750,200\n")  # u0 played i2 250 times on day 100: now 300,000 in all
    sp2 = split(load_csv_dataset(daily))
    parts2 = pd.concat([sp2.train, sp2.valid, sp2.test])
    assert len(parts2) == 144  # still one row per pair
    top = parts2.loc[parts2["w_rating"] == parts2["w_rating"].max()]
    # the 12 users' 300,000-play items, and u0's i2, whose two days add up to as many
    assert len(top) == 13 and top["w_rating"].max() == pytest.approx(1.0)
    assert ((top["u"] == sp2.idmap.user_index("u0")) & (top["i"] == sp2.idmap.item_index("i2"))).sum() == 1
    # a count column and a rating column together: which one is meant is not guessed
    both = write(tmp_path / "b", "user_id,item_id,rating,count\nu1,i1,4,10\n")
    assert first_problem(both).startswith("interactions.csv, line 1: both a 'rating' and a 'count' column")
    # a negative or non-numeric count is named with its line
    bad = write(tmp_path / "n", "user_id,item_id,count\nu1,i1,3\nu1,i2,-2\nu2,i1,lots\n")
    with pytest.raises(DataValidationError) as info:
        load_csv_dataset(bad)
    problems = info.value.problems
    assert problems[0] == "interactions.csv, line 3, column 'count': got '-2', expected a count: a finite number >= 0"
    assert problems[1] == "interactions.csv, line 4, column 'count': got 'lots', expected a count: a finite number >= 0"
    # the data hash knows counts from ratings; other datasets keep the hash they had
    plain = Dataset(ds.name, ds.interactions, ds.items, ds.users, None)
    assert plain.content_hash() != ds.content_hash()
    # an update of a dataset of counts needs a count per new interaction, and reads it as one
    with pytest.raises(DataValidationError, match="missing column 'count'; dataset 'r' has counts"):
        read_updates(pd.DataFrame({"user_id": ["u1"], "item_id": ["i29"]}), ds)
    new, _ = read_updates(pd.DataFrame({"user_id": ["u1"], "item_id": ["i29"], "count": ["123456"]}), ds)
    assert new["rating"].tolist() == [123456.0]


def test_a_served_model_of_counts_shows_counts_not_ratings(tmp_path: Path) -> None:
    from engine import service
    from engine.config import FeatureConfig, ModelConfig, RunConfig

    body = "".join(f"u{u},i{(u + k) % 30},{10 ** (k % 5)}\n" for u in range(40) for k in range(10))
    folder = write(tmp_path / "plays", "user_id,item_id,count\n" + body)
    data = DataConfig(dataset="csv", data_dir=str(folder), split="leave_one_out")
    model = service.train(
        RunConfig(data=data, features=FeatureConfig(text=False), model=ModelConfig(name="ease")),
        cache_dir=tmp_path / "cache",
    )
    history = model.history("u3")
    assert history["rating"].isna().all()  # a count is never shown as stars
    assert sorted(history["count"].tolist()) == [1, 1, 10, 10, 100, 100, 1000, 1000, 10000, 10000]


def test_infinite_rating_is_rejected(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "user_id,item_id,rating\nu1,i1,4\nu1,i2,inf\n")
    assert first_problem(folder) == "interactions.csv, line 3, column 'rating': got 'inf', expected a finite number"


def test_a_0_to_100_scale_is_not_an_outlier(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "user_id,item_id,rating\nu1,i1,0\nu1,i2,100\nu2,i1,55\nu2,i3,70\n")
    assert load_csv_dataset(folder).rating_scale == (0.0, 100.0)


def test_repeated_rows_are_named_with_the_option_that_drops_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "user_id,item_id,rating,timestamp\nu1,i1,4,2020-01-02\nu1,i2,5,2020-01-02\nu1,i1,2,2020-01-02\n"
    folder = write(tmp_path / "d", rows)
    assert first_problem(folder).endswith(
        "got a duplicate of line 2 (user_id 'u1', item_id 'i1', timestamp '2020-01-02'), expected each row "
        "once; remove the repeated row, or pass --duplicates drop to keep the first of each"
    )
    kept = load_csv_dataset(folder, duplicates="drop").interactions
    assert kept[["item_id", "rating"]].values.tolist() == [["i1", 4.0], ["i2", 5.0]]  # the first of each
    # the same option through the CLI, and only for csv
    assert main(["data", "summary", "--dataset", "csv", "--data-dir", str(folder), "--json"]) == 2
    assert "--duplicates drop" in capsys.readouterr().err
    assert main(["data", "summary", "--dataset", "csv", "--data-dir", str(folder), "--duplicates", "drop"]) == 0
    assert "interactions   2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="duplicates and unknown_items apply to the csv dataset only"):
        DataConfig(dataset="demo", duplicates="drop")
    with pytest.raises(ValueError, match="duplicates must be one of error, drop"):
        load_csv_dataset(folder, duplicates="keep")


def test_unlisted_items_are_named_with_the_option_that_adds_them(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "user_id,item_id\nu1,i1\nu1,zz9\n")
    assert first_problem(folder) == (
        "interactions.csv, line 3, column 'item_id': got 'zz9', expected one of the item_id values in "
        "items.csv (or pass --unknown-items add to add them, titled by their id)"
    )
    ds = load_csv_dataset(folder, unknown_items="add")
    assert len(ds.items) == 31  # the 30 listed, then zz9
    added = ds.items.iloc[-1]
    assert (added["item_id"], added["title"], tuple(added["categories"]), added["text"]) == ("zz9", "zz9", (), "")
    assert ds.items.iloc[1]["title"] == "Title 1"  # listed items keep their titles
    # without items.csv: the error says how to go on, and "add" titles every item by its id
    (folder / "items.csv").unlink()
    assert first_problem(folder).endswith("(or pass --unknown-items add to title every item by its id)")
    bare = load_csv_dataset(folder, unknown_items="add")
    assert bare.items["item_id"].tolist() == bare.items["title"].tolist() == ["i1", "zz9"]
    args = build_parser().parse_args(["train", "--dataset", "csv", "--data-dir", str(folder), "--unknown-items", "add"])
    assert load_configured(config_from_args(args).data).items["item_id"].tolist() == ["i1", "zz9"]
    with pytest.raises(ValueError, match="unknown_items apply to the csv dataset only"):
        DataConfig(dataset="demo", unknown_items="add")


def test_nul_byte_in_an_id(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "user_id,item_id\nu\x001,i1\nu2,i2\n")
    assert first_problem(folder) == (
        "interactions.csv, line 2, column 'user_id': got 'u\\x001', expected a user_id without NUL (\\x00) characters"
    )


def test_ids_are_nfc_normalised(tmp_path: Path) -> None:
    composed, decomposed = "Jos\u00e9", "Jose\u0301"
    folder = write(tmp_path / "d", f"user_id,item_id\n{composed},i1\n{decomposed},i2\n")
    ds = load_csv_dataset(folder)
    assert ds.interactions["user_id"].tolist() == [composed, composed]
    same = write(tmp_path / "e", f"user_id,item_id\n{composed},i1\n{decomposed},i1\n")
    assert "got a duplicate of line 2 (user_id 'José', item_id 'i1')" in first_problem(same)


@pytest.mark.parametrize(("sep", "label"), [(";", "semicolon"), ("\t", "tab")])
def test_separator_hint(tmp_path: Path, sep: str, label: str) -> None:
    folder = write(tmp_path / "d", f"user_id{sep}item_id\nu1{sep}i1\n")
    assert f"the header looks {label}-separated" in first_problem(folder)


def test_encoding_advice_names_an_option_that_exists(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    write(folder, "user_id,item_id\nu1,i1\n")
    (folder / "items.csv").write_bytes("item_id,title\ni1,Mis\xe9rables\n".encode("latin-1"))
    message = first_problem(folder)
    assert message.endswith("or pass --encoding latin-1")
    args = build_parser().parse_args(["train", "--dataset", "csv", "--data-dir", str(folder), "--encoding", "latin-1"])
    assert load_configured(config_from_args(args).data).items["title"].tolist() == ["Misérables"]


@pytest.mark.parametrize(
    ("folder", "name"), [("My Ratings", "My-Ratings"), ("données", "donnees"), (".hidden", "hidden"), ("ok_1", "ok_1")]
)
def test_folder_names_become_cache_safe_names(tmp_path: Path, folder: str, name: str) -> None:
    assert csv_dataset_name(tmp_path / folder) == name
    assert load_csv_dataset(write(tmp_path / folder, "user_id,item_id\nu1,i1\n")).name == name


def test_chosen_name_is_used_and_checked(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "user_id,item_id\nu1,i1\n")
    assert load_csv_dataset(folder, name="films").name == "films"
    with pytest.raises(ValueError, match=r"--name must be a plain name .* \(got 'my films'\)"):
        load_csv_dataset(folder, name="my films")


@pytest.mark.parametrize("command", ["train", "recommend", "dashboard", "update", "data summary"])
def test_every_dataset_command_takes_columns(command: str) -> None:
    extra = {"recommend": ["--user", "u1"], "update": ["--new", "x.csv"]}.get(command, [])
    argv = [*command.split(), "--dataset", "csv", "--data-dir", "d", "--columns", "uid=user_id", *extra]
    args = build_parser().parse_args(argv)
    assert args.columns == "uid=user_id"


def test_columns_reach_the_loader_through_the_config(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", "uid,movie\nu1,i1\nu2,i2\n")
    args = build_parser().parse_args(
        [
            "train",
            "--dataset",
            "csv",
            "--data-dir",
            str(folder),
            "--columns",
            "uid=user_id,movie=item_id",
            "--name",
            "n",
        ]
    )
    ds = load_configured(config_from_args(args).data)
    assert (ds.name, ds.interactions["user_id"].tolist()) == ("n", ["u1", "u2"])


def test_csv_options_stay_out_of_the_fingerprint() -> None:
    plain = DataConfig(dataset="csv", data_dir="d")
    mapped = DataConfig(dataset="csv", data_dir="d", columns="a=user_id", encoding="latin-1", name="x")
    from engine.config import RunConfig

    assert RunConfig(data=plain).fingerprint_dict() == RunConfig(data=mapped).fingerprint_dict()
    assert parse_columns("a = user_id, b=item_id") == {"a": "user_id", "b": "item_id"}
    with pytest.raises(ValueError, match="file_col=canonical"):
        DataConfig(dataset="csv", columns="user_id")


def test_epochs_zero_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["train", "--epochs", "0"])
    with pytest.raises(ValueError, match=r"epochs must be >= 1 \(got 0\)"):
        config_from_args(args)
    assert main(["train", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: epochs must be >= 1 (got 0)"


def test_terminal_control_characters_are_stripped() -> None:
    title = "Evil\x1b]0;pwned\x07\x1b[2J Title\r\u202e"
    assert terminal_safe(f"  1. {title}  [Drama]\n") == "  1. Evil]0;pwned Title  [Drama]\n"
    assert terminal_safe("tab\tand é stay") == "tab\tand é stay"


def _tiny(n_users: int = 40, per_user: int = 10) -> Dataset:
    rows = [
        (f"u{u}", f"i{(u + k) % 30}", 4.0, 1_600_000_000 + 100 * u + k) for u in range(n_users) for k in range(per_user)
    ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(30)],
            "title": [f"T{i}" for i in range(30)],
            "categories": [()] * 30,
            "text": "",
        }
    )
    return Dataset("tiny", inter, items, None, (1.0, 5.0))


def test_small_data_random_split_says_what_it_needs() -> None:
    with pytest.raises(
        ValueError, match=r"a user needs at least 10 positive interactions, and the most any user has here is 8"
    ):
        split(_tiny(per_user=8))


def test_leave_one_out_split_works_for_40_users_by_10() -> None:
    s = split(_tiny(), method="leave_one_out", seed=0)
    assert (len(s.train), len(s.valid), len(s.test)) == (320, 40, 40)
    assert s.valid["u"].nunique() == 40 and s.test["u"].nunique() == 40
    with pytest.raises(ValueError, match="at least 3 positive interactions"):
        split(_tiny(per_user=2), method="leave_one_out")


def test_a_fast_fresh_training_is_not_called_loaded_from_cache(tmp_path: Path, capsys) -> None:
    """EASE on a small world fits in well under 5 s: the first run trains, only the second loads."""
    from engine.cli import main

    argv = ["-q", "train", "--dataset", "demo", "--scale", "0.1", "--model", "ease", "--no-text"]
    argv += ["--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    assert ": trained in " in capsys.readouterr().out
    assert main(argv) == 0
    assert ": loaded from cache in " in capsys.readouterr().out


def test_member_sha256_is_checked(tmp_path: Path) -> None:
    import hashlib

    good = b"a,b\n1,2\n"
    archive = Archive("x", "u", None, ("r.csv",), member_sha256={"r.csv": hashlib.sha256(good).hexdigest()})
    path = tmp_path / "x.zip"
    for content, ok in ((good, True), (b"a,b\n1,3\n", False)):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x/r.csv", content)
        problem = _structure_problem(path, archive)
        assert (problem is None) == ok
        if not ok:
            assert problem.startswith("r.csv has sha256 ") and problem.endswith("(pinned)")
