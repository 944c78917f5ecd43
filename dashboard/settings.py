"""Where the dashboard finds its files and data: package-relative paths and environment settings.

The app is started by ``gatlens dashboard`` (or ``streamlit run dashboard/app.py``) from any
directory, so every file is located relative to this package, and every data location comes
from environment variables that the command (or a test) sets:

- ``GATLENS_CACHE_DIR``: artifact and feature cache (default: ``data/cache``).
- ``GATLENS_DATASET``: dataset offered for training when none is cached (default: ``demo``).
- ``GATLENS_DATA_DIR``: its data folder, for MovieLens or csv (default: none).
- ``GATLENS_DATASET_NAME``: the name its models are stored under, opened first when the URL names
  no dataset (a csv folder's name, or ``--name``; default: ``GATLENS_DATASET``).
- ``GATLENS_SCALE`` / ``GATLENS_SEED``: demo world size and seed (default: 1.0 / 0).
- ``GATLENS_EPOCHS``: epoch cap for the Train button (default: the engine's).
- ``GATLENS_TEXT``: ``0`` trains without language-model item features (default: ``1``).
- ``GATLENS_MODEL``: artifact key selected when the URL names none (default: newest GAT).
- ``GATLENS_LIST_REASONS``: reasons worked out, top card first, when a top-K list opens (default: 50,
  the largest K: every card; a button works out the rest). Each is one explanation, memoised, so
  the "Why this item?" page then opens instantly for those items.
- ``GATLENS_JOB_FILE``: status file of the background job training the model (set by ``gatlens
  dashboard``; every page shows its progress while it runs, see :mod:`dashboard.training`).
- ``GATLENS_JOB_REFRESH``: seconds between checks of that file while it runs (default: 2).
- ``GATLENS_ALLOW_REMOTE``: ``1`` serves the app even when Streamlit listens on every network
  interface without an address having been chosen (default: refuse; see :func:`exposure_problem`).

The Streamlit settings (127.0.0.1, no usage statistics, theme, limits) are in
``dashboard/.streamlit/config.toml``: Streamlit reads a ``.streamlit/`` folder beside the main
script whatever the working directory, where a project-level one is read only when the server
starts in that folder.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterable, Mapping
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


JOB_FILE_ENV = "GATLENS_JOB_FILE"


def model_key(model: str | None, fingerprint: str, version: int) -> str:
    """Short, URL-safe id of one stored model version, e.g. ``gat-02a36f00-v1`` (the ``model`` URL key)."""
    return f"{model or 'model'}-{fingerprint[:8]}-v{version}"


def project_root() -> Path:
    """The folder holding ``assets/`` (the repository root in a checkout)."""
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
        dataset_name: the name that dataset's models are stored under (a csv folder's name), or
            None for ``dataset`` itself: the dataset shown first when the URL names none.
        scale: demo world size multiplier.
        seed: split seed (and demo world seed).
        epochs: epoch cap for the Train button, or None for the engine default.
        text: train with language-model item features.
        model: artifact key to select when the URL names none, or None.
        list_reasons: reasons worked out, top card first, when a top-K list opens (default: 50, the
            largest K, so every card; the rest are one click away).
        job_file: the background training job's status file, or None.
        job_refresh: seconds between checks of the job's status while it runs.
    """

    cache_dir: Path
    dataset: str = "demo"
    data_dir: str | None = None
    dataset_name: str | None = None
    scale: float = 1.0
    seed: int = 0
    epochs: int | None = None
    text: bool = True
    model: str | None = None
    list_reasons: int = 50
    job_file: Path | None = None
    job_refresh: float = 2.0

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
        dataset_name=env.get("GATLENS_DATASET_NAME") or None,
        scale=number("GATLENS_SCALE", float, 1.0),
        seed=number("GATLENS_SEED", int, 0),
        epochs=number("GATLENS_EPOCHS", int, None),
        text=env.get("GATLENS_TEXT", "1").strip().lower() not in ("0", "false", "no", "off"),
        model=env.get("GATLENS_MODEL") or None,
        list_reasons=number("GATLENS_LIST_REASONS", int, 50),
        job_file=Path(env[JOB_FILE_ENV]).expanduser().resolve() if env.get(JOB_FILE_ENV) else None,
        job_refresh=max(number("GATLENS_JOB_REFRESH", float, 2.0), 0.2),
    )


ALLOW_REMOTE_ENV = "GATLENS_ALLOW_REMOTE"


def is_loopback(address: str) -> bool:
    """Whether a listening address only accepts connections from this machine (``0.0.0.0`` and ``::`` do not)."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.split("%", 1)[0].strip("[]")).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=1)
def listening_addresses() -> tuple[str, ...]:
    """The local addresses this process accepts TCP connections on (its listening sockets).

    The socket the Streamlit server really opened, not the configuration that should have
    opened it. Cached: a server binds before it runs any script and keeps its sockets.
    Empty where none is listening (under ``AppTest``) or the system does not tell.
    """
    import psutil

    proc = psutil.Process()
    try:
        conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections("inet")
    except (psutil.Error, OSError):
        return ()
    return tuple(sorted({c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}))


def exposure_problem(
    listening: Iterable[str], address_option: str | None, env: Mapping[str, str] | None = None
) -> str | None:
    """Why the app must not serve this request, or None when its binding is fine.

    A bare ``streamlit run .../dashboard/app.py`` that does not read the app's config
    (an old Streamlit, a packaging that lost the file) listens on every interface. The app
    serves when every listening address is loopback, or when someone chose the address (a
    ``--server.address`` flag, ``STREAMLIT_SERVER_ADDRESS``, a config file, ``gatlens
    dashboard --host``), or when ``GATLENS_ALLOW_REMOTE`` is set; otherwise it refuses.

    Args:
        listening: the addresses the server listens on (:func:`listening_addresses`).
        address_option: Streamlit's ``server.address`` (empty or None when nobody set one).
        env: the environment to read ``GATLENS_ALLOW_REMOTE`` from (default: ``os.environ``).

    Returns:
        A message for the page (Markdown), or None.
    """
    env = os.environ if env is None else env
    exposed = sorted(a for a in listening if not is_loopback(a))
    if not exposed or (address_option or "").strip():
        return None
    if env.get(ALLOW_REMOTE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    shown = ", ".join(f"`{a}`" for a in exposed)
    return (
        f"**Not serving:** this server listens on {shown}, every network interface, although no address "
        "was chosen, so anyone who can reach this machine could open the dashboard (the app's "
        "`dashboard/.streamlit/config.toml` was not read). Start it with `gatlens dashboard`, or add "
        "`--server.address 127.0.0.1` to `streamlit run`. To share it on a network on purpose: "
        "`gatlens dashboard --host 0.0.0.0`, or set `GATLENS_ALLOW_REMOTE=1`."
    )
