"""``gatlens update`` reads the options a model was trained with from its stored config (issue 16 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main

TRAINED = ["--split", "leave_one_out", "--item-item-dim", "8", "--no-text", "--epochs", "2"]


def _tiny_csv(folder: Path) -> Path:
    """24 users x 30 items, 8 ratings each: too few for the default 8:1:1 split's valid and test."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(24):
        for n, i in enumerate(rng.choice(30, size=8, replace=False)):
            rows.append(f"u{u},i{i},{rng.integers(1, 6)},{1_000_000 + 100 * u + n}")
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    titles = "\n".join(f"i{i},Film {i},{'Drama' if i % 2 else 'Comedy'}" for i in range(30))
    (folder / "items.csv").write_text("item_id,title,categories\n" + titles + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("upd")
    data, cache = _tiny_csv(root / "my films"), root / "cache"
    argv = ["train", "--dataset", "csv", "--data-dir", str(data), *TRAINED, "--cache-dir", str(cache), "--json"]
    assert main(argv) == 0
    return data, cache


def _new_rows(folder: Path, name: str) -> Path:
    path = folder / f"{name}.csv"
    path.write_text(f"user_id,item_id,rating,timestamp\n{name},i1,5,2000000000\n{name},i2,4,2000000001\n")
    return path


def test_update_reads_the_trained_options_and_builds_on_the_trained_version(
    trained: tuple, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, cache = trained
    capsys.readouterr()
    argv = ["update", "--dataset", "csv", "--data-dir", str(data), "--cache-dir", str(cache)]
    assert main([*argv, "--new", str(_new_rows(tmp_path, "alice")), "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["dataset"], out["version"], out["new_users"]) == ("my-films", 2, 1)
    parent = json.loads((Path(out["artifact"]) / "manifest.json").read_text())["parent"]
    assert parent["version"] == 1
    config = json.loads((Path(out["artifact"]) / "config.json").read_text())
    assert (config["data"]["split"], config["model"]["item_item_dim"], config["features"]["text"]) == (
        "leave_one_out",
        8,
        False,
    )
    # The stored name alone finds it too (no --data-dir), and a matching explicit option is accepted.
    again = ["update", "--dataset", "my-films", "--cache-dir", str(cache), "--item-item-dim", "8", "--epochs", "1"]
    assert main([*again, "--new", str(_new_rows(tmp_path, "bob"))]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("updated gat on my-films: +2 interactions")
    assert "parent my-films/" in printed and "/v2)" in printed


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--split", "random"], "--split random (it was trained --split leave_one_out)"),
        (["--item-item-dim", "4"], "--item-item-dim 4 (it was trained --item-item-dim 8)"),
        (["--attention", "dot"], "--attention dot (it was trained --attention edge)"),
        (["--duplicates", "drop"], "--duplicates drop (it was trained --duplicates error)"),
    ],
)
def test_a_conflicting_option_is_rejected_in_one_line(
    trained: tuple, tmp_path: Path, capsys: pytest.CaptureFixture, option: list[str], expected: str
) -> None:
    data, cache = trained
    before = sorted(p.name for p in (cache / "models").rglob("v*"))
    argv = ["update", "--dataset", "csv", "--data-dir", str(data), "--cache-dir", str(cache), *option]
    assert main([*argv, "--new", str(_new_rows(tmp_path, "carol"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and "model of 'my-films'" in err[0], err
    assert sorted(p.name for p in (cache / "models").rglob("v*")) == before


def test_no_model_names_the_real_dataset(trained: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, cache = trained
    argv = ["update", "--dataset", "csv", "--data-dir", str(data), "--cache-dir", str(cache), "--model", "lightgcn"]
    assert main([*argv, "--new", str(_new_rows(tmp_path, "dan"))]) == 2
    err = capsys.readouterr().err.strip()
    assert "no trained lightgcn model for dataset 'my-films'" in err and "(stored for 'my-films': gat)" in err
    assert "'csv'" not in err
    assert main(["update", "--dataset", "csv", "--cache-dir", str(cache), "--new", "x.csv"]) == 2
    assert "--dataset csv needs --data-dir" in capsys.readouterr().err


def test_artifact_picks_a_stored_model(trained: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache = trained[1]
    argv = ["update", "--dataset", "my-films", "--cache-dir", str(cache), "--artifact", "my-films/0000/v1"]
    assert main([*argv, "--new", str(_new_rows(tmp_path, "erin"))]) == 2
    assert "no stored gat model 'my-films/0000/v1'" in capsys.readouterr().err
    from engine.service import stored_models

    first = stored_models("my-films", "gat", cache_dir=cache)[-1]
    assert first.version == 1
    argv[-1] = first.key  # the newest version of the picked model is updated, with its stored options
    assert main([*argv, "--new", str(_new_rows(tmp_path, "erin")), "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parent"].startswith(first.key.rsplit("/", 1)[0]) and out["version"] > 1
    argv[-1] = first.path  # or by its folder, as `gatlens train` prints it
    assert main([*argv, "--new", str(_new_rows(tmp_path, "fay")), "--epochs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == out["version"] + 1
