"""CLI commands keep working while `splitlab serve` owns the DuckDB warehouse file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, splitlab

CONTRACT = """
metrics:
  - {key: conversion, kind: binary, event: purchase}
experiment:
  key: checkout
  hypothesis: One-page checkout converts better
  variants:
    - {key: control, weight: 0.5, is_control: true}
    - {key: treatment, weight: 0.5}
  metrics: {primary: conversion}
"""


def test_import_and_analyze_through_running_server(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    _running_checkout(server_env, tmp_path)
    key = splitlab(
        server_env, "keys", "create", "--scope", "admin", "--user", "rita"
    ).stdout.split()[0]

    rows = ["experimentKey,variantKey,userKey,eventType"]
    rows += [f"checkout,{'treatment' if i % 2 else 'control'},u{i},exposure" for i in range(400)]
    exposures = tmp_path / "exposures.csv"
    exposures.write_text("\n".join(rows) + "\n")

    port = free_port()
    env = server_env | {"SPLITLAB_API_KEY": key}  # no SPLITLAB_HOST / SPLITLAB_PORT
    process = subprocess.Popen(
        [sys.executable, "-m", "splitlab.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("w"),
    )
    recorded = Path(server_env["SPLITLAB_HOME"]) / "server.json"
    try:
        deadline = time.monotonic() + 60  # a loaded 2-core CI machine starts slowly
        while time.monotonic() < deadline and not recorded.exists():
            if process.poll() is not None:
                pytest.fail(f"server exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        assert json.loads(recorded.read_text()) == {
            "pid": process.pid,
            "host": "127.0.0.1",
            "port": port,
        }
        # the server now owns warehouse.duckdb: both commands must go through it, and find
        # it through server.json
        imported = splitlab(env, "import", "exposures", str(exposures))
        assert "lock" not in (imported.stdout + imported.stderr).lower()
        analysed = splitlab(env, "analyze", "checkout", "--format", "json")
        snapshot = json.loads(analysed.stdout)
        assert snapshot["watermark"]["exposures"] == 400
        overall = [r for r in snapshot["results"] if r["segment"] is None]
        assert [(r["metric"], r["control_n"], r["treatment_n"]) for r in overall] == [
            ("conversion", 200, 200)
        ]
        table = splitlab(env, "analyze", "checkout").stdout
        assert "conversion" in table
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not recorded.exists(), "a clean shutdown removes server.json"


def _running_checkout(env: dict[str, str], tmp_path: Path) -> None:
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    splitlab(env, "apply", "-f", str(contract))
    splitlab(env, "users", "create", "rita", "--role", "reviewer", "--password", "long-pass1")
    splitlab(env, "experiments", "transition", "checkout", "review")
    splitlab(env, "experiments", "review", "checkout", "approve", "--as", "rita")
    splitlab(env, "experiments", "transition", "checkout", "running")


def test_a_server_that_does_not_answer_is_a_one_line_error(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    """Another process holds the warehouse file, server.json is stale (its process is gone)
    and nothing listens on the configured port: every command that needs the server says so
    in one line and exits 1."""
    _running_checkout(server_env, tmp_path)
    exposures = tmp_path / "exposures.csv"
    exposures.write_text("experimentKey,variantKey,userKey\ncheckout,control,u1\n")
    home = Path(server_env["SPLITLAB_HOME"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (home / "server.json").write_text(
        json.dumps({"pid": gone.pid, "host": "127.0.0.1", "port": free_port()})
    )
    env = server_env | {"SPLITLAB_PORT": str(free_port())}  # nothing listens there
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
            "sys.stdin.read()",
            str(home / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for command in (
            ["import", "exposures", str(exposures)],
            ["analyze", "checkout"],
        ):
            result = subprocess.run(
                [sys.executable, "-m", "splitlab.cli", *command],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stdout + result.stderr
            errors = result.stderr.strip().splitlines()
            assert len(errors) == 1, result.stderr
            assert errors[0].startswith("error: ")
            assert "cannot reach" in errors[0]
            assert f"127.0.0.1:{env['SPLITLAB_PORT']}" in errors[0]  # not the stale address
    finally:
        holder.communicate(input="", timeout=10)
