"""Where the dashboard finds its files and data: package-relative paths and environment settings.

The app is started by ``gatlens dashboard`` (or ``streamlit run dashboard/app.py``) from any
directory, so every file is located relative to this package, and every data location comes
from environment variables that the command (or a test) sets:

- ``GATLENS_CACHE_DIR``: artifact and feature cache (default: ``data/cache``).
- ``GATLENS_DATASET``: dataset offered for training when none is cached (default: ``demo``).
- ``GATLENS_DATA_DIR``: its data folder, for MovieLens or csv (default: none).
- ``GATLENS_SCALE`` / ``GATLENS_SEED``: demo world size and seed (default: 1.0 / 0).
- ``GATLENS_EPOCHS``: epoch cap for the Train button (default: the engine's).
- ``GATLENS_TEXT``: ``0`` trains without language-model item features (default: ``1``).
- ``GATLENS_MODEL``: artifact key selected when the URL names none (default: newest GAT).
- ``GATLENS_LIST_REASONS``: reasons computed when a top-K list opens (default: 3; each is one
  explanation, memoised, so the "Why this item?" page then opens instantly for those items).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
APP_PATH = PACKAGE_DIR / "app.py"
# Debian's Chromium driven by Playwright on a headless box (DESIGN.md): no sandbox, GPU or QUIC,
# and nothing phoned home. Shared by the browser test, the render benchmark and the screenshots.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def model_key(model: str | None, fingerprint: str, version: int) -> str:
    """Short, URL-safe id of one stored model version, e.g. ``gat-02a36f00-v1`` (the ``model`` URL key)."""
    return f"{model or 'model'}-{fingerprint[:8]}-v{version}"


def project_root() -> Path:
    """The folder holding ``assets/`` and ``.streamlit/`` (the repository root in a checkout)."""
    for candidate in (PACKAGE_DIR.parent, PACKAGE_DIR):
        if (candidate / "assets").is_dir():
            return candidate
    return PACKAGE_DIR.parent


def asset(name: str) -> Path:
    """Path of a file in ``assets/`` (the logo, the stylesheet, the pyvis options)."""
    return project_root() / "assets" / name


@dataclass(frozen=True)
class Settings:
    """Data locations and training defaults for one app process.

    Attributes:
        cache_dir: artifact store and feature cache root (absolute).
        dataset: dataset trained by the Train button when no model is cached.
        data_dir: that dataset's folder (MovieLens layouts, csv), or None.
        scale: demo world size multiplier.
        seed: split seed (and demo world seed).
        epochs: epoch cap for the Train button, or None for the engine default.
        text: train with language-model item features.
        model: artifact key to select when the URL names none, or None.
        list_reasons: reasons computed when a top-K list opens.
    """

    cache_dir: Path
    dataset: str = "demo"
    data_dir: str | None = None
    scale: float = 1.0
    seed: int = 0
    epochs: int | None = None
    text: bool = True
    model: str | None = None
    list_reasons: int = 3

    def train_config(self) -> Any:
        """The RunConfig the Train button trains (the engine's defaults for this dataset)."""
        from engine.service import RunConfig

        train: dict[str, Any] = {"seed": self.seed}
        if self.epochs:
            train["epochs"] = self.epochs
        return RunConfig().with_overrides(
            data={"dataset": self.dataset, "data_dir": self.data_dir, "seed": self.seed, "scale": self.scale},
            features={"text": self.text},
            train=train,
        )


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from the environment (see the module docstring).

    Args:
        env: a mapping to read instead of ``os.environ`` (default: None).

    Raises:
        ValueError: a numeric variable does not parse (the message names it).
    """
    env = dict(os.environ if env is None else env)

    def number(name: str, kind: type, default: Any) -> Any:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{name} must be a {kind.__name__} (got {raw!r})") from None

    return Settings(
        cache_dir=Path(env.get("GATLENS_CACHE_DIR") or "data/cache").expanduser().resolve(),
        dataset=env.get("GATLENS_DATASET") or "demo",
        data_dir=env.get("GATLENS_DATA_DIR") or None,
        scale=number("GATLENS_SCALE", float, 1.0),
        seed=number("GATLENS_SEED", int, 0),
        epochs=number("GATLENS_EPOCHS", int, None),
        text=env.get("GATLENS_TEXT", "1").strip().lower() not in ("0", "false", "no", "off"),
        model=env.get("GATLENS_MODEL") or None,
        list_reasons=number("GATLENS_LIST_REASONS", int, 3),
    )
