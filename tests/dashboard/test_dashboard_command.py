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
