"""Artifact fingerprint and store: identity, atomic versioned saves, verified loads."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

import engine
from engine.artifacts import store as store_module
from engine.artifacts.fingerprint import canonical_json, fingerprint
from engine.artifacts.store import ArtifactRef, ArtifactStore

REPO = Path(__file__).resolve().parents[2]
FP = fingerprint({"model": "gat", "lr": 0.01}, "datahash-a", "0.1.0")
FP_OTHER = fingerprint({"model": "gat", "lr": 0.02}, "datahash-a", "0.1.0")


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "emb.weight": torch.randn(5, 3, generator=g),
        "proj.bias": torch.arange(4, dtype=torch.float64),
        "counts": torch.tensor([3, 1, 4], dtype=torch.int64),
        "mask": torch.tensor([True, False]),
        "half": torch.tensor([0.5, -2.0], dtype=torch.bfloat16),
    }


def _save(store: ArtifactStore, fp: str = FP, parent: ArtifactRef | None = None, **meta) -> ArtifactRef:
    return store.save(
        "demo",
        fp,
        tensors={"model": _state()},
        json_files={"idmap": {"users": ["u1", "u2"], "items": ["i1"]}, "curve": [0.5, 0.25]},
        meta={"model": "gat", "metrics": {"ndcg@10": 0.25, "per_user": [1, 2]}, **meta},
        parent=parent,
    )


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# ------------------------------------------------------------------ fingerprint


def test_canonical_json_is_sorted_compact_and_normalises_containers() -> None:
    assert canonical_json({"b": (1, 2.5), "a": None, "c": {"y": True, "x": 0.1}}) == (
        '{"a":null,"b":[1,2.5],"c":{"x":0.1,"y":true}}'
    )
    assert canonical_json({"s": {3, 1, 2}, "p": Path("a") / "b"}) == '{"p":"a/b","s":[1,2,3]}'
    # floats are written with repr: 1 and 1.0 are different configs
    assert canonical_json({"x": 1}) != canonical_json({"x": 1.0})
    with pytest.raises(TypeError, match=r"\$\.outer.*got 1"):
        canonical_json({"outer": {1: "a"}})
    with pytest.raises(TypeError, match=r"\$\.f.*object"):
        canonical_json({"f": object()})


def test_fingerprint_matches_hand_built_digest() -> None:
    doc = '{"config":{"a":1,"b":[2,3]},"data_hash":"abc","engine_version":"9.9","scheme":"gatlens-fingerprint/1"}'
    assert fingerprint({"b": (2, 3), "a": 1}, "abc", "9.9") == hashlib.sha256(doc.encode()).hexdigest()


def test_fingerprint_changes_with_each_input_and_ignores_key_order() -> None:
    base = fingerprint({"a": 1, "nested": {"x": 1, "y": [1, 2]}}, "h1", "1.0")
    assert len(base) == 64 and int(base, 16) >= 0
    assert fingerprint({"nested": {"y": (1, 2), "x": 1}, "a": 1}, "h1", "1.0") == base
    assert fingerprint({"a": 2, "nested": {"x": 1, "y": [1, 2]}}, "h1", "1.0") != base
    assert fingerprint({"a": 1, "nested": {"x": 1, "y": [2, 1]}}, "h1", "1.0") != base
    assert fingerprint({"a": 1, "nested": {"x": 1, "y": [1, 2]}}, "h2", "1.0") != base
    assert fingerprint({"a": 1, "nested": {"x": 1, "y": [1, 2]}}, "h1", "1.1") != base
    # default engine version is the package's
    assert fingerprint({"a": 1}, "h") == fingerprint({"a": 1}, "h", engine.__version__)
    assert fingerprint({"a": 1}, "h") != fingerprint({"a": 1}, "h", engine.__version__ + ".post1")


def test_fingerprint_accepts_config_dataclasses_and_validates() -> None:
    @dataclasses.dataclass(frozen=True)
    class Cfg:
        lr: float = 0.01
        dims: tuple[int, ...] = (64, 64)

    assert fingerprint(Cfg(), "h", "1") == fingerprint({"dims": [64, 64], "lr": 0.01}, "h", "1")
    assert fingerprint({"c": Cfg()}, "h", "1") == fingerprint({"c": {"lr": 0.01, "dims": [64, 64]}}, "h", "1")
    with pytest.raises(ValueError, match=r"data_hash.*got ''"):
        fingerprint({}, "")
    with pytest.raises(TypeError, match="got list"):
        fingerprint([1, 2], "h")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ store


def test_round_trip_tensors_json_meta_and_manifest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = _save(store)
    assert ref == ArtifactRef("demo", FP, 1, tmp_path / "demo" / FP[:16] / "v1")
    assert ref.parent is None
    assert _entries(ref.path) == ["curve.json", "idmap.json", "manifest.json", "model.safetensors"]

    loaded = store.load("demo", FP)
    assert loaded is not None
    assert loaded.ref == ref
    original = _state()
    assert sorted(loaded.tensors) == ["model"]
    assert sorted(loaded.tensors["model"]) == sorted(original)
    for key, tensor in original.items():
        got = loaded.tensors["model"][key]
        assert got.dtype == tensor.dtype and torch.equal(got, tensor), key
    assert loaded.json_files == {"idmap": {"users": ["u1", "u2"], "items": ["i1"]}, "curve": [0.5, 0.25]}
    assert loaded.meta == {"model": "gat", "metrics": {"ndcg@10": 0.25, "per_user": [1, 2]}}

    manifest = json.loads((ref.path / "manifest.json").read_text())
    assert manifest["fingerprint"] == FP and manifest["dataset"] == "demo" and manifest["version"] == 1
    assert manifest["format_version"] == 1 and manifest["engine_version"] == engine.__version__
    assert manifest["parent"] is None
    created = datetime.fromisoformat(manifest["created"])
    assert created.utcoffset() == timezone.utc.utcoffset(None)
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    for name in ("model.safetensors", "idmap.json", "curve.json"):
        data = (ref.path / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert (ref.path / "curve.json").read_text() == "[0.5,0.25]"
    assert loaded.manifest == manifest


def test_shared_storage_and_noncontiguous_tensors_are_saved(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    w = torch.arange(12.0).reshape(3, 4)
    layer = torch.nn.Linear(4, 2)
    state = {"w": w, "tied": w, "row": w[1], "t": w.T, "empty_a": torch.empty(0), "empty_b": torch.empty(0)}
    state |= {f"lin.{k}": v for k, v in layer.state_dict().items()}
    ref = store.save("demo", FP, tensors={"model": state}, json_files={}, meta={})
    loaded = store.load(ref)
    assert loaded is not None
    got = loaded.tensors["model"]
    assert torch.equal(got["tied"], w) and torch.equal(got["row"], torch.tensor([4.0, 5.0, 6.0, 7.0]))
    assert torch.equal(got["t"], w.T) and got["t"].is_contiguous()
    assert got["empty_a"].shape == (0,) and got["empty_b"].shape == (0,)
    assert torch.equal(got["lin.weight"], layer.weight.detach()) and not got["lin.weight"].requires_grad
    assert loaded.json_files == {}


def test_second_save_creates_v2_with_lineage(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    v1 = _save(store)
    v2 = _save(store, parent=v1, note="incremental")
    assert (v2.version, v2.path.name) == (2, "v2")
    assert v2.parent == v1
    manifest = json.loads((v2.path / "manifest.json").read_text())
    assert manifest["parent"] == {
        "dataset": "demo",
        "fingerprint": FP,
        "version": 1,
        "path": f"demo/{FP[:16]}/v1",
    }

    assert store.latest("demo", FP) == v2
    versions = store.versions("demo", FP)
    assert [r.version for r in versions] == [1, 2]
    assert versions[0].parent is None and versions[1].parent == v1
    loaded = store.load("demo", FP)
    assert loaded is not None and loaded.ref == v2 and loaded.ref.parent == v1
    assert loaded.meta["note"] == "incremental"
    v1_loaded = store.load("demo", FP, version=1)
    assert v1_loaded is not None and "note" not in v1_loaded.meta


def test_truncated_safetensors_is_reported_and_moved_aside(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path)
    ref = _save(store)
    path = ref.path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with caplog.at_level(logging.WARNING, logger="engine.artifacts.store"):
        assert store.load("demo", FP) is None
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "model.safetensors" in record.getMessage()
    assert "truncated" in record.getMessage()
    assert not ref.path.exists()
    [aside] = [n for n in _entries(ref.path.parent) if n.startswith("v1.corrupt-")]
    assert aside in record.getMessage()
    assert store.latest("demo", FP) is None and store.versions("demo", FP) == []
    # the rebuilt artifact does not reuse the moved-aside number
    assert _save(store).version == 2


def test_tampered_json_byte_is_detected(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path)
    ref = _save(store)
    path = ref.path / "idmap.json"
    data = bytearray(path.read_bytes())
    data[data.index(b"u1") + 1] = ord("9")  # same size, one byte changed, still valid JSON
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="engine.artifacts.store"):
        assert store.load(ref) is None
    message = caplog.records[-1].getMessage()
    assert "idmap.json" in message and "sha256" in message
    assert _entries(ref.path.parent)[0].startswith("v1.corrupt-")


def test_manifest_with_other_fingerprint_is_rejected(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path)
    ref = _save(store)
    manifest_path = ref.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fingerprint"] = FP_OTHER  # a manifest from another config copied in
    manifest_path.write_text(json.dumps(manifest))

    assert store.latest("demo", FP) is None  # not offered as valid
    with caplog.at_level(logging.WARNING, logger="engine.artifacts.store"):
        assert store.load("demo", FP) is None
    message = caplog.records[-1].getMessage()
    assert "manifest.json" in message and FP_OTHER in message and "stale" in message
    assert not ref.path.exists()


def test_manifest_file_names_cannot_escape_the_directory(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(tmp_path)
    ref = _save(store)
    manifest_path = ref.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../../secret.json"] = {"sha256": "0" * 64, "bytes": 0}
    manifest_path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="engine.artifacts.store"):
        assert store.load(ref) is None
    assert "invalid file name '../../secret.json'" in caplog.records[-1].getMessage()


def test_missing_manifest_directory_is_ignored(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    v1 = _save(store)
    half = v1.path.parent / "v2"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")

    assert store.latest("demo", FP) == v1
    assert store.versions("demo", FP) == [v1]
    loaded = store.load("demo", FP)
    assert loaded is not None and loaded.ref == v1
    assert store.load("demo", FP, version=2) is None
    assert half.exists()  # ignored, not moved aside
    assert _save(store).version == 3
    assert store.load("demo", FP, version=7) is None


def test_no_temp_dirs_left_after_saves_and_failed_saves(tmp_path: Path, monkeypatch) -> None:
    store = ArtifactStore(tmp_path)
    _save(store)
    _save(store)
    fp_dir = tmp_path / "demo" / FP[:16]
    assert _entries(fp_dir) == ["v1", "v2"]

    def failing_rename(src, dst):
        raise PermissionError(f"denied: {dst}")

    monkeypatch.setattr(store_module.os, "rename", failing_rename)
    with pytest.raises(PermissionError):
        _save(store)
    monkeypatch.undo()
    assert _entries(fp_dir) == ["v1", "v2"]
    with pytest.raises(TypeError, match=r"json_files\['bad'\]"):
        store.save("demo", FP, tensors={}, json_files={"bad": {1, 2}}, meta={})
    assert _entries(fp_dir) == ["v1", "v2"]


def test_a_taken_version_number_moves_the_save_to_the_next(tmp_path: Path, monkeypatch) -> None:
    # Simulate a racing writer: our writer believes v1 is free although another one already took it.
    store = ArtifactStore(tmp_path)
    first = _save(store)
    monkeypatch.setattr(store_module, "_next_version", lambda fp_dir: 1)
    second = _save(store, parent=first)
    assert second.version == 2
    loaded = store.load(second)
    assert loaded is not None and loaded.manifest["version"] == 2
    first_loaded = store.load(first)
    assert first_loaded is not None and first_loaded.manifest["version"] == 1
    assert _entries(first.path.parent) == ["v1", "v2"]


def test_concurrent_writers_get_distinct_versions(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    refs: list[ArtifactRef] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        ref = store.save("demo", FP, tensors={"m": {"x": torch.full((2,), float(i))}}, json_files={}, meta={"i": i})
        with lock:
            refs.append(ref)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.version for r in refs) == [1, 2, 3, 4]
    for ref in refs:
        loaded = store.load(ref)
        assert loaded is not None
        assert torch.equal(loaded.tensors["m"]["x"], torch.full((2,), float(loaded.meta["i"])))
    assert _entries(tmp_path / "demo" / FP[:16]) == ["v1", "v2", "v3", "v4"]


def test_list_models_summarises_manifests_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.list_models() == []
    a1 = _save(store)
    a2 = _save(store, parent=a1)
    b = store.save(
        "ml-100k",
        FP_OTHER,
        tensors={},
        json_files={"curve": []},
        meta={"model": {"name": "lightgcn", "layers": 3}},
    )
    # list_models must not verify files: a damaged tensor file still shows up (load would reject it)
    (a1.path / "model.safetensors").write_bytes(b"x")

    rows = store.list_models()
    assert [(r["dataset"], r["version"]) for r in rows] == [("demo", 1), ("demo", 2), ("ml-100k", 1)]
    first = rows[0]
    assert first["fingerprint"] == FP and first["model"] == "gat" and first["path"] == str(a1.path)
    assert first["metrics"] == {"ndcg@10": 0.25}  # non-scalar entries are left out
    assert first["parent"] is None and rows[1]["parent"] == {"fingerprint": FP, "version": 1}
    assert first["engine_version"] == engine.__version__
    manifest = json.loads((a2.path / "manifest.json").read_text())
    assert rows[1]["bytes"] == sum(f["bytes"] for f in manifest["files"].values())
    assert rows[1]["created"] == manifest["created"]
    assert rows[2]["model"] == "lightgcn" and rows[2]["metrics"] == {} and rows[2]["bytes"] == 2
    assert [r["version"] for r in store.list_models("ml-100k")] == [b.version]
    assert [(r.fingerprint, r.version) for r in store.versions("demo")] == [(FP, 1), (FP, 2)]


def test_list_models_does_not_import_torch(tmp_path: Path) -> None:
    _save(ArtifactStore(tmp_path))
    code = (
        "import sys; from engine.artifacts.store import ArtifactStore; "
        f"rows = ArtifactStore({str(tmp_path)!r}).list_models(); "
        "assert len(rows) == 1, rows; assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bad_names_and_arguments_are_rejected(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ValueError, match=r"got '\.\./x'"):
        store.save("../x", FP, tensors={}, json_files={}, meta={})
    with pytest.raises(ValueError, match="got 'ABC'"):
        store.save("demo", "ABC", tensors={}, json_files={}, meta={})
    with pytest.raises(ValueError, match="reserved"):
        store.save("demo", FP, tensors={}, json_files={"manifest": {}}, meta={})
    with pytest.raises(ValueError, match="got 'a/b'"):
        store.save("demo", FP, tensors={"a/b": {}}, json_files={}, meta={})
    with pytest.raises(TypeError, match=r"tensors\['m'\]\['x'\] must be a Tensor"):
        store.save("demo", FP, tensors={"m": {"x": [1.0]}}, json_files={}, meta={})
    with pytest.raises(ValueError, match="fingerprint is required"):
        store.load("demo")
    assert not (tmp_path / "demo").exists()  # validation happens before anything is written
