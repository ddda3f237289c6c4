"""``splitlab import units`` and ``splitlab analyze --breakdown`` while ``splitlab serve`` owns
the DuckDB warehouse file: both go through the server's API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, splitlab
from tests.e2e.test_cli_with_server import _running_checkout


def test_units_and_breakdown_through_running_server(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    _running_checkout(server_env, tmp_path)
    key = splitlab(
        server_env, "keys", "create", "--scope", "admin", "--user", "rita"
    ).stdout.split()[0]
    rows = ["experimentKey,variantKey,userKey,props"]
    rows += [
        f'checkout,{"treatment" if i % 2 else "control"},u{i},"{{""device"": ""d{i % 3}""}}"'
        for i in range(300)
    ]
    exposures = tmp_path / "exposures.csv"
    exposures.write_text("\n".join(rows) + "\n")
    users = tmp_path / "users.csv"
    users.write_text("user_id,revenue_30d\n" + "".join(f"u{i},{i % 7}\n" for i in range(300)))

    port = free_port()
    env = server_env | {"SPLITLAB_API_KEY": key}
    process = subprocess.Popen(
        [sys.executable, "-m", "splitlab.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("w"),
    )
    recorded = Path(server_env["SPLITLAB_HOME"]) / "server.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not recorded.exists():
            if process.poll() is not None:
                pytest.fail(f"server exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        splitlab(env, "import", "exposures", str(exposures))
        imported = splitlab(env, "import", "units", str(users), "--map", "unit_id=user_id")
        assert "accepted 300 units, 300 values written" in imported.stdout, imported.stdout
        adhoc = splitlab(env, "analyze", "checkout", "--breakdown", "device", "--format", "json")
        snapshot = json.loads(adhoc.stdout)
        assert snapshot["breakdown"]["exploratory"] is True
        cells = {r["segment"]["value"] for r in snapshot["results"] if r["segment"]}
        assert cells == {"d0", "d1", "d2"}
    finally:
        process.terminate()
        process.wait(timeout=10)
