"""Fixtures of the dashboard tests: a tiny trained world (once per session) and the app on it.

See :mod:`dashboard_support` for the world: the demo generator at 150 users x 200 items written
as a csv dataset with hostile strings planted, a small GAT and a most-popular baseline.
"""

from __future__ import annotations

from typing import Any

import pytest
from dashboard_support import APP, TinyWorld, build_tiny_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    return build_tiny_world(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def open_app(tiny_world: TinyWorld, monkeypatch: pytest.MonkeyPatch):
    """Open the app on the tiny world through a deep link: ``open_app(page="why", user=..., item=...)``."""
    from streamlit.testing.v1 import AppTest

    for key, value in tiny_world.env.items():
        monkeypatch.setenv(key, value)

    def _open(**params: Any) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=90)
        for key, value in params.items():
            at.query_params[key] = str(value)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open
