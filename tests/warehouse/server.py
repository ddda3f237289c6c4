"""A real ``uvicorn`` server process on a free loopback port, for crash tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade

METRIC = {"key": "conversion", "kind": "binary", "event": "purchase"}
EXPERIMENT = {
    "key": "checkout",
    "hypothesis": "one page converts better",
    "variants": [
        {"key": "control", "weight": 0.5, "is_control": True},
        {"key": "b", "weight": 0.5},
    ],
    "metrics": {"primary": "conversion"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path, database_url: str | None, warehouse_url: str | None) -> dict[str, str]:
    env = dict(os.environ, SPLITLAB_HOME=str(home), SPLITLAB_AUTH="off", SPLITLAB_SECRET_KEY="x")
    if database_url:
        env["SPLITLAB_DATABASE_URL"] = database_url
    if warehouse_url:
        env["SPLITLAB_WAREHOUSE_URL"] = warehouse_url
    return env


def init_store(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()


def start(env: dict[str, str], port: int, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "splitlab.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start in time")


def make_running(base: str) -> None:
    """Metric + experiment, reviewed (auth off: the local admin, with a reason), running."""

    def ok(response: Any) -> None:
        assert response.status_code in (200, 201), response.text

    with httpx.Client(base_url=base, timeout=10) as http:
        ok(http.post("/api/metrics", json=METRIC))
        ok(http.post("/api/experiments", json=EXPERIMENT))
        ok(http.post("/api/experiments/checkout/transitions", json={"to": "review"}))
        ok(
            http.post(
                "/api/experiments/checkout/reviews",
                json={"decision": "approve", "comment": "crash test"},
            )
        )
        ok(http.post("/api/experiments/checkout/transitions", json={"to": "running"}))
