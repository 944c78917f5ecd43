"""Cleaning up what interrupted saves and damaged versions leave behind in one model's folder.

- ``.tmp-*`` folders: a save killed before its rename. Only removed while the model's writers'
  lock is held, so no live save can own one.
- ``v<N>`` folders without a manifest (the manifest was lost): never loadable, so moved aside
  like a damaged version (their number stays reserved).
- ``v<N>.corrupt-*`` folders: kept for inspection, but only the newest few (default: 3).

Every action is logged with the folder it touched.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from engine.artifacts.layout import MANIFEST, TMP_PREFIX, corrupt_dirs, version_dirs
from engine.artifacts.verify import move_aside

logger = logging.getLogger(__name__)

KEEP_CORRUPT = 3


@dataclass
class TidyReport:
    """What :func:`tidy_model_dir` did.

    Attributes:
        removed_tmp: unfinished save folders removed.
        moved_orphans: ``v<N>`` folders without a manifest, with where they were moved.
        pruned_corrupt: moved-aside versions deleted (the oldest beyond ``keep``).
    """

    removed_tmp: list[Path] = field(default_factory=list)
    moved_orphans: list[tuple[Path, Path | None]] = field(default_factory=list)
    pruned_corrupt: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removed_tmp or self.moved_orphans or self.pruned_corrupt)


def tidy_model_dir(fp_dir: Path, *, keep_corrupt: int = KEEP_CORRUPT) -> TidyReport:
    """Clean one ``<dataset>/<fingerprint[:16]>`` folder; call it holding that model's writers' lock.

    Args:
        fp_dir: the folder.
        keep_corrupt: how many moved-aside versions to keep, newest first (default: 3).

    Returns:
        What was done (also logged).
    """
    if keep_corrupt < 0:
        raise ValueError(f"keep_corrupt must be >= 0 (got {keep_corrupt!r})")
    report = TidyReport()
    if not fp_dir.is_dir():
        return report
    for tmp in sorted(p for p in fp_dir.iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir()):
        shutil.rmtree(tmp, ignore_errors=True)
        report.removed_tmp.append(tmp)
    if report.removed_tmp:
        logger.warning(
            "removed %d unfinished save folder(s) left by an interrupted save in %s: %s",
            len(report.removed_tmp),
            fp_dir,
            ", ".join(p.name for p in report.removed_tmp),
        )
    for _, path in version_dirs(fp_dir):
        if not (path / MANIFEST).is_file():
            aside = move_aside(path)
            report.moved_orphans.append((path, aside))
            logger.warning(
                "artifact %s has no %s (lost or never written), so it can never load; moved aside to %s",
                path,
                MANIFEST,
                aside,
            )
    report.pruned_corrupt = _prune_corrupt(fp_dir, keep_corrupt)
    return report


def _prune_corrupt(fp_dir: Path, keep: int) -> list[Path]:
    found = corrupt_dirs(fp_dir)
    old = [path for _, _, path in found[: max(len(found) - keep, 0)]]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    if old:
        logger.warning(
            "pruned %d damaged version(s) moved aside earlier in %s (%s); kept the newest %d",
            len(old),
            fp_dir,
            ", ".join(p.name for p in old),
            keep,
        )
    return old
