"""A real server in a subprocess and real Chromium (Debian's, never a downloaded build)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SCREENS = Path("/tmp/screens")
CHROMIUM = os.environ.get("SPLITLAB_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def splitlab(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "splitlab.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any ``SPLITLAB_*`` setting, with the data directory
    under ``home`` and ``settings`` (e.g. ``SPLITLAB_AUTH="off"``) added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLITLAB_")}
    return env | {"SPLITLAB_HOME": str(home / "data")} | settings


@contextmanager
def serving(env: dict[str, str], *, seconds: float = 20, poll: float = 0.1) -> Iterator[str]:
    """Run ``splitlab serve`` with ``env`` on a free loopback port until the block ends;
    yields its base URL once ``/healthz`` answers (the test fails after ``seconds``)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "splitlab.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(poll)
    else:
        process.kill()
        output = process.stdout.read().decode() if process.stdout else ""
        pytest.fail(f"server did not start: {output}")
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def screenshot(page: object, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot ``name``.png in the test's directory, copied to /tmp/screens."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    return path


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    env = clean_env(tmp_path)
    splitlab(env, "init")
    return env


@pytest.fixture
def server(server_env: dict[str, str]) -> Iterator[str]:
    """Start ``splitlab serve`` on a free loopback port; yields its base URL."""
    with serving(server_env) as base:
        yield base


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``splitlab init``, ``splitlab demo`` and ``splitlab serve`` (auth off, loopback, no
    scheduler), once per test module."""
    home = tmp_path_factory.mktemp("demo")
    env = clean_env(home, SPLITLAB_AUTH="off", SPLITLAB_SCHEDULER_SECONDS="0")
    splitlab(env, "init")
    splitlab(env, "demo")
    with serving(env, seconds=30, poll=0.2) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
