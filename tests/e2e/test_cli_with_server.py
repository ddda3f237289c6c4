"""CLI commands keep working while `splitlab serve` owns the DuckDB warehouse file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

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
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    splitlab(server_env, "apply", "-f", str(contract))
    splitlab(
        server_env, "users", "create", "rita", "--role", "reviewer", "--password", "long-pass1"
    )
    splitlab(server_env, "experiments", "transition", "checkout", "review")
    splitlab(server_env, "experiments", "review", "checkout", "approve", "--as", "rita")
    splitlab(server_env, "experiments", "transition", "checkout", "running")
    key = splitlab(
        server_env, "keys", "create", "--scope", "admin", "--user", "rita"
    ).stdout.split()[0]

    rows = ["experimentKey,variantKey,userKey,eventType"]
    rows += [f"checkout,{'treatment' if i % 2 else 'control'},u{i},exposure" for i in range(400)]
    exposures = tmp_path / "exposures.csv"
    exposures.write_text("\n".join(rows) + "\n")

    port = free_port()
    env = server_env | {"SPLITLAB_PORT": str(port), "SPLITLAB_API_KEY": key}
    process = subprocess.Popen(
        [sys.executable, "-m", "splitlab.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        # the server now owns warehouse.duckdb: both commands must go through it
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
