"""Artifacts trained before a config field existed keep their fingerprint (so they still load)."""

from __future__ import annotations

import pytest

from engine.artifacts.fingerprint import fingerprint
from engine.config import RunConfig

# fingerprint(config.fingerprint_dict(), "data-hash", "0.1.0") computed on main at 41f3c27, before
# the model registry, the data options and ItemGAT added config fields.
PINNED = {
    "gat": "c5af5d4495de9cf56d7e124258e9c2dabfffe9a07c5d1a0c582c55d46beb6174",
    "lightgcn": "c74b8f6254b674b8c1e6ac6ab46c44e8fbd84c3beadf0c1ac34b3466e77de34d",
    "ease": "72be1c2ce422002b8437a8a13c2e9cbbe9d92f79426bfaaf916e66de44fd13a4",
    "bprmf": "55743007b7fb79c94196acfe8072ccf0cd280e1e1ca5768d3c647280e14b00f0",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_default_configs_fingerprint_as_before(name: str) -> None:
    cfg = RunConfig().with_overrides(model={"name": name})
    assert fingerprint(cfg.fingerprint_dict(), "data-hash", "0.1.0") == PINNED[name]


def test_a_later_field_counts_once_it_is_set() -> None:
    base = RunConfig().with_overrides(model={"name": "gat"})
    changed = base.with_overrides(model={"relation": "gfcf"})
    assert "relation" not in base.fingerprint_dict()["model"]
    assert changed.fingerprint_dict()["model"]["relation"] == "gfcf"
    assert fingerprint(changed.fingerprint_dict(), "d", "v") != fingerprint(base.fingerprint_dict(), "d", "v")
