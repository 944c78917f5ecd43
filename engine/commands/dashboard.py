"""``gatlens dashboard``: make sure a model is trained, then start the Streamlit app on 127.0.0.1.

The command trains the requested model when none is cached (with a progress bar), so
the app itself never trains on page load, and then replaces itself with
``python -m streamlit run <package>/dashboard/app.py``. The app finds its data through
``GATLENS_*`` environment variables (see :mod:`dashboard.settings`), all set here to
absolute paths so the working directory does not matter.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.commands.common import add_data_args, add_model_args, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="start the dashboard (trains the model first if none is cached)",
        description="Start the GATLens dashboard on http://HOST:PORT. The model named by the options is trained "
        "first when the cache has none (a few minutes for the demo world on a laptop CPU).",
    )
    add_data_args(p)
    add_model_args(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 shares it on every network "
        "interface, deliberately: anyone who can reach this machine can then open it)",
    )
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    p.add_argument("--no-train", action="store_true", help="start even if no model is cached (train in the app)")
    p.add_argument("--dry-run", action="store_true", help="print the streamlit command instead of running it")
    p.set_defaults(func=run_dashboard)


def streamlit_command(app: Path, host: str, port: int) -> list[str]:
    """The argv that starts the app (``python -m streamlit run ...``)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def dashboard_env(args: argparse.Namespace, model: str | None) -> dict[str, str]:
    """Environment for the app process: the data locations as absolute paths."""
    env = dict(os.environ)
    env["GATLENS_CACHE_DIR"] = str(Path(args.cache_dir).expanduser().resolve())
    env["GATLENS_DATASET"] = args.dataset
    env["GATLENS_SEED"] = str(args.seed)
    env["GATLENS_SCALE"] = str(args.scale)
    if args.data_dir:
        env["GATLENS_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    if getattr(args, "no_text", False):
        env["GATLENS_TEXT"] = "0"
    if getattr(args, "epochs", None):
        env["GATLENS_EPOCHS"] = str(args.epochs)
    if model:
        env["GATLENS_MODEL"] = model
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_dashboard(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535 (got {args.port!r})")
    from dashboard.settings import APP_PATH, is_loopback, model_key, project_root

    if not APP_PATH.is_file():
        raise FileNotFoundError(f"dashboard app not found at {APP_PATH}; reinstall gatlens")
    key = None
    if not args.no_train:
        from engine import service

        print(
            f"Loading the {args.model} model for {args.dataset} (training it first if none is cached)…",
            file=sys.stderr,
            flush=True,
        )
        rec = service.train(config_from_args(args), progress=True, cache_dir=Path(args.cache_dir))
        if rec.fingerprint is not None:
            key = model_key(rec.model_name, rec.fingerprint, rec.version)
    env = dashboard_env(args, key)
    argv = streamlit_command(APP_PATH, args.host, args.port)
    print(f"GATLens dashboard: http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if not is_loopback(args.host):
        print(
            f"Note: --host {args.host} makes the dashboard reachable from other machines on the network; "
            "the default 127.0.0.1 keeps it on this one.",
            file=sys.stderr,
            flush=True,
        )
    if args.dry_run:
        print(" ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("GATLENS_")))
        print(" ".join(argv))
        return 0
    # The app's Streamlit settings (dashboard/.streamlit/config.toml) are read beside the script from any
    # directory; starting in the project root keeps a .streamlit/ of the caller's directory out of the mix.
    os.chdir(project_root())
    os.execve(sys.executable, argv, env)
    return 0  # not reached
