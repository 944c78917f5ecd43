"""A real ``streamlit run`` for the tests that need one (the browser tests, the binding test).

Starts the command, waits until ``/_stcore/health`` on 127.0.0.1 answers, and stops it however
the test ends. A distinct module name (not ``conftest``) so both test files import it plainly.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    cmd: Sequence[str], *, port: int, cwd: Path, env: Mapping[str, str], log: Path, timeout_s: float = 60
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``cmd`` (a ``streamlit run`` on ``port``) until the block ends; yields ``(url, process)``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
