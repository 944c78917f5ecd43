"""``gatlens dashboard``: start the Streamlit app on 127.0.0.1 at once; train a missing model in the background.

The server starts within seconds whatever the cache holds: the command starts a background
job (:func:`engine.jobs.start_training`, its own process) that loads the requested model when
it is cached and trains it otherwise, writing its progress to a small JSON file, and then
replaces itself with ``python -m streamlit run <package>/dashboard/app.py``. Every page of the
app shows that progress (epoch n of max, validation NDCG@10, a measured ETA) until the model is
stored, then the dashboard. The app finds its data through ``GATLENS_*`` environment variables
(see :mod:`dashboard.settings`), all set here to absolute paths so the working directory does
not matter.
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
        help="start the dashboard (trains the model in the background if none is cached)",
        description="Start the GATLens dashboard on http://HOST:PORT at once. The model named by the options is "
        "trained in a background process when the cache has none (a few minutes for the demo world on a laptop "
        "CPU); the pages show its progress meanwhile.",
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
    p.add_argument(
        "--no-train", action="store_true", help="start no background job (train from the app's Train button)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the app's settings and the streamlit command; start nothing"
    )
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
    if args.dataset == "csv" and args.data_dir:
        from engine.data.csv_loader import csv_dataset_name  # pandas, not torch: only for csv

        # its models are stored under the folder's name (or --name): the dashboard opens that one
        env["GATLENS_DATASET_NAME"] = csv_dataset_name(Path(args.data_dir), getattr(args, "name", None))
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
    from dashboard.settings import APP_PATH, JOB_FILE_ENV, is_loopback, project_root

    if not APP_PATH.is_file():
        raise FileNotFoundError(f"dashboard app not found at {APP_PATH}; reinstall gatlens")
    env = dashboard_env(args, None)
    if not args.no_train:
        from engine import jobs  # light: the job process imports torch, this one does not

        config = config_from_args(args)
        cache_dir = env["GATLENS_CACHE_DIR"]
        job = jobs.status_path(config, cache_dir) if args.dry_run else jobs.start_training(config, cache_dir, env=env)
        env[JOB_FILE_ENV] = str(job)
        if not args.dry_run:
            print(
                f"Loading the {args.model} model for {args.dataset} in the background (training it if none is "
                f"cached); the dashboard shows its progress. Log: {job.with_suffix('.log')}",
                file=sys.stderr,
                flush=True,
            )
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
