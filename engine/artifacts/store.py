"""Versioned, checksummed, atomically written model artifacts.

Layout::

    <root>/<dataset>/<fingerprint[:16]>/v<N>/
        manifest.json          identity, per-file sha256 + size, meta, lineage
        <name>.safetensors     one per tensor group (e.g. the model's state_dict)
        <name>.json            one per JSON document (e.g. the id map, the training curve)

A version is written into a hidden temp directory next to its final place (same
filesystem), fsynced, then renamed into place in one step, so readers see either
nothing or a complete artifact. Versions count up per fingerprint (``v1``, ``v2``
after an incremental update, ...) and each manifest names its parent. Loading
verifies every checksum; a damaged or foreign artifact is moved aside
(``v<N>.corrupt-<UTC timestamp>``) and reported as missing, so the caller simply
retrains. Tensors are read only through safetensors, never pickle.

torch and safetensors are imported inside the functions that need them, so
listing models (the dashboard's model picker) reads manifests without loading torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

logger = logging.getLogger(__name__)

FORMAT = "gatlens-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TENSOR_SUFFIX = ".safetensors"
JSON_SUFFIX = ".json"

# One safe path component: no separators, no leading dot (hidden / temp names), no "..".
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FP_RE = re.compile(r"[0-9a-f]{16,128}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_FP_DIR_LEN = 16
_VERSION_DIR_RE = re.compile(r"v([1-9][0-9]{0,8})")
# Versions moved aside still reserve their number, so a parent path never points at a newer artifact.
_ANY_VERSION_DIR_RE = re.compile(r"v([1-9][0-9]{0,8})(?:\.corrupt-.*)?")
_TMP_PREFIX = ".tmp-"
_MAX_SAVE_ATTEMPTS = 1000


@dataclass(frozen=True)
class ArtifactRef:
    """Where one artifact version lives.

    Attributes:
        dataset: dataset name (a directory under the store root).
        fingerprint: full fingerprint (see :func:`engine.artifacts.fingerprint.fingerprint`).
        version: version number, 1 for the first save of a fingerprint.
        path: the version's directory.
        parent: the version this one was derived from, as recorded in its manifest
            (lineage; not part of equality or hashing; None for a root version or when unknown).
    """

    dataset: str
    fingerprint: str
    version: int
    path: Path
    parent: ArtifactRef | None = field(default=None, compare=False)


@dataclass
class LoadedArtifact:
    """A verified artifact read back from the store.

    Attributes:
        ref: which version was read.
        manifest: the parsed ``manifest.json``.
        tensors: ``{group name: {tensor name: Tensor}}`` (on CPU), one per ``.safetensors`` file.
        json_files: ``{name: parsed JSON}``, one per ``.json`` file.
    """

    ref: ArtifactRef
    manifest: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]]
    json_files: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        """The free ``meta`` dict saved with the artifact (config, metrics, model card, ...)."""
        return self.manifest["meta"]


class _CorruptError(Exception):
    """An artifact failed verification; ``file`` names the file, ``problem`` says what is wrong."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem


class ArtifactStore:
    """Saves and loads trained-model artifacts under ``root``.

    Args:
        root: store directory; created on the first save (default: ``data/cache/models``,
            resolved against the current directory when the store is built).
    """

    def __init__(self, root: Path = Path("data/cache/models")) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"

    # ------------------------------------------------------------------ write

    def save(
        self,
        dataset: str,
        fp: str,
        *,
        tensors: Mapping[str, Mapping[str, Tensor]],
        json_files: Mapping[str, Any],
        meta: Mapping[str, Any],
        parent: ArtifactRef | None = None,
    ) -> ArtifactRef:
        """Write a new version of the artifact ``(dataset, fp)`` atomically.

        Args:
            dataset: dataset name; a plain name such as ``"demo"`` or ``"ml-1m"``
                (letters, digits, ``.``, ``_``, ``-``; no leading dot).
            fp: full fingerprint, lower-case hex (at least 16 characters).
            tensors: ``{group: state_dict}``; each group is written as ``<group>.safetensors``.
                Tensors are detached, moved to CPU and made contiguous; a tensor sharing
                storage with an earlier one in the same group (tied weights, views) is cloned.
            json_files: ``{name: JSON-serialisable value}``; each written as ``<name>.json``
                (tuples come back as lists, non-str dict keys as str).
            meta: free JSON dict kept in the manifest. By convention ``meta["model"]`` is the
                model name (or a dict with a ``"name"``) and ``meta["metrics"]`` a dict of
                scalars; :meth:`list_models` summarises those two.
            parent: the version this one was derived from, recorded for lineage (default: None).

        Returns:
            The new version's reference; its number is one above every version already
            present (moved-aside ones included), also when writers race.

        Raises:
            ValueError: a bad dataset name, fingerprint, or file name (the message names it).
            TypeError: a value that is not a tensor / not JSON-serialisable (the message names it).
        """
        _check_dataset(dataset)
        _check_fp(fp)
        if not isinstance(meta, Mapping):
            raise TypeError(f"save: meta must be a dict (got {type(meta).__name__})")
        if parent is not None and not isinstance(parent, ArtifactRef):
            raise TypeError(f"save: parent must be an ArtifactRef or None (got {parent!r})")
        payload = _encode_payload(tensors, json_files)
        meta_doc = _check_json(dict(meta), "meta")
        parent_entry = None if parent is None else self._parent_entry(parent)

        base = self._fp_dir(dataset, fp)
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=base))
        moved = False
        try:
            files: dict[str, dict[str, Any]] = {}
            for name, data in payload.items():
                _write_synced(tmp / name, data)
                files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            # mkdtemp makes the directory private (0700); artifacts are meant to be readable.
            os.chmod(tmp, 0o755)
            version = _next_version(base)
            for _ in range(_MAX_SAVE_ATTEMPTS):
                manifest = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "dataset": dataset,
                    "fingerprint": fp,
                    "version": version,
                    "created": _utc_now_iso(),
                    "engine_version": _engine_version(),
                    "files": files,
                    "meta": meta_doc,
                    "parent": parent_entry,
                }
                text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
                _write_synced(tmp / MANIFEST, text.encode("utf-8"), exclusive=False)
                _fsync_dir(tmp)
                target = base / f"v{version}"
                try:
                    # One atomic step; fails when another writer already owns this (non-empty) name.
                    os.rename(tmp, target)
                except OSError:
                    if not target.exists():
                        raise
                    version = max(version + 1, _next_version(base))
                    continue
                moved = True
                _fsync_dir(base)
                ref = ArtifactRef(dataset, fp, version, target, parent=self._parent_ref(parent_entry))
                logger.info("saved artifact %s (%d files, %d bytes)", target, len(files), _total_bytes(files))
                return ref
            raise RuntimeError(f"save: no free version number under {base} after {_MAX_SAVE_ATTEMPTS} attempts")
        finally:
            if not moved:
                shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------- read

    def load(
        self, ref: ArtifactRef | str, fp: str | None = None, *, version: int | None = None
    ) -> LoadedArtifact | None:
        """Read and verify an artifact.

        Call as ``load(ref)`` for one exact version, or ``load(dataset, fp)`` for the newest
        complete version (the highest ``v<N>`` holding a manifest), or
        ``load(dataset, fp, version=N)``.

        Every file's size and sha256 are checked against the manifest, and the manifest's
        format, dataset, fingerprint and version against what was asked for. On any
        mismatch, truncation or unreadable file a WARNING names the file and the problem,
        the version directory is renamed to ``v<N>.corrupt-<UTC timestamp>``, and None is
        returned so the caller retrains. A directory without a manifest is ignored.

        Args:
            ref: an :class:`ArtifactRef`, or a dataset name.
            fp: the fingerprint; required with a dataset name, not allowed with a ref.
            version: a specific version (default: newest complete version).

        Returns:
            The verified artifact, or None when there is none or it failed verification.
        """
        if isinstance(ref, ArtifactRef):
            if fp is not None or version is not None:
                raise ValueError(f"load: pass either an ArtifactRef or (dataset, fp), not both (got fp={fp!r})")
            dataset, fp, version, path = ref.dataset, ref.fingerprint, ref.version, Path(ref.path)
        else:
            dataset = ref
            _check_dataset(dataset)
            if fp is None:
                raise ValueError(f"load: a fingerprint is required with dataset {dataset!r}")
            _check_fp(fp)
            if version is None:
                complete = [(v, p) for v, p in _version_dirs(self._fp_dir(dataset, fp)) if (p / MANIFEST).is_file()]
                if not complete:
                    logger.debug("no artifact for %s/%s", dataset, fp[:_FP_DIR_LEN])
                    return None
                version, path = complete[-1]
            else:
                _check_version(version)
                path = self._fp_dir(dataset, fp) / f"v{version}"

        if not (path / MANIFEST).is_file():
            if path.is_dir():
                logger.warning("artifact %s has no %s (half-written or foreign directory); ignored", path, MANIFEST)
            else:
                logger.debug("no artifact at %s", path)
            return None
        try:
            manifest = _read_manifest(path, dataset, fp, version)
            tensors, json_files = _read_files(path, manifest["files"])
        except _CorruptError as err:
            aside = _move_aside(path)
            where = f"moved aside to {aside}" if aside is not None else "could not be moved aside"
            logger.warning("artifact %s: %s: %s; %s, it will be rebuilt", path, err.file, err.problem, where)
            return None
        loaded_ref = ArtifactRef(dataset, fp, version, path, parent=self._parent_ref(manifest["parent"]))
        return LoadedArtifact(ref=loaded_ref, manifest=manifest, tensors=tensors, json_files=json_files)

    def latest(self, dataset: str, fp: str) -> ArtifactRef | None:
        """Highest version of ``(dataset, fp)`` whose manifest is valid and matches, or None.

        Only manifests are read (file checksums are verified by :meth:`load`); nothing is moved.
        """
        _check_dataset(dataset)
        _check_fp(fp)
        for v, path in reversed(_version_dirs(self._fp_dir(dataset, fp))):
            manifest = _read_manifest_quietly(path, dataset, fp, v)
            if manifest is not None:
                return ArtifactRef(dataset, fp, v, path, parent=self._parent_ref(manifest["parent"]))
        return None

    def lineage(self, ref: ArtifactRef, *, limit: int = 1000) -> list[tuple[ArtifactRef, dict[str, Any] | None]]:
        """``ref`` and the versions it was derived from, newest first, each with its manifest.

        Only manifests are read (file checksums are verified by :meth:`load`); nothing is moved.
        Parents are looked up under this store's root, so pass the store the version lives in.

        Args:
            ref: the version to start from.
            limit: stop after this many versions (a guard against a corrupt chain; default: 1000).

        Returns:
            ``(ref, manifest)`` pairs, each ref with its parent filled in; the chain ends at a root
            version, or at a version whose manifest is missing or invalid (its manifest is None
            and it is the last entry), or on a cycle.
        """
        chain: list[tuple[ArtifactRef, dict[str, Any] | None]] = []
        seen: set[tuple[str, str, int]] = set()
        current: ArtifactRef | None = ref
        while current is not None and len(chain) < limit:
            ident = (current.dataset, current.fingerprint, current.version)
            if ident in seen:
                logger.warning("artifact %s: its lineage loops back to v%d; stopped there", ref.path, current.version)
                break
            seen.add(ident)
            manifest = _read_manifest_quietly(Path(current.path), current.dataset, current.fingerprint, current.version)
            if manifest is None:
                chain.append((current, None))
                break
            current = ArtifactRef(
                current.dataset,
                current.fingerprint,
                current.version,
                Path(current.path),
                parent=self._parent_ref(manifest["parent"]),
            )
            chain.append((current, manifest))
            current = current.parent
        return chain

    def versions(self, dataset: str, fp: str | None = None) -> list[ArtifactRef]:
        """Every version with a valid manifest, parents filled in, newest last.

        Args:
            dataset: dataset name.
            fp: one fingerprint (ordered by version), or None for all fingerprints of the
                dataset (ordered by creation time) (default: None).
        """
        return [ref for ref, _ in self._iter_manifests(dataset, fp)]

    def list_models(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """A row per valid version, for a model picker; reads manifests only.

        Args:
            dataset: one dataset, or None for all (default: None).

        Returns:
            Dicts, oldest first, with ``dataset``, ``fingerprint``, ``version``, ``created``
            (ISO 8601 UTC), ``engine_version``, ``path`` (str), ``model`` (``meta["model"]``
            or its ``"name"``; None if absent), ``metrics`` (the scalar entries of
            ``meta["metrics"]``), ``bytes`` (total file size) and ``parent``
            (``{"fingerprint", "version"}`` or None).
        """
        if dataset is not None:
            datasets = [dataset]
        elif self.root.is_dir():
            datasets = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.fullmatch(p.name))
        else:
            datasets = []
        rows = []
        for ds in datasets:
            for ref, manifest in self._iter_manifests(ds, None):
                parent = manifest["parent"]
                rows.append(
                    {
                        "dataset": ref.dataset,
                        "fingerprint": ref.fingerprint,
                        "version": ref.version,
                        "created": manifest["created"],
                        "engine_version": manifest.get("engine_version"),
                        "path": str(ref.path),
                        "model": _model_name(manifest["meta"]),
                        "metrics": _scalar_metrics(manifest["meta"]),
                        "bytes": _total_bytes(manifest["files"]),
                        "parent": None
                        if parent is None
                        else {"fingerprint": parent["fingerprint"], "version": parent["version"]},
                    }
                )
        rows.sort(key=lambda r: (r["created"], r["dataset"], r["fingerprint"], r["version"]))
        return rows

    # ---------------------------------------------------------------- helpers

    def _fp_dir(self, dataset: str, fp: str) -> Path:
        return self.root / dataset / fp[:_FP_DIR_LEN]

    def _parent_entry(self, parent: ArtifactRef) -> dict[str, Any]:
        _check_dataset(parent.dataset)
        _check_fp(parent.fingerprint)
        _check_version(parent.version)
        path = Path(parent.path)
        try:
            # Relative to the root so the store can be moved as a whole.
            shown = path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            shown = str(path)
        return {
            "dataset": parent.dataset,
            "fingerprint": parent.fingerprint,
            "version": parent.version,
            "path": shown,
        }

    def _parent_ref(self, entry: Mapping[str, Any] | None) -> ArtifactRef | None:
        if entry is None:
            return None
        ds, fp, v = entry["dataset"], entry["fingerprint"], entry["version"]
        return ArtifactRef(ds, fp, v, self._fp_dir(ds, fp) / f"v{v}")

    def _iter_manifests(self, dataset: str, fp: str | None) -> Iterator[tuple[ArtifactRef, dict[str, Any]]]:
        """(ref, manifest) for every valid version of ``dataset`` (one ``fp`` or all), newest last."""
        _check_dataset(dataset)
        if fp is not None:
            _check_fp(fp)
            fp_dirs = [self._fp_dir(dataset, fp)]
        else:
            ds_dir = self.root / dataset
            fp_dirs = (
                sorted(p for p in ds_dir.iterdir() if p.is_dir() and re.fullmatch(r"[0-9a-f]{16}", p.name))
                if ds_dir.is_dir()
                else []
            )
        found = []
        for fp_dir in fp_dirs:
            for v, path in _version_dirs(fp_dir):
                manifest = _read_manifest_quietly(path, dataset, fp, v)
                if manifest is None:
                    continue
                mfp = manifest["fingerprint"]
                if not mfp.startswith(fp_dir.name):
                    logger.debug("artifact %s: manifest fingerprint %s does not match its directory", path, mfp)
                    continue
                ref = ArtifactRef(dataset, mfp, v, path, parent=self._parent_ref(manifest["parent"]))
                found.append((ref, manifest))
        if fp is None:
            found.sort(key=lambda rm: (rm[1]["created"], rm[0].fingerprint, rm[0].version))
        yield from found


# ---------------------------------------------------------------- validation


def _check_dataset(dataset: str) -> None:
    if not isinstance(dataset, str) or not _NAME_RE.fullmatch(dataset):
        raise ValueError(
            f"artifact store: dataset must be a plain name of letters, digits, '.', '_', '-' (got {dataset!r})"
        )


def _check_fp(fp: str) -> None:
    if not isinstance(fp, str) or not _FP_RE.fullmatch(fp):
        raise ValueError(f"artifact store: fingerprint must be lower-case hex, 16-128 chars (got {fp!r})")


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"artifact store: version must be an int >= 1 (got {version!r})")


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"save: {what} names must be plain names of letters, digits, '.', '_', '-' (got {name!r})")


def _check_json(value: Any, what: str) -> Any:
    """Fail early, naming ``what``, if ``value`` cannot be written as JSON."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"save: {what} is not JSON-serialisable ({err})") from err
    return value


# --------------------------------------------------------------------- write


def _encode_payload(tensors: Mapping[str, Mapping[str, Tensor]], json_files: Mapping[str, Any]) -> dict[str, bytes]:
    """File name -> bytes for every tensor group and JSON document."""
    from safetensors.torch import save as safetensors_save

    if not isinstance(tensors, Mapping):
        raise TypeError(f"save: tensors must be a dict of state_dicts (got {type(tensors).__name__})")
    if not isinstance(json_files, Mapping):
        raise TypeError(f"save: json_files must be a dict (got {type(json_files).__name__})")
    payload: dict[str, bytes] = {}
    for group, state in tensors.items():
        _check_name(group, "tensors")
        # metadata "format": "pt" is what safetensors' own torch helpers write.
        payload[group + TENSOR_SUFFIX] = safetensors_save(_prepare_state(group, state), metadata={"format": "pt"})
    for name, doc in json_files.items():
        _check_name(name, "json_files")
        if name + JSON_SUFFIX == MANIFEST:
            raise ValueError(f"save: json_files name is reserved for the manifest (got {name!r})")
        try:
            text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise TypeError(f"save: json_files[{name!r}] is not JSON-serialisable ({err})") from err
        payload[name + JSON_SUFFIX] = text.encode("utf-8")
    lowered = [n.lower() for n in payload]
    if len(set(lowered)) != len(lowered):
        # Case-insensitive filesystems (macOS, Windows) would let one file overwrite another.
        raise ValueError(f"save: file names differ only by case (got {sorted(payload)!r})")
    return payload


def _prepare_state(group: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, CPU, contiguous tensors with no two sharing storage (safetensors refuses that)."""
    import torch

    if not isinstance(state, Mapping):
        raise TypeError(f"save: tensors[{group!r}] must be a state_dict (got {type(state).__name__})")
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, tensor in state.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"save: tensors[{group!r}] keys must be non-empty str (got {key!r})")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"save: tensors[{group!r}][{key!r}] must be a Tensor (got {type(tensor).__name__})")
        if tensor.layout != torch.strided:
            raise ValueError(f"save: tensors[{group!r}][{key!r}] must be dense (got layout {tensor.layout})")
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()  # tied weights or a view of another entry: store an independent copy
        elif ptr != 0:  # empty tensors all report 0 and never count as shared
            seen.add(ptr)
        out[key] = t
    return out


def _write_synced(path: Path, data: bytes, *, exclusive: bool = True) -> None:
    with open(path, "xb" if exclusive else "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Persist a directory's entries (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _next_version(fp_dir: Path) -> int:
    numbers = [int(m.group(1)) for p in fp_dir.iterdir() if (m := _ANY_VERSION_DIR_RE.fullmatch(p.name))]
    return max(numbers, default=0) + 1


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _engine_version() -> str:
    from engine import __version__

    return __version__


# ---------------------------------------------------------------------- read


def _version_dirs(fp_dir: Path) -> list[tuple[int, Path]]:
    """``(N, path)`` for every ``v<N>`` directory (moved-aside and temp ones excluded), ascending."""
    if not fp_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in fp_dir.iterdir() if (m := _VERSION_DIR_RE.fullmatch(p.name)) and p.is_dir()]
    return sorted(found)


def _read_manifest(path: Path, dataset: str, fp: str | None, version: int) -> dict[str, Any]:
    """Parse and check ``path/manifest.json`` against the expected identity; raises :class:`_CorruptError`."""
    try:
        manifest = json.loads((path / MANIFEST).read_bytes().decode("utf-8"))
    except FileNotFoundError as err:
        raise _CorruptError(MANIFEST, "missing") from err
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _CorruptError(MANIFEST, f"not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise _CorruptError(MANIFEST, f"expected a JSON object (got {type(manifest).__name__})")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise _CorruptError(
            MANIFEST,
            f"format {manifest.get('format')!r} v{manifest.get('format_version')!r}, "
            f"expected {FORMAT!r} v{FORMAT_VERSION}",
        )
    got_fp = manifest.get("fingerprint")
    if fp is not None and got_fp != fp:
        raise _CorruptError(MANIFEST, f"fingerprint {got_fp!r} does not match the requested {fp!r} (stale artifact)")
    if fp is None and not (isinstance(got_fp, str) and _FP_RE.fullmatch(got_fp)):
        raise _CorruptError(MANIFEST, f"invalid fingerprint {got_fp!r}")
    if manifest.get("dataset") != dataset:
        raise _CorruptError(MANIFEST, f"dataset {manifest.get('dataset')!r} does not match the requested {dataset!r}")
    if manifest.get("version") != version:
        raise _CorruptError(MANIFEST, f"version {manifest.get('version')!r} does not match directory v{version}")
    if not isinstance(manifest.get("created"), str):
        raise _CorruptError(MANIFEST, f"invalid 'created' {manifest.get('created')!r}")
    if not isinstance(manifest.get("meta"), dict):
        raise _CorruptError(MANIFEST, f"'meta' must be an object (got {manifest.get('meta')!r})")
    _check_files_entry(manifest.get("files"))
    _check_parent_entry(manifest.get("parent", "<absent>"))
    return manifest


def _check_files_entry(files: Any) -> None:
    if not isinstance(files, dict):
        raise _CorruptError(MANIFEST, f"'files' must be an object (got {files!r})")
    for name, entry in files.items():
        stem, suffix = _split_file_name(name)
        # A name must be a plain file of a known kind: this also stops "../" escapes.
        if suffix is None or name == MANIFEST or not _NAME_RE.fullmatch(stem):
            raise _CorruptError(MANIFEST, f"invalid file name {name!r}")
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and _SHA256_RE.fullmatch(entry["sha256"])
            and isinstance(entry.get("bytes"), int)
            and not isinstance(entry.get("bytes"), bool)
            and entry["bytes"] >= 0
        ):
            raise _CorruptError(MANIFEST, f"invalid entry for {name!r}: {entry!r}")


def _check_parent_entry(parent: Any) -> None:
    if parent is None:
        return
    ok = (
        isinstance(parent, dict)
        and isinstance(parent.get("dataset"), str)
        and _NAME_RE.fullmatch(parent["dataset"])
        and isinstance(parent.get("fingerprint"), str)
        and _FP_RE.fullmatch(parent["fingerprint"])
        and isinstance(parent.get("version"), int)
        and not isinstance(parent.get("version"), bool)
        and parent["version"] >= 1
    )
    if not ok:
        raise _CorruptError(MANIFEST, f"invalid 'parent' {parent!r}")


def _split_file_name(name: Any) -> tuple[str, str | None]:
    if isinstance(name, str):
        for suffix in (TENSOR_SUFFIX, JSON_SUFFIX):
            if name.endswith(suffix):
                return name[: -len(suffix)], suffix
    return "", None


def _read_manifest_quietly(path: Path, dataset: str, fp: str | None, version: int) -> dict[str, Any] | None:
    try:
        return _read_manifest(path, dataset, fp, version)
    except _CorruptError as err:
        logger.debug("skipping artifact %s: %s", path, err)
        return None


def _read_files(
    path: Path, files: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Read, verify and parse every file the manifest lists; raises :class:`_CorruptError`."""
    from safetensors.torch import load as safetensors_load

    tensors: dict[str, dict[str, Tensor]] = {}
    json_files: dict[str, Any] = {}
    for name, entry in files.items():
        try:
            # Hash and parse the same bytes, so what was verified is what gets used.
            data = (path / name).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as err:
            raise _CorruptError(name, "listed in the manifest but missing") from err
        if len(data) != entry["bytes"]:
            raise _CorruptError(name, f"size {len(data)} bytes, manifest says {entry['bytes']} (truncated or altered)")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise _CorruptError(name, f"sha256 {digest} does not match the manifest's {entry['sha256']}")
        stem, suffix = _split_file_name(name)
        if suffix == TENSOR_SUFFIX:
            try:
                tensors[stem] = safetensors_load(data)
            except Exception as err:  # safetensors raises its own error types
                raise _CorruptError(name, f"not a readable safetensors file ({err})") from err
        else:
            try:
                json_files[stem] = json.loads(data.decode("utf-8"))
            except ValueError as err:
                raise _CorruptError(name, f"not valid JSON ({err})") from err
    return tensors, json_files


def _move_aside(path: Path) -> Path | None:
    """Rename a bad version to ``<name>.corrupt-<UTC timestamp>``; None if that fails (e.g. already moved)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.rename(path, target)
    except OSError as err:
        logger.warning("could not move bad artifact %s aside (%s)", path, err)
        return None
    return target


# ------------------------------------------------------------------ summaries


def _total_bytes(files: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(int(entry["bytes"]) for entry in files.values())


def _model_name(meta: Mapping[str, Any]) -> str | None:
    model = meta.get("model")
    if isinstance(model, Mapping):
        model = model.get("name")
    return model if isinstance(model, str) else None


def _scalar_metrics(meta: Mapping[str, Any]) -> dict[str, Any]:
    metrics = meta.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
