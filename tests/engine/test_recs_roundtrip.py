"""Export a model's lists, import them under a label, and audit: the report equals the model's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cli import build_parser, main
from engine.commands.common import config_from_args
from engine.fairness.audit import run_audit
from engine.recs.export import export_lists
from engine.recs.stored import import_lists, list_imported, load_imported

N_BOOT = 200
DEMO = ["--dataset", "demo", "--scale", "0.1", "--epochs", "1", "--no-text"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recs_roundtrip")


@pytest.fixture(scope="module")
def config(cache_dir: Path):
    return config_from_args(build_parser().parse_args(["audit", *DEMO, "--cache-dir", str(cache_dir)]))


@pytest.fixture(scope="module")
def rec(config, cache_dir: Path):
    from engine.pipeline import train_or_load

    return train_or_load(config, cache_dir=cache_dir)


def _assert_same_report(native, imported) -> None:
    assert imported.accuracy == native.accuracy
    assert imported.beyond_accuracy == native.beyond_accuracy
    assert imported.exposure_gap == native.exposure_gap
    for name in ("groups", "disparities", "exposure", "per_user"):
        pd.testing.assert_frame_equal(getattr(imported, name), getattr(native, name), check_exact=True)
    for name in ("tradeoff",):
        if getattr(native, name) is None:
            assert getattr(imported, name) is None
        else:
            pd.testing.assert_frame_equal(getattr(imported, name), getattr(native, name), check_exact=True)
    assert imported.baseline == native.baseline
    np.testing.assert_array_equal(np.asarray(imported.lorenz), np.asarray(native.lorenz))
    differ = {k for k in native.settings if native.settings[k] != imported.settings[k]}
    assert differ <= {"model", "candidates", "lists"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_audit_equals_native(rec, config, cache_dir: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"ours{suffix}"
    info = export_lists(rec, out, k=20, batch_users=64)  # several batches
    assert info["users"] == rec.prep.split.n_users and info["rows"] == 20 * rec.prep.split.n_users
    label = f"ours-{suffix[1:]}"
    _ref, card = import_lists(config, out, label, cache_dir=cache_dir)
    assert card["lists"] == {"users": 150, "length": 20, "scores": "file", "users_without_history": 0}
    assert card["rows"] == 3000 and len(card["source"]["sha256"]) == 64
    imported = load_imported(config, label, cache_dir=cache_dir)
    # Plain lists, and the re-rankers + sweep on top (candidates = the exported 20).
    for options in ({}, {"candidates": 20, "rerank": "mmr:0.3", "sweep": "pop"}):
        native = run_audit(rec, n_boot=N_BOOT, seed=3, **options)
        mine = run_audit(imported, n_boot=N_BOOT, seed=3, **options)
        _assert_same_report(native, mine)
        lists = mine.settings["lists"]
        assert lists["users_covered"] == lists["users_held_out"] == native.settings["n_users_evaluated"]
        assert lists["scores"] == "file" and lists["seen_items_listed"] == 0
    plain = run_audit(rec, n_boot=0)
    assert card["metrics"]["test_ndcg@10"] == pytest.approx(plain.accuracy["ndcg@10"], abs=1e-12)


def test_cli_round_trip_and_compare(rec, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "all.csv"
    base = [*DEMO, "--cache-dir", str(cache_dir)]
    assert main(["recommend", *base, "--all", "-k", "10", "--out", str(out)]) == 0
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was renamed into place"
    data = ["--dataset", "demo", "--scale", "0.1", "--cache-dir", str(cache_dir)]
    assert main(["import-recs", *data, "--recs", str(out), "--name", "cli-lists"]) == 0
    printed = capsys.readouterr().out
    assert "150 users x 10 items" in printed and "covers 142 of 142 test users" in printed
    assert main(["audit", *base, "--model", "cli-lists", "--n-boot", "0", "--json"]) == 0
    capsys.readouterr()
    assert main(["audit", *base, "--compare", "gat,cli-lists,pop", "--n-boot", "0"]) == 0
    table = capsys.readouterr().out
    gat_row = next(line for line in table.splitlines() if line.strip().startswith("gat "))
    lists_row = next(line for line in table.splitlines() if "cli-lists (imported, 142 users)" in line)
    assert gat_row.split()[1:4] == lists_row.split()[4:7]  # same NDCG, recall, coverage
    labels = {r["model"] for r in list_imported(cache_dir)}
    assert {"cli-lists"} <= labels


def test_lists_without_scores_use_rank_scores(rec, config, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ranked.csv"
    export_lists(rec, out, k=15)
    pd.read_csv(out, dtype=str).drop(columns="score").to_csv(out, index=False)
    import_lists(config, out, "no-scores", cache_dir=cache_dir)
    imported = load_imported(config, "no-scores", cache_dir=cache_dir)
    assert imported.model.list_scores[0].tolist() == [(16 - r) / 15 for r in range(1, 16)]
    report = run_audit(imported, n_boot=0, rerank="pop:0.5", candidates=15)
    assert report.settings["lists"]["scores"] == "rank-derived"
    plain = run_audit(imported, n_boot=0)
    assert plain.accuracy == run_audit(rec, n_boot=0).accuracy  # order is all the lists carry
    with pytest.raises(ValueError, match="at most the imported lists' length 15"):
        run_audit(imported, k=20, n_boot=0)


def test_truth_file_and_partial_coverage(rec, config, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "half.csv"
    export_lists(rec, out, k=10)
    frame = pd.read_csv(out, dtype=str)
    half = sorted(frame["user_id"].unique())[:75]
    frame[frame["user_id"].isin(half)].to_csv(out, index=False)
    import_lists(config, out, "half", cache_dir=cache_dir)
    from engine.service import ServedModel

    served = ServedModel(load_imported(config, "half", cache_dir=cache_dir))
    assert served.imported
    report = served.audit(n_boot=0)
    lists = report.settings["lists"]
    assert lists["users_listed"] == 75 and lists["users_covered"] == report.settings["n_users_evaluated"] < 75 + 1
    # A truth file: the test part of the split written as external ids.
    split = rec.prep.split
    test = split.test
    truth = pd.DataFrame(
        {
            "user_id": np.asarray(split.idmap.users)[test["u"].to_numpy()],
            "item_id": np.asarray(split.idmap.items)[test["i"].to_numpy()],
        }
    )
    path = tmp_path / "truth.csv"
    truth.to_csv(path, index=False)
    on_truth = served.audit(n_boot=0, truth=str(path))
    assert on_truth.accuracy == report.accuracy
    assert on_truth.settings["truth"]["rows"] == len(truth)
