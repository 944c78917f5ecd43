"""Item text features: one sentence-encoder embedding per item, cached on disk.

Each item becomes one short text (title, categories, description), the frozen
encoder from :mod:`engine.features.encoder` embeds it, and the L2-normalised
rows are cached under a key that changes whenever the model, its weights or any
text changes. Without an encoder the engine still trains, on ids and
categories only, and :class:`TextFeatures.note` says so for the model card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, TEXT, TITLE
from engine.features.encoder import (
    DEFAULT_MODEL,
    SOURCE_CACHE,
    SOURCE_GT,
    SOURCE_LOCAL,
    EncoderInfo,
    gt_package_version,
    locate_encoder,
    resolve_encoder,
    sentence_transformers_available,
)

log = logging.getLogger(__name__)

# Bump when the cached array's meaning changes (text format, normalisation).
CACHE_FORMAT = 1
DISABLED_NOTE = "language-model features disabled"
NOT_INSTALLED_NOTE = "no language model installed: trained on ids + categories only"


@dataclass(frozen=True)
class TextFeatures:
    """Encoded item texts and where they came from.

    Attributes:
        embeddings: ``[n_items, dim]`` float32, L2-normalised rows in the order
            of the items passed in; None when no encoder was available or
            features were disabled.
        info: the encoder that produced them, or None.
        note: one human-readable line for the model card.
    """

    embeddings: np.ndarray | None
    info: EncoderInfo | None
    note: str


def item_texts(items: pd.DataFrame, *, category_label: str = "Genres") -> list[str]:
    """One deterministic text per item: title, categories, description.

    For example ``"Toy Story (1995). Genres: Animation, Children's, Comedy. A cowboy doll ..."``.
    Empty parts are left out, whitespace is collapsed (so no text has a newline),
    and categories keep their stored order.

    Args:
        items: a frame with a ``title`` column and optionally ``categories``
            (tuple/list of str, or one str) and ``text``.
        category_label: the word before the categories (default: ``"Genres"``).

    Returns:
        One string per row, in row order.

    Raises:
        ValueError: ``items`` has no ``title`` column.
    """
    if TITLE not in items.columns:
        raise ValueError(f"items need a {TITLE!r} column (got columns {list(items.columns)!r})")
    n = len(items)
    titles = items[TITLE].tolist()
    categories = items[CATEGORIES].tolist() if CATEGORIES in items.columns else [()] * n
    descriptions = items[TEXT].tolist() if TEXT in items.columns else [""] * n
    texts = []
    for title, cats, description in zip(titles, categories, descriptions, strict=True):
        parts = [_clean(title)]
        names = [_clean(c) for c in _as_sequence(cats)]
        names = [c for c in names if c]
        if names:
            parts.append(f"{category_label}: {', '.join(names)}")
        # The description is the user's own prose: appended verbatim (whitespace aside).
        parts = [_sentence(p) for p in parts if p] + [_clean(description)]
        texts.append(" ".join(p for p in parts if p))
    return texts


def encode_items(
    items: pd.DataFrame,
    *,
    model: str | Path | None = None,
    cache_dir: Path | None = Path("data/cache/text"),
    batch_size: int = 256,
    show_progress: bool = False,
    enabled: bool = True,
) -> TextFeatures:
    """Embed every item's text with a frozen sentence encoder, using the disk cache when it is valid.

    The cache key is sha256 of (model id, weights sha256, sha256 of the joined
    texts), so a hit needs no model load. A cache file that is truncated,
    corrupt or disagrees with its sidecar is logged as a warning and rebuilt.

    Args:
        items: item frame (see :func:`item_texts`); output rows follow its order.
        model: local model directory, sentence-transformers name, or None for
            all-MiniLM-L6-v2 (default: None).
        cache_dir: where ``<key>.npy`` and ``<key>.json`` live; None disables
            caching (default: ``data/cache/text``).
        batch_size: texts per forward pass (default: 256).
        show_progress: show a tqdm bar while encoding (default: False).
        enabled: False skips the language model entirely (default: True).

    Returns:
        The features; ``embeddings`` is None when disabled or no encoder resolves.

    Raises:
        ValueError: ``batch_size < 1``, or ``model`` is a bad explicit path.
    """
    if not enabled:
        return TextFeatures(None, None, DISABLED_NOTE)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size!r})")
    texts = item_texts(items)

    location = locate_encoder(model)
    if location is None:
        return TextFeatures(None, None, _missing_note(model))
    texts_sha = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    key = hashlib.sha256(
        f"v{CACHE_FORMAT}\n{location.model_id}\n{location.weights_sha256}\n{texts_sha}".encode()
    ).hexdigest()

    if cache_dir is not None:
        cached = _read_cache(Path(cache_dir), key, n_rows=len(texts))
        if cached is not None:
            dim = int(cached.shape[1])
            info = EncoderInfo(location.model_id, location.source, location.weights_sha256, dim)
            log.info("item text features: cache hit %s", key[:12])
            return TextFeatures(cached, info, _note(info))

    resolved = resolve_encoder(model)
    if resolved is None:
        return TextFeatures(None, None, _missing_note(model))
    encoder, info = resolved
    embeddings = _encode(encoder, texts, dim=info.dim, batch_size=batch_size, show_progress=show_progress)

    if cache_dir is not None:
        sidecar = {
            "format": CACHE_FORMAT,
            "shape": list(embeddings.shape),
            "dtype": str(embeddings.dtype),
            "sha256": _array_sha256(embeddings),
            "model_id": info.model_id,
            "source": info.source,
            "weights_sha256": info.weights_sha256,
            "texts_sha256": texts_sha,
        }
        try:
            _write_cache(Path(cache_dir), key, embeddings, sidecar)
        except OSError as exc:  # a read-only or full disk costs a re-encode next time, not the run
            log.warning("could not write the text-feature cache in %s: %s", cache_dir, exc)
    return TextFeatures(embeddings, info, _note(info))


def _encode(encoder: Any, texts: list[str], *, dim: int, batch_size: int, show_progress: bool) -> np.ndarray:
    """Encode longest-first so each batch pads little, then put rows back in item order."""
    from tqdm import tqdm

    out = np.zeros((len(texts), dim), dtype=np.float32)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    with tqdm(total=len(texts), desc="encoding item texts", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = encoder.encode(
                [texts[i] for i in rows],
                batch_size=batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[rows] = np.asarray(batch, dtype=np.float32)
            bar.update(len(rows))
    # Normalise here rather than trusting the model's own Normalize module: any model must work.
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, np.float32(1e-12))


def _read_cache(cache_dir: Path, key: str, *, n_rows: int) -> np.ndarray | None:
    """The cached array if present and intact; None (with a warning when it was damaged) otherwise."""
    npy, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if not npy.exists() and not meta.exists():
        return None
    try:
        sidecar = json.loads(meta.read_text(encoding="utf-8"))
        array = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # JSONDecodeError is a ValueError
        log.warning("text-feature cache %s is unreadable (%s): rebuilding it", npy, exc)
        return None
    problems = []
    if not isinstance(sidecar, dict):
        problems.append(f"sidecar is not an object (got {type(sidecar).__name__})")
        sidecar = {}
    if array.ndim != 2 or array.shape[0] != n_rows or list(array.shape) != sidecar.get("shape"):
        problems.append(f"shape {array.shape} vs sidecar {sidecar.get('shape')} and {n_rows} items")
    if array.dtype != np.float32 or str(array.dtype) != sidecar.get("dtype"):
        problems.append(f"dtype {array.dtype} vs sidecar {sidecar.get('dtype')}")
    if not problems and _array_sha256(array) != sidecar.get("sha256"):
        problems.append("array checksum does not match its sidecar")
    if problems:
        log.warning("text-feature cache %s is damaged (%s): rebuilding it", npy, "; ".join(problems))
        return None
    return array


def _write_cache(cache_dir: Path, key: str, array: np.ndarray, sidecar: dict) -> None:
    """Array first, sidecar last: a reader only trusts an array whose sidecar checksum matches."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(cache_dir / f"{key}.npy", lambda f: np.save(f, array, allow_pickle=False))
    payload = json.dumps(sidecar, indent=2, sort_keys=True).encode("utf-8")
    _atomic_write(cache_dir / f"{key}.json", lambda f: f.write(payload))


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write to a temp file in the same directory, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _note(info: EncoderInfo) -> str:
    if info.source == SOURCE_GT:
        version = gt_package_version()
        where = f"{SOURCE_GT} {version} package" if version else f"{SOURCE_GT} package"
    elif info.source == SOURCE_CACHE:
        where = "local Hugging Face cache"
    elif info.source == SOURCE_LOCAL:
        where = "local path"
    else:
        where = info.source
    return f"{info.model_id} ({where}), weights sha256 {info.weights_sha256[:12]}..., {info.dim}-d"


def _missing_note(model: str | Path | None) -> str:
    if not sentence_transformers_available():
        return NOT_INSTALLED_NOTE
    name = DEFAULT_MODEL if model is None else str(model)
    return f"language model {name!r} not available offline: trained on ids + categories only"


def _clean(value: object) -> str:
    """A scalar as single-spaced text; missing values (None, NaN, pd.NA) become ''."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


def _as_sequence(value: object) -> Sequence[object]:
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return list(value)
    text = _clean(value)
    return [text] if text else []


def _sentence(part: str) -> str:
    """End a part with a full stop unless it already ends a sentence."""
    return part if part.endswith((".", "!", "?")) else part + "."
