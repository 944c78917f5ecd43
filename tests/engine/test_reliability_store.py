"""Faults of the artifact store and of updates: damaged versions, concurrent writers, unwritable
caches, tensors of the wrong shape, and what interrupted saves leave behind (issue 16)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from engine.artifacts.fingerprint import fingerprint
from engine.artifacts.housekeeping import tidy_model_dir
from engine.artifacts.lock import LockTimeoutError, StoreNotWritableError, WriterLock
from engine.artifacts.store import ArtifactStore
from engine.config import RunConfig
from engine.data.schema import ITEM, RATING, TIMESTAMP, USER, Dataset
from engine.data.synthetic import generate_demo_world
from engine.pipeline import load_latest, train_or_load, update_latest
from engine.update.apply import update_model

REPO = Path(__file__).resolve().parents[2]
CFG = RunConfig().with_overrides(features={"text": False}, train={"epochs": 3})
FP = fingerprint({"model": "gat"}, "datahash-reliability", "0.1.0")


@pytest.fixture(scope="module")
def base() -> Dataset:
    return generate_demo_world(seed=0, n_users=120, n_items=150).dataset


def _rows(user: str, items: list[str], t0: int = 2_000_000_000) -> pd.DataFrame:
    return pd.DataFrame(
        {USER: user, ITEM: items, RATING: [5.0, 4.0, 5.0][: len(items)], TIMESTAMP: range(t0, t0 + len(items))}
    )


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed: only the checksum can tell
    path.write_bytes(bytes(data))


def _save(store: ArtifactStore, i: int = 0, parent=None):
    return store.save(
        "demo", FP, tensors={"m": {"x": torch.full((2,), float(i))}}, json_files={}, meta={"i": i}, parent=parent
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# ------------------------------------------------------- damaged update versions


def _three_updates(base: Dataset, cache: Path):
    rec = train_or_load(CFG, dataset=base, cache_dir=cache)
    for n, items in enumerate((["i0001", "i0002"], ["i0003", "i0004"], ["i0005", "i0006", "i0007"]), start=1):
        rec = update_model(rec, _rows(f"new{n}", items, 2_000_000_000 + 10 * n), epochs=1, cache_dir=cache)
    assert rec.ref.version == 4
    return rec


def test_a_damaged_update_version_keeps_its_updates(base: Dataset, tmp_path: Path, caplog) -> None:
    v4 = _three_updates(base, tmp_path)
    _flip_byte(v4.ref.path / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        rec = train_or_load(CFG, dataset=base, cache_dir=tmp_path)
    # Old code: v4 moved aside, then a retrain from the original data: v5 without parent or new users.
    assert rec.ref.version == 5 and rec.ref.parent is not None and rec.ref.parent.version == 3
    n = rec.idmap.n_users
    assert [rec.idmap.user_index(u) for u in ("new1", "new2", "new3")] == [n - 3, n - 2, n - 1]
    assert rec.idmap == v4.idmap  # the same users and items as the damaged version, in the same order
    said = _warnings(caplog)
    assert "v4" in said and "model.safetensors" in said and "sha256" in said
    assert "re-applied its 3 update rows" in said and "on v3" in said
    aside = [p.name for p in v4.ref.path.parent.iterdir() if p.name.startswith("v4.corrupt-")]
    assert len(aside) == 1
    manifest = json.loads((rec.ref.path / "manifest.json").read_text())
    assert [r[USER] for r in json.loads((rec.ref.path / "update.json").read_text())["interactions"]] == [
        "new1",
        "new1",
        "new2",
        "new2",
        "new3",
        "new3",
        "new3",
    ]
    assert manifest["parent"]["version"] == 3
    # The next load is plain: nothing left to recover, the recovered version is the newest.
    again = train_or_load(CFG, dataset=base, cache_dir=tmp_path)
    assert again.ref.version == 5


def test_load_latest_falls_back_to_the_newest_intact_version(base: Dataset, tmp_path: Path, caplog) -> None:
    v4 = _three_updates(base, tmp_path)
    _flip_byte(v4.ref.path / "embeddings.safetensors")
    with caplog.at_level(logging.WARNING):
        rec = load_latest(CFG, cache_dir=tmp_path, dataset=base)
    assert rec is not None and rec.ref.version == 3  # old code: None (and the caller retrained)
    assert rec.idmap.user_index("new2") >= 0
    assert "using v3" in _warnings(caplog) and "skipped v4 (embeddings.safetensors" in _warnings(caplog)
    # An update then builds on v3 with v4's rows re-applied first: nothing of new3 is lost.
    new = update_latest(rec, _rows("new4", ["i0008"]), dataset=base, epochs=1, cache_dir=tmp_path)
    assert new.ref.version == 6 and new.ref.parent.version == 5
    for user in ("new1", "new2", "new3", "new4"):
        new.idmap.user_index(user)


def test_store_load_skips_damaged_newest_and_names_it(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path)
    v1 = _save(store, 1)
    v2 = _save(store, 2, parent=v1)
    _flip_byte(v2.path / "m.safetensors")
    with caplog.at_level(logging.WARNING):
        loaded = store.load("demo", FP)
    assert loaded is not None and loaded.ref == v1 and loaded.meta["i"] == 1
    [skipped] = loaded.skipped
    assert skipped.version == 2 and "m.safetensors: sha256" in skipped.reason
    assert skipped.aside is not None and skipped.aside.name.startswith("v2.corrupt-")
    assert "using v1 of demo/" in _warnings(caplog) and "skipped v2 (m.safetensors: sha256" in _warnings(caplog)
    # Asked for that one version, the store still says None (the caller decides).
    assert store.load("demo", FP, version=2) is None


def test_salvage_reads_only_documents_that_verify(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    v1 = store.save("demo", FP, tensors={}, json_files={"update": {"interactions": [1]}}, meta={})
    v2 = store.save("demo", FP, tensors={}, json_files={"update": {"interactions": [1, 2]}}, meta={}, parent=v1)
    os.rename(v2.path, v2.path.with_name("v2.corrupt-20260101T000000000000Z"))
    got = store.salvage_json("demo", FP, "update", after=1)
    assert got is not None and (got.version, got.doc) == (2, {"interactions": [1, 2]})
    assert store.salvage_json("demo", FP, "update", after=2) is None
    _flip_byte(got.path / "update.json")
    assert store.salvage_json("demo", FP, "update", after=1) is None


# ------------------------------------------------------------- wrong shapes


def test_tensors_of_the_wrong_shape_are_moved_aside_and_rebuilt(base: Dataset, tmp_path: Path, caplog) -> None:
    from safetensors.torch import load_file, save_file

    v1 = train_or_load(CFG, dataset=base, cache_dir=tmp_path)
    path = v1.ref.path / "model.safetensors"
    state = load_file(path)
    key = next(k for k in state if k.endswith(("user_emb.weight", "user_embedding.weight")))
    state[key] = torch.zeros(state[key].shape[0] + 3, state[key].shape[1])
    save_file(state, path, metadata={"format": "pt"})
    manifest_path = v1.ref.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data = path.read_bytes()  # the manifest is made to agree: the checksum passes, the shapes do not
    manifest["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest))

    with caplog.at_level(logging.WARNING):
        rec = train_or_load(CFG, dataset=base, cache_dir=tmp_path)  # old code: RuntimeError size mismatch
    assert rec.ref.version == 2 and rec.ref.parent is None
    said = _warnings(caplog)
    assert "do not fit the gat model" in said and "size mismatch" in said and "moved aside" in said
    assert [p.name.split(".")[0] for p in v1.ref.path.parent.iterdir() if ".corrupt-" in p.name] == ["v1"]
    assert rec.scores(0).shape == (rec.idmap.n_items,)


# --------------------------------------------------------- unwritable cache


def test_an_unwritable_cache_fails_before_training(base: Dataset, tmp_path: Path, monkeypatch) -> None:
    import engine.pipeline as pipeline

    (tmp_path / "models").write_text("not a folder")  # works for root too, unlike chmod

    def no_training(*args, **kwargs):
        raise AssertionError("training started although the cache cannot be written")

    monkeypatch.setattr(pipeline, "train_model", no_training)
    with pytest.raises(StoreNotWritableError, match=r"the model cache .*models.* cannot be written") as err:
        train_or_load(CFG, dataset=base, cache_dir=tmp_path)
    assert "--cache-dir" in str(err.value) and "nothing was trained" in str(err.value)
    with pytest.raises(StoreNotWritableError):
        train_or_load(CFG, dataset=base, cache_dir=tmp_path, force=True)


def test_cli_reports_an_unwritable_cache_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from engine.cli import main

    (tmp_path / "models").write_text("not a folder")
    args = ["train", "--dataset", "demo", "--scale", "0.1", "--no-text", "--epochs", "2", "--cache-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the model cache ") and "cannot be written" in err[0]


# ------------------------------------------------------------------- lock


def _hold_lock_in_child(lock_file: Path, seconds: float) -> subprocess.Popen:
    code = (
        "import fcntl, os, sys, time; "
        f"fd = os.open({str(lock_file)!r}, os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
        "os.write(fd, b'pid %d' % os.getpid()); print('held', flush=True); "
        f"time.sleep({seconds})"
    )
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_writer_waits_then_times_out_with_a_clear_error(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path, lock_timeout=0.6)
    child = _hold_lock_in_child(tmp_path / ".locks" / f"demo--{FP[:16]}.lock", 30)
    try:
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING), pytest.raises(LockTimeoutError) as err:
            _save(store)
        assert 0.5 < time.monotonic() - t0 < 10
    finally:
        child.kill()
        child.wait()
    assert f"waiting for another gatlens process writing demo/{FP[:16]}" in _warnings(caplog)
    assert f"pid {child.pid}" in str(err.value) and "GATLENS_LOCK_TIMEOUT" in str(err.value)
    assert not (tmp_path / "demo" / FP[:16]).exists() or not any((tmp_path / "demo" / FP[:16]).iterdir())
    assert _save(store).version == 1  # the lock went with its process


def test_lock_is_reentrant_and_excludes_other_threads(tmp_path: Path) -> None:
    path, order = tmp_path / "x.lock", []
    lock = WriterLock(path, "demo/x", timeout=5)
    with lock, lock:  # re-entrant: an update holds it while its save takes it again
        worker = threading.Thread(target=lambda: (WriterLock(path, "demo/x").__enter__(), order.append("b")))
        worker.start()
        time.sleep(0.3)
        order.append("a")
    worker.join(5)
    assert order == ["a", "b"]


def test_lock_timeout_from_the_environment_is_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GATLENS_LOCK_TIMEOUT", "2.5")
    assert ArtifactStore(tmp_path).lock_timeout == 2.5
    monkeypatch.setenv("GATLENS_LOCK_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"GATLENS_LOCK_TIMEOUT .*got 'soon'"):
        ArtifactStore(tmp_path)


def test_two_concurrent_cli_updates_keep_both_sets_of_rows(tmp_path: Path) -> None:
    from engine.cli import build_parser
    from engine.commands.update import update_config

    common = ["--dataset", "demo", "--scale", "0.1", "--no-text", "--train-epochs", "2", "--cache-dir", str(tmp_path)]
    config = update_config(build_parser().parse_args(["update", *common, "--new", "x"]))
    v1 = train_or_load(config, cache_dir=tmp_path)
    files = []
    for name in ("alice", "bob"):
        path = tmp_path / f"{name}.csv"
        path.write_text(f"user_id,item_id,rating,timestamp\n{name},i0001,5,2000000000\n{name},i0002,4,2000000001\n")
        files.append(path)
    store = ArtifactStore(tmp_path / "models")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "engine.cli", "update", *common, "--epochs", "1"]
    lines: list[list[str]] = [[], []]
    with store.writing("demo", v1.ref.fingerprint):  # both start while a third writer holds the lock
        procs = [
            subprocess.Popen([*cmd, "--new", str(f)], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
            for f in files
        ]
        readers = [
            threading.Thread(target=lambda p=p, out=out: out.extend(p.stderr))
            for p, out in zip(procs, lines, strict=True)
        ]
        for r in readers:
            r.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(any("waiting for another" in x for x in out) for out in lines):
            time.sleep(0.2)
    for p, r in zip(procs, readers, strict=True):
        p.wait(300)
        r.join(10)
    assert [p.returncode for p in procs] == [0, 0], lines
    assert all(
        any(f"waiting for another gatlens process writing demo/{v1.ref.fingerprint[:16]}" in x for x in out)
        for out in lines
    )
    newest = load_latest(config, cache_dir=tmp_path)
    assert newest.ref.version == 3 and newest.ref.parent.version == 2
    rows = json.loads((newest.ref.path / "update.json").read_text())["interactions"]
    assert sorted(r[USER] for r in rows) == ["alice", "alice", "bob", "bob"]  # old code: one user's rows lost
    newest.idmap.user_index("alice")
    newest.idmap.user_index("bob")
    assert any("builds on v2" in x for out in lines for x in out)


# ------------------------------------------------------------ housekeeping


def test_saves_clean_interrupted_saves_orphans_and_old_corrupt_versions(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path)
    _save(store, 1)
    fp_dir = tmp_path / "demo" / FP[:16]
    (fp_dir / ".tmp-killed").mkdir()  # a save killed before its rename
    (fp_dir / ".tmp-killed" / "model.safetensors").write_bytes(b"partial")
    (fp_dir / "v2").mkdir()  # a version whose manifest was lost
    (fp_dir / "v2" / "m.safetensors").write_bytes(b"x")
    for n in range(5):
        (fp_dir / f"v1.corrupt-2026010{n}T000000000000Z").mkdir()
    with caplog.at_level(logging.WARNING):
        ref = _save(store, 3)
    assert ref.version == 3  # v2's number stays reserved
    names = sorted(p.name for p in fp_dir.iterdir())
    corrupt = [n for n in names if ".corrupt-" in n]
    assert not any(n.startswith(".tmp-") for n in names) and "v2" not in names
    assert len(corrupt) == 3 and any(n.startswith("v2.corrupt-") for n in corrupt)
    assert "v1.corrupt-20260103T000000000000Z" in corrupt and "v1.corrupt-20260102T000000000000Z" not in corrupt
    said = _warnings(caplog)
    assert "removed 1 unfinished save folder(s)" in said and ".tmp-killed" in said
    assert "v2 has no manifest.json" in said.replace(str(fp_dir) + "/", "")
    assert "pruned 3 damaged version(s)" in said and "kept the newest 3" in said


def test_tidy_cleans_every_model_of_a_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, keep_corrupt=1)
    _save(store, 1)
    fp_dir = tmp_path / "demo" / FP[:16]
    for n in range(3):
        (fp_dir / f"v1.corrupt-2026010{n}T000000000000Z").mkdir()
    (fp_dir / ".tmp-x").mkdir()
    [report] = store.tidy()
    assert [p.name for p in report.pruned_corrupt] == [
        "v1.corrupt-20260100T000000000000Z",
        "v1.corrupt-20260101T000000000000Z",
    ]
    assert sorted(p.name for p in fp_dir.iterdir()) == ["v1", "v1.corrupt-20260102T000000000000Z"]
    assert not tidy_model_dir(fp_dir, keep_corrupt=1)  # nothing left to do
    with pytest.raises(ValueError, match=r"keep_corrupt must be >= 0 \(got -1\)"):
        tidy_model_dir(fp_dir, keep_corrupt=-1)
