"""Versioned, checksummed, atomically written model artifacts.

The layout is described in :mod:`engine.artifacts.layout`. A version is written into a hidden
temp directory next to its final place (same filesystem), fsynced, then renamed into place in one
step, so readers see either nothing or a complete artifact. Versions count up per fingerprint
(``v1``, ``v2`` after an incremental update, ...) and each manifest names its parent. Writers of
one model take its lock (:mod:`engine.artifacts.lock`), so two never build on the same version
unawares, and tidy its folder (:mod:`engine.artifacts.housekeeping`) while they hold it.

Loading verifies every checksum (:mod:`engine.artifacts.verify`); a damaged or foreign version is
moved aside (``v<N>.corrupt-<UTC timestamp>``). Asked for the newest version, the store then falls
back to the newest intact one and says which versions it skipped and why; with none left it
reports the artifact as missing, so the caller retrains. Tensors are read only through
safetensors, never pickle.

torch and safetensors are imported inside the functions that need them, so listing models (the
dashboard's model picker) reads manifests without loading torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.artifacts.housekeeping import KEEP_CORRUPT, TidyReport, tidy_model_dir
from engine.artifacts.layout import (
    FP_DIR_LEN,
    FP_DIR_RE,
    LOCK_DIR,
    MANIFEST,
    NAME_RE,
    TMP_PREFIX,
    ArtifactRef,
    LoadedArtifact,
    Salvaged,
    SkippedVersion,
    check_dataset,
    check_fp,
    check_version,
    corrupt_dirs,
    version_dirs,
)
from engine.artifacts.layout import next_version as _next_version
from engine.artifacts.lock import WriterLock, check_writable, lock_timeout_from_env
from engine.artifacts.summary import summary_row
from engine.artifacts.verify import (
    CorruptArtifactError,
    move_aside,
    read_files,
    read_manifest,
    read_manifest_quietly,
    read_verified_json,
)
from engine.artifacts.write import (
    check_json,
    encode_payload,
    fsync_dir,
    manifest_bytes,
    total_bytes,
    write_files,
    write_synced,
)

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["ArtifactRef", "ArtifactStore", "LoadedArtifact", "Salvaged", "SkippedVersion"]

logger = logging.getLogger(__name__)

_MAX_SAVE_ATTEMPTS = 1000


class ArtifactStore:
    """Saves and loads trained-model artifacts under ``root``.

    Args:
        root: store directory; created on the first save (default: ``data/cache/models``,
            resolved against the current directory when the store is built).
        lock_timeout: seconds a writer waits for another writer of the same model before it
            gives up (default: ``$GATLENS_LOCK_TIMEOUT``, else 600).
        keep_corrupt: damaged versions kept (moved aside) per model, newest first; older ones
            are deleted when the model is next written (default: 3).
    """

    def __init__(
        self,
        root: Path = Path("data/cache/models"),
        *,
        lock_timeout: float | None = None,
        keep_corrupt: int = KEEP_CORRUPT,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.lock_timeout = lock_timeout_from_env() if lock_timeout is None else float(lock_timeout)
        self.keep_corrupt = keep_corrupt

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"

    # ------------------------------------------------------------ writers

    @contextmanager
    def writing(self, dataset: str, fp: str) -> Iterator[None]:
        """Hold the writers' lock of ``(dataset, fp)`` for the ``with`` block.

        Anything that reads the newest version and writes one derived from it (an update, a
        recovery) must do both inside this block. Re-entrant: :meth:`save` takes it again.

        Raises:
            LockTimeoutError: another process held it for longer than ``lock_timeout``.
        """
        check_dataset(dataset)
        check_fp(fp)
        lock_file = self.root / LOCK_DIR / f"{dataset}--{fp[:FP_DIR_LEN]}.lock"
        with WriterLock(lock_file, f"{dataset}/{fp[:FP_DIR_LEN]}", timeout=self.lock_timeout):
            yield

    def check_writable(self, dataset: str | None = None, fp: str | None = None) -> None:
        """Prove that a version of ``(dataset, fp)`` could be saved, before long work starts.

        Args:
            dataset: the dataset (default: None: check the store root only).
            fp: the fingerprint (default: None: check the dataset folder only).

        Raises:
            StoreNotWritableError: naming the folder that cannot be written.
        """
        folder = self.root
        if dataset is not None:
            check_dataset(dataset)
            folder = folder / dataset if fp is None else self._fp_dir(dataset, fp)
        check_writable(folder)
        check_writable(self.root / LOCK_DIR)

    def tidy(self, dataset: str | None = None) -> list[TidyReport]:
        """Clean every model folder of ``dataset`` (or of all datasets), each under its lock.

        See :mod:`engine.artifacts.housekeeping`: interrupted saves are removed, versions whose
        manifest is lost are moved aside, and only the newest ``keep_corrupt`` damaged versions kept.
        """
        reports = []
        for ds in self._datasets(dataset):
            ds_dir = self.root / ds
            for fp_dir in sorted(p for p in ds_dir.iterdir() if p.is_dir() and FP_DIR_RE.fullmatch(p.name)):
                # The lock is keyed by the folder's 16-hex name, which is all a folder knows of its fingerprint.
                with self.writing(ds, fp_dir.name):
                    reports.append(tidy_model_dir(fp_dir, keep_corrupt=self.keep_corrupt))
        return reports

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
        """Write a new version of the artifact ``(dataset, fp)`` atomically, holding its writers' lock.

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
            LockTimeoutError: another writer of this model held its lock for too long.
        """
        check_dataset(dataset)
        check_fp(fp)
        if not isinstance(meta, Mapping):
            raise TypeError(f"save: meta must be a dict (got {type(meta).__name__})")
        if parent is not None and not isinstance(parent, ArtifactRef):
            raise TypeError(f"save: parent must be an ArtifactRef or None (got {parent!r})")
        payload = encode_payload(tensors, json_files)
        meta_doc = check_json(dict(meta), "meta")
        parent_entry = None if parent is None else self._parent_entry(parent)
        base = self._fp_dir(dataset, fp)
        with self.writing(dataset, fp):
            base.mkdir(parents=True, exist_ok=True)
            tidy_model_dir(base, keep_corrupt=self.keep_corrupt)
            tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base))
            try:
                files = write_files(tmp, payload)
                # mkdtemp makes the directory private (0700); artifacts are meant to be readable.
                os.chmod(tmp, 0o755)
                fields = {"dataset": dataset, "fp": fp, "files": files, "meta": meta_doc, "parent": parent_entry}
                version = self._publish(tmp, base, fields)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        ref = ArtifactRef(dataset, fp, version, base / f"v{version}", parent=self._parent_ref(parent_entry))
        logger.info("saved artifact %s (%d files, %d bytes)", ref.path, len(files), total_bytes(files))
        return ref

    def _publish(self, tmp: Path, base: Path, fields: Mapping[str, Any]) -> int:
        """Write the manifest (``fields``: its identity, files, meta and parent) and rename ``tmp`` to the
        next free ``v<N>``; returns N."""
        version = _next_version(base)
        for _ in range(_MAX_SAVE_ATTEMPTS):
            text = manifest_bytes(version=version, **fields)
            write_synced(tmp / MANIFEST, text, exclusive=False)
            fsync_dir(tmp)
            target = base / f"v{version}"
            try:
                # One atomic step; fails when another writer already owns this (non-empty) name.
                os.rename(tmp, target)
            except OSError:
                if not target.exists():
                    raise
                version = max(version + 1, _next_version(base))
                continue
            fsync_dir(base)
            return version
        raise RuntimeError(f"save: no free version number under {base} after {_MAX_SAVE_ATTEMPTS} attempts")

    # -------------------------------------------------------------- read

    def load(
        self, ref: ArtifactRef | str, fp: str | None = None, *, version: int | None = None
    ) -> LoadedArtifact | None:
        """Read and verify an artifact.

        Call as ``load(ref)`` for one exact version, or ``load(dataset, fp)`` for the newest
        intact version, or ``load(dataset, fp, version=N)``.

        Every file's size and sha256 are checked against the manifest, and the manifest's
        format, dataset, fingerprint and version against what was asked for. On any
        mismatch, truncation or unreadable file a WARNING names the file and the problem and
        the version directory is renamed to ``v<N>.corrupt-<UTC timestamp>``. Asked for the
        newest version, the store then tries the next older one, and the result lists the
        versions it skipped (:attr:`LoadedArtifact.skipped`); asked for one version, it
        returns None so the caller retrains. A directory without a manifest is ignored.

        Args:
            ref: an :class:`ArtifactRef`, or a dataset name.
            fp: the fingerprint; required with a dataset name, not allowed with a ref.
            version: a specific version (default: the newest intact version).

        Returns:
            The verified artifact, or None when there is none or it failed verification.
        """
        if isinstance(ref, ArtifactRef):
            if fp is not None or version is not None:
                raise ValueError(f"load: pass either an ArtifactRef or (dataset, fp), not both (got fp={fp!r})")
            return self._load_one(ref.dataset, ref.fingerprint, ref.version, Path(ref.path), [])
        dataset = ref
        check_dataset(dataset)
        if fp is None:
            raise ValueError(f"load: a fingerprint is required with dataset {dataset!r}")
        check_fp(fp)
        if version is not None:
            check_version(version)
            return self._load_one(dataset, fp, version, self._fp_dir(dataset, fp) / f"v{version}", [])
        return self._load_newest(dataset, fp)

    def _load_newest(self, dataset: str, fp: str) -> LoadedArtifact | None:
        complete = [(v, p) for v, p in version_dirs(self._fp_dir(dataset, fp)) if (p / MANIFEST).is_file()]
        if not complete:
            logger.debug("no artifact for %s/%s", dataset, fp[:FP_DIR_LEN])
            return None
        skipped: list[SkippedVersion] = []
        for version, path in reversed(complete):
            loaded = self._load_one(dataset, fp, version, path, skipped)
            if loaded is not None:
                if skipped:
                    logger.warning(
                        "using v%d of %s/%s, the newest intact version; skipped %s",
                        version,
                        dataset,
                        fp[:FP_DIR_LEN],
                        "; ".join(f"v{s.version} ({s.reason})" for s in skipped),
                    )
                return loaded
        return None

    def _load_one(
        self, dataset: str, fp: str, version: int, path: Path, skipped: list[SkippedVersion]
    ) -> LoadedArtifact | None:
        """Verify one version; a damaged one is moved aside and appended to ``skipped``."""
        if not (path / MANIFEST).is_file():
            if path.is_dir():
                logger.warning("artifact %s has no %s (half-written or foreign directory); ignored", path, MANIFEST)
            else:
                logger.debug("no artifact at %s", path)
            return None
        try:
            manifest = read_manifest(path, dataset, fp, version)
            tensors, json_files = read_files(path, manifest["files"])
        except CorruptArtifactError as err:
            aside = move_aside(path)
            where = f"moved aside to {aside}" if aside is not None else "could not be moved aside"
            logger.warning("artifact %s: %s: %s; %s, it will be rebuilt", path, err.file, err.problem, where)
            skipped.append(SkippedVersion(version, path, aside, str(err)))
            return None
        loaded_ref = ArtifactRef(dataset, fp, version, path, parent=self._parent_ref(manifest["parent"]))
        return LoadedArtifact(loaded_ref, manifest, tensors, json_files, skipped=list(skipped))

    def move_aside(self, ref: ArtifactRef, reason: str) -> Path | None:
        """Move a version that verified but cannot be used (e.g. tensors of the wrong shape) aside.

        Logs a WARNING naming ``reason``; returns where it went, or None when the move failed.
        """
        aside = move_aside(Path(ref.path))
        where = f"moved aside to {aside}" if aside is not None else "could not be moved aside"
        logger.warning("artifact %s: %s; %s, it will be rebuilt", ref.path, reason, where)
        return aside

    def salvage_json(self, dataset: str, fp: str, name: str, *, after: int) -> Salvaged | None:
        """The newest document ``name`` still readable in a moved-aside version numbered above ``after``.

        A version whose weights were damaged usually still holds an intact manifest and update
        rows; those can be re-applied to the newest intact version instead of being lost.

        Args:
            dataset: dataset name.
            fp: the fingerprint.
            name: the JSON document's name (without ``.json``).
            after: only versions with a higher number count (the newest intact version).

        Returns:
            The newest :class:`Salvaged` document, or None when none verifies.
        """
        check_dataset(dataset)
        check_fp(fp)
        candidates = [(v, s, p) for v, s, p in corrupt_dirs(self._fp_dir(dataset, fp)) if v > after]
        for version, _, path in sorted(candidates, key=lambda row: (row[0], row[1]), reverse=True):
            try:
                manifest = read_manifest(path, dataset, fp, version)
                doc = read_verified_json(path, manifest, name)
            except CorruptArtifactError as err:
                logger.warning("cannot recover %s from %s: %s", name, path, err)
                continue
            if doc is not None:
                return Salvaged(version, path, manifest, doc)
        return None

    def latest(self, dataset: str, fp: str) -> ArtifactRef | None:
        """Highest version of ``(dataset, fp)`` whose manifest is valid and matches, or None.

        Only manifests are read (file checksums are verified by :meth:`load`); nothing is moved.
        """
        check_dataset(dataset)
        check_fp(fp)
        for v, path in reversed(version_dirs(self._fp_dir(dataset, fp))):
            manifest = read_manifest_quietly(path, dataset, fp, v)
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
            manifest = read_manifest_quietly(Path(current.path), current.dataset, current.fingerprint, current.version)
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
        rows = [summary_row(ref, m) for ds in self._datasets(dataset) for ref, m in self._iter_manifests(ds, None)]
        rows.sort(key=lambda r: (r["created"], r["dataset"], r["fingerprint"], r["version"]))
        return rows

    # ----------------------------------------------------------- helpers

    def _datasets(self, dataset: str | None) -> list[str]:
        if dataset is not None:
            return [dataset]
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name))

    def _fp_dir(self, dataset: str, fp: str) -> Path:
        return self.root / dataset / fp[:FP_DIR_LEN]

    def _parent_entry(self, parent: ArtifactRef) -> dict[str, Any]:
        check_dataset(parent.dataset)
        check_fp(parent.fingerprint)
        check_version(parent.version)
        path = Path(parent.path)
        try:
            # Relative to the root so the store can be moved as a whole.
            shown = path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            shown = str(path)
        return {"dataset": parent.dataset, "fingerprint": parent.fingerprint, "version": parent.version, "path": shown}

    def _parent_ref(self, entry: Mapping[str, Any] | None) -> ArtifactRef | None:
        if entry is None:
            return None
        ds, fp, v = entry["dataset"], entry["fingerprint"], entry["version"]
        return ArtifactRef(ds, fp, v, self._fp_dir(ds, fp) / f"v{v}")

    def _iter_manifests(self, dataset: str, fp: str | None) -> Iterator[tuple[ArtifactRef, dict[str, Any]]]:
        """(ref, manifest) for every valid version of ``dataset`` (one ``fp`` or all), newest last."""
        check_dataset(dataset)
        if fp is not None:
            check_fp(fp)
            fp_dirs = [self._fp_dir(dataset, fp)]
        else:
            ds_dir = self.root / dataset
            fp_dirs = (
                sorted(p for p in ds_dir.iterdir() if p.is_dir() and FP_DIR_RE.fullmatch(p.name))
                if ds_dir.is_dir()
                else []
            )
        found = []
        for fp_dir in fp_dirs:
            for v, path in version_dirs(fp_dir):
                manifest = read_manifest_quietly(path, dataset, fp, v)
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
