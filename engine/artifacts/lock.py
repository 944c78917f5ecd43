"""One writer at a time per model, and an early check that the store can be written at all.

Two ``gatlens update`` runs that both build on v4 would each save a v5-or-v6 missing the other's
rows. Writers of one dataset + fingerprint therefore take an exclusive ``fcntl.flock`` on a lock
file in the store. The kernel drops the lock when its process dies (``kill -9`` included), so a
lock can never go stale; a second writer waits, says so once, and gives up with a clear error
after a timeout. The lock is re-entrant within a thread (an update holds it while its save takes
it again) and excludes other threads of the same process too.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

try:  # POSIX only; elsewhere writers are not serialised (logged once)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 600.0  # seconds; an update is minutes at most, a stuck writer should not hang forever
LOCK_TIMEOUT_ENV = "GATLENS_LOCK_TIMEOUT"
_POLL_SECONDS = 0.2


class LockTimeoutError(RuntimeError):
    """Another process kept the writers' lock longer than the timeout."""


class StoreNotWritableError(RuntimeError):
    """The artifact store's folder cannot be written (checked before any training)."""


class _Held:
    """Per-process state of one lock file: a thread lock, how deep it is held, the open file."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


def lock_timeout_from_env(default: float = DEFAULT_LOCK_TIMEOUT) -> float:
    """``$GATLENS_LOCK_TIMEOUT`` in seconds, or ``default`` when unset.

    Raises:
        ValueError: the variable is set but not a number >= 0.
    """
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        raise ValueError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds >= 0 (got {raw!r})")
    return value


class WriterLock:
    """Exclusive, re-entrant lock of one model's writers (a context manager).

    Args:
        path: the lock file (created with its folder when missing).
        key: what is being written, for messages (e.g. ``"demo/0123456789abcdef"``).
        timeout: seconds to wait for another writer before giving up (default: 600).
    """

    def __init__(self, path: Path, key: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = Path(path)
        self.key = key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, key={self.key!r}, timeout={self.timeout!r})"

    def __enter__(self) -> WriterLock:
        with _HELD_GUARD:
            held = _HELD.setdefault(str(self.path), _Held())
        deadline = time.monotonic() + self.timeout
        if not held.thread_lock.acquire(timeout=max(self.timeout, 0.0)):
            raise LockTimeoutError(self._timeout_message(None))
        try:
            if held.depth == 0:
                held.fd = self._acquire_file(deadline)
            held.depth += 1
        except BaseException:
            held.thread_lock.release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        held = _HELD[str(self.path)]
        held.depth -= 1
        if held.depth == 0 and held.fd is not None:
            if fcntl is not None:
                fcntl.flock(held.fd, fcntl.LOCK_UN)
            os.close(held.fd)
            held.fd = None
        held.thread_lock.release()

    def _acquire_file(self, deadline: float) -> int | None:
        if fcntl is None:  # pragma: no cover - Windows
            logger.debug("no fcntl on this platform: writers of %s are not serialised", self.key)
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._wait_for(fd, deadline)
            # Who holds it, for the message another writer prints while it waits.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _wait_for(self, fd: int, deadline: float) -> None:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if announced:
                    logger.warning("got the lock for %s; continuing", self.key)
                return
            except BlockingIOError:
                pass
            if not announced:
                logger.warning(
                    "waiting for another gatlens process writing %s… (%s; giving up after %.0fs)",
                    self.key,
                    self._holder(),
                    self.timeout,
                )
                announced = True
            if time.monotonic() >= deadline:
                raise LockTimeoutError(self._timeout_message(self._holder()))
            time.sleep(_POLL_SECONDS)

    def _holder(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return text or "holder unknown"

    def _timeout_message(self, holder: str | None) -> str:
        who = f" ({holder})" if holder else ""
        return (
            f"another gatlens process{who} kept writing {self.key} for more than {self.timeout:.0f}s; "
            f"nothing was written. Retry when it has finished (its lock, {self.path}, is released when that "
            f"process exits), or allow a longer wait with {LOCK_TIMEOUT_ENV}=<seconds>"
        )


def check_writable(folder: Path) -> None:
    """Make ``folder`` (and its parents) and prove a file can be created in it.

    Raises:
        StoreNotWritableError: naming the folder and the reason, before any long work starts.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise StoreNotWritableError(
            f"the model cache {folder} cannot be written ({reason}"
            f"{': ' + str(err.filename) if err.filename and str(err.filename) != str(folder) else ''}); "
            "nothing was trained or saved. Give this user write access to it, or choose another folder "
            "(--cache-dir)"
        ) from err
