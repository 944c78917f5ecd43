"""``gatlens dashboard``: trains what is missing, binds 127.0.0.1, points the app at absolute paths."""

from __future__ import annotations

from dashboard.settings import APP_PATH
from engine.cli import main
from engine.commands.dashboard import streamlit_command


def test_dry_run_trains_missing_model_and_builds_the_command(tiny_world, tmp_path, capsys, monkeypatch) -> None:
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
    manifests = list((tmp_path / "cache" / "models" / "tiny-demo").glob("*/v1/manifest.json"))
    assert len(manifests) == 1  # the missing model was trained before the app starts
    assert env["GATLENS_MODEL"] == f"pop-{manifests[0].parent.parent.name[:8]}-v1"
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
