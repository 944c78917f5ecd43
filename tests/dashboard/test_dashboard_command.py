"""``gatlens dashboard``: names the background job, binds 127.0.0.1, points the app at absolute paths.

And the app binds 127.0.0.1 however it is started: a bare ``streamlit run`` from another directory
reads the app's own ``dashboard/.streamlit/config.toml``; a server that binds every interface anyway
without being asked to refuses to show data (:func:`dashboard.settings.exposure_problem`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from server_support import free_port, running_server

from dashboard.settings import APP_PATH, exposure_problem, is_loopback
from engine.cli import main
from engine.commands.dashboard import streamlit_command


def test_dry_run_names_the_job_file_and_builds_the_command(tiny_world, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "dashboard",
            "--dataset",
            "csv",
            "--data-dir",
            str(tiny_world.data_dir),
            "--model",
            "pop",
            "--cache-dir",
            "cache",
            "--port",
            "8765",
            "--dry-run",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    env = dict(kv.split("=", 1) for kv in out[0].split())
    assert env["GATLENS_CACHE_DIR"] == str(tmp_path / "cache")
    assert env["GATLENS_DATA_DIR"] == str(tiny_world.data_dir)
    # The model is trained by a background job whose status file the app reads; a dry run starts nothing.
    job = Path(env["GATLENS_JOB_FILE"])
    assert job.parent == tmp_path / "cache" / "jobs" and job.name.startswith("csv-pop-") and job.suffix == ".json"
    assert "GATLENS_MODEL" not in env
    assert not (tmp_path / "cache").exists()
    assert out[1].split()[1:] == [
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        "8765",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def test_bad_port_is_one_line_error(capsys) -> None:
    assert main(["dashboard", "--port", "70000", "--no-train", "--dry-run"]) == 2
    assert "--port must be in 1..65535 (got 70000)" in capsys.readouterr().err


def test_command_binds_the_given_host() -> None:
    argv = streamlit_command(APP_PATH, "127.0.0.1", 8501)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert APP_PATH.is_file() and APP_PATH.parent.name == "dashboard"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_exposure_problem_refuses_only_an_unchosen_open_binding() -> None:
    assert exposure_problem(("127.0.0.1", "::1"), None, {}) is None  # loopback only
    assert exposure_problem((), None, {}) is None  # nothing listening (AppTest)
    problem = exposure_problem(("0.0.0.0", "127.0.0.1"), None, {})
    assert problem is not None and "`0.0.0.0`" in problem and "gatlens dashboard --host 0.0.0.0" in problem
    assert exposure_problem(("::",), "", {}) is not None  # an empty address is Streamlit's "every interface"
    assert exposure_problem(("0.0.0.0",), "0.0.0.0", {}) is None  # chosen: --server.address / --host
    assert exposure_problem(("0.0.0.0",), None, {"GATLENS_ALLOW_REMOTE": "1"}) is None
    assert exposure_problem(("0.0.0.0",), None, {"GATLENS_ALLOW_REMOTE": "0"}) is not None


def test_non_loopback_host_is_passed_on_with_a_note(capsys) -> None:
    assert main(["dashboard", "--host", "0.0.0.0", "--port", "8765", "--no-train", "--dry-run"]) == 0
    captured = capsys.readouterr()
    argv = captured.out.splitlines()[1].split()
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"
    assert "reachable from other machines" in captured.err


def test_bare_streamlit_run_from_another_directory_binds_loopback_and_sends_no_statistics(tmp_path) -> None:
    # What a user types: the app's path, from some other directory, no address or telemetry flags.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_PATH), "--server.port", str(port)]
    with running_server(cmd, port=port, cwd=tmp_path, env=env, log=tmp_path / "server.log") as (_, proc):
        conns = psutil.Process(proc.pid).net_connections(kind="inet")
        listening = {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"127.0.0.1"}, listening  # not 0.0.0.0 / :: (every interface)
    # The options that server ran with, resolved the way `streamlit run` resolves them (the script's
    # path decides which .streamlit/ folders count), from the same foreign directory.
    probe = (
        "import sys; from streamlit import config; config._main_script_path = sys.argv[1]; "
        "print(config.get_option('browser.gatherUsageStats'), config.get_option('server.address'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(APP_PATH)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["False", "127.0.0.1"], out.stderr[-2000:]


def test_a_csv_dataset_opens_first_under_its_folder_name(tiny_world, tmp_path, monkeypatch) -> None:
    """``--dataset csv --data-dir shop`` opens "shop", not the alphabetically first cached dataset."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from engine import service
    from engine.cli import build_parser
    from engine.commands.dashboard import dashboard_env
    from engine.config import RunConfig

    cache = tmp_path / "cache"
    shutil.copytree(tiny_world.cache_dir, cache)
    other = tmp_path / "a-shop"  # sorts before the tiny world's "tiny-demo"
    other.mkdir()
    body = "".join(f"u{u},i{(u + k) % 30}\n" for u in range(40) for k in range(10))
    (other / "interactions.csv").write_text("user_id,item_id\n" + body, encoding="utf-8")
    (other / "items.csv").write_text("item_id,title\n" + "".join(f"i{i},T{i}\n" for i in range(30)), encoding="utf-8")
    data = {"dataset": "csv", "data_dir": str(other), "split": "leave_one_out"}
    service.train(RunConfig().with_overrides(data=data, model={"name": "pop"}), cache_dir=cache)

    args = build_parser().parse_args(["dashboard", "--dataset", "csv", "--data-dir", str(tiny_world.data_dir)])
    assert dashboard_env(args, None)["GATLENS_DATASET_NAME"] == "tiny-demo"

    def opened(**env: str) -> str:
        for key, value in {**tiny_world.env, "GATLENS_CACHE_DIR": str(cache), **env}.items():
            monkeypatch.setenv(key, value)
        at = AppTest.from_file(str(APP_PATH), default_timeout=90)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at.selectbox(key="w_dataset").value

    assert opened(GATLENS_DATASET_NAME="tiny-demo") == "tiny-demo"
    monkeypatch.delenv("GATLENS_DATASET_NAME")
    assert opened() == "a-shop"  # without the name: the first cached dataset, as before
