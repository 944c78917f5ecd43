"""gatlens import-recs: every broken variant of a lists file is rejected whole with a precise message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from engine.config import DataConfig, RunConfig
from engine.errors import DataValidationError
from engine.recs.export import export_lists, neutralise_formulas
from engine.recs.stored import import_lists, list_imported, load_imported, prepare_data

DATA = ["--dataset", "demo", "--scale", "0.1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("recs_import")
    config = RunConfig(data=DataConfig(dataset="demo", scale=0.1))
    prep = prepare_data(config, cache_dir=cache)
    users, items = list(prep.split.idmap.users[:3]), list(prep.split.idmap.items[:4])
    return cache, config, prep, users, items


def _good(users: list[str], items: list[str]) -> pd.DataFrame:
    rows = [(u, items[(n + r) % 4], r + 1, 1.0 - r / 10) for n, u in enumerate(users) for r in range(3)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])


def _reject(world, tmp_path: Path, text: str, name: str = "recs.csv", encoding: str = "utf-8") -> str:
    cache, config, prep, *_ = world
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    with pytest.raises(DataValidationError) as err:
        import_lists(config, path, "broken", cache_dir=cache, prep=prep)
    assert not [r for r in list_imported(cache) if r["model"] == "broken"], "nothing stored from a rejected file"
    return "\n".join(err.value.problems)


def test_a_good_file_is_stored_with_its_card(world, tmp_path: Path) -> None:
    cache, config, prep, users, items = world
    path = tmp_path / "good.csv"
    _good(users, items).to_csv(path, index=False)
    ref, card = import_lists(config, path, "good", cache_dir=cache, prep=prep)
    assert card["rows"] == 9 and card["lists"]["users"] == 3 and card["lists"]["length"] == 3
    assert card["source"]["file"] == "good.csv" and len(card["source"]["sha256"]) == 64
    assert card["imported"].endswith("+00:00") and card["kind"] == "imported"
    assert (Path(ref.path) / "lists.safetensors").is_file()
    again, _ = import_lists(config, path, "good", cache_dir=cache, prep=prep)
    assert again.version == ref.version + 1  # re-importing a label makes a new version
    model = load_imported(config, "good", cache_dir=cache, prep=prep).model
    assert [prep.split.idmap.items[i] for i in model.items[0]] == [items[0], items[1], items[2]]


def test_unknown_ids_and_bad_ranks_name_line_column_value(world, tmp_path: Path) -> None:
    *_, users, items = world
    u, i = users, items
    text = f"user_id,item_id,rank\n{u[0]},{i[0]},1\nnobody,{i[1]},1\n{u[1]},zzz,1\n{u[2]},{i[2]},0\n"
    problems = _reject(world, tmp_path, text)
    assert "recs.csv, line 3, column 'user_id': got 'nobody', expected a user_id of this dataset" in problems
    assert "recs.csv, line 4, column 'item_id': got 'zzz', expected an item_id of this dataset's catalog" in problems
    assert "recs.csv, line 5, column 'rank': got '0', expected a whole number >= 1" in problems
    text2 = f"user_id,item_id,rank\n{users[0]},{items[0]},first\n"
    assert "line 2, column 'rank': got 'first', expected a whole number >= 1" in _reject(world, tmp_path, text2)


def test_duplicates_gaps_and_uneven_lists(world, tmp_path: Path) -> None:
    *_, users, items = world
    u, i = users, items
    dup = f"user_id,item_id,rank\n{u[0]},{i[0]},1\n{u[0]},{i[1]},1\n{u[1]},{i[0]},1\n{u[1]},{i[0]},2\n"
    problems = _reject(world, tmp_path, dup)
    assert (
        f"line 3, column 'rank': got '1', expected each rank once per user (user '{u[0]}' already has it on line 2)"
        in problems
    )
    assert (
        f"line 5, column 'item_id': got '{i[0]}', expected each item once per user "
        f"(user '{u[1]}' already has it on line 4)" in problems
    )
    gap = f"user_id,item_id,rank\n{u[0]},{i[0]},1\n{u[0]},{i[1]},3\n{u[1]},{i[0]},1\n{u[1]},{i[1]},2\n"
    assert f"line 3, column 'rank': got '3', expected rank 2 for user '{u[0]}'" in _reject(world, tmp_path, gap)
    uneven = (
        f"user_id,item_id,rank\n{u[0]},{i[0]},1\n{u[0]},{i[1]},2\n{u[1]},{i[0]},1\n{u[1]},{i[1]},2\n{u[2]},{i[0]},1\n"
    )
    problems = _reject(world, tmp_path, uneven)
    assert f"line 6, column 'user_id': got '{u[2]}', expected a list of 2 items like 2 other users (got 1)" in problems


def test_empty_header_only_encoding_and_rising_scores(world, tmp_path: Path) -> None:
    *_, users, items = world
    assert "recs.csv: the file is empty" in _reject(world, tmp_path, "")
    assert "line 2: got no data rows after the header" in _reject(world, tmp_path, "user_id,item_id,rank\n")
    latin = f"user_id,item_id,rank\n{users[0]}é,{items[0]},1\n"
    problems = _reject(world, tmp_path, latin, encoding="latin-1")
    assert "line 2, column 'user_id'" in problems and "pass --encoding latin-1" in problems
    rising = f"user_id,item_id,rank,score\n{users[0]},{items[0]},1,0.5\n{users[0]},{items[1]},2,0.9\n"
    assert "line 3, column 'score': got '0.9', expected a score <= 0.5" in _reject(world, tmp_path, rising)
    assert "missing column 'rank'" in _reject(world, tmp_path, f"user_id,item_id\n{users[0]},{items[0]}\n")


def test_cli_columns_parquet_and_labels(world, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache, *_, users, items = world
    frame = _good(users, items).rename(columns={"user_id": "uid", "rank": "pos"})
    path = tmp_path / "vendor.parquet"
    frame.to_parquet(path)
    args = ["import-recs", *DATA, "--cache-dir", str(cache), "--recs", str(path)]
    assert main([*args, "--name", "vendor", "--columns", "uid=user_id,pos=rank"]) == 0
    assert "3 users x 3 items from vendor.parquet (9 rows" in capsys.readouterr().out
    assert main([*args, "--name", "gat", "--columns", "uid=user_id,pos=rank"]) == 2
    assert "--name 'gat' is a model's name" in capsys.readouterr().err
    assert main([*args, "--name", "x/../y"]) == 2
    assert main([*args, "--name", "vendor2"]) == 2  # unmapped columns
    assert "missing column 'user_id'" in capsys.readouterr().err
    frame.iloc[[0, 1]].assign(pos=[1, 1]).to_parquet(bad := tmp_path / "bad.parquet")
    bad_args = ["import-recs", *DATA, "--cache-dir", str(cache), "--recs", str(bad), "--name", "bad"]
    assert main([*bad_args, "--columns", "uid=user_id,pos=rank"]) == 2
    assert "bad.parquet, row 2, column 'pos': got '1', expected each rank once per user" in capsys.readouterr().err


def test_formula_cells_are_neutralised_and_read_back(tmp_path: Path) -> None:
    cells = pd.Series(["=SUM(A1)", "+1", "-5", "@cmd", "-x", "ok", "1e5", "\tx"])
    assert neutralise_formulas(cells).tolist() == ["'=SUM(A1)", "+1", "-5", "'@cmd", "'-x", "ok", "1e5", "'\tx"]
    # A csv world whose ids start like formulas: exported protected, imported back as themselves.
    data = tmp_path / "hostile"
    data.mkdir()
    users = ["@alice", "-5", "bob", "=carol"]
    items = ["=SUM(A1)", "+1", "ok", "@i", "-i", "fine"]
    # user n has items n..n+3 (mod 6); their list holds an item they never had, n+4
    pairs = [(u, items[(n + j) % 6]) for n, u in enumerate(users) for j in range(4)]
    pd.DataFrame(pairs, columns=["user_id", "item_id"]).to_csv(data / "interactions.csv", index=False)
    pd.DataFrame({"item_id": items, "title": items}).to_csv(data / "items.csv", index=False)
    config = RunConfig(data=DataConfig(dataset="csv", data_dir=str(data), split="leave_one_out"))
    cache = tmp_path / "cache"
    lists = tmp_path / "in.csv"
    fresh = [items[(n + 4) % 6] for n in range(4)]
    pd.DataFrame({"user_id": users, "item_id": fresh, "rank": 1}).to_csv(lists, index=False)
    import_lists(config, lists, "hostile", cache_dir=cache)
    rec = load_imported(config, "hostile", cache_dir=cache)
    out = tmp_path / "out.csv"
    export_lists(rec, out, k=1)
    text = out.read_text()
    assert "'@alice,'-i,1," in text and "\n-5,fine,1," in text and "bob,'=SUM(A1),1," in text
    assert "'=carol,+1,1," in text  # +1 is a number: left alone
    _, card = import_lists(config, out, "hostile-back", cache_dir=cache)
    back = load_imported(config, "hostile-back", cache_dir=cache)
    assert card["lists"]["users"] == 4 and (back.model.items == rec.model.items).all()
