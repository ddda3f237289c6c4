"""The README's first command: `make demo`'s recipe (init, demo, serve) gives a server whose
home page lists the demo experiments, in Chromium."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from splitlab.simulate.demo import EXPERIMENTS
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.browser
MAKEFILE = Path(__file__).parent.parent.parent / "Makefile"


def demo_recipe() -> list[list[str]]:
    """The commands of the Makefile's ``demo`` target, split as a shell would."""
    target = re.search(r"^demo:.*\n((?:\t.*\n)+)", MAKEFILE.read_text(), re.M)
    assert target is not None
    return [shlex.split(line.strip()) for line in target.group(1).splitlines()]


def test_make_demo_serves_a_full_home_page(
    server_env: dict[str, str], browser: object, tmp_path: Path
) -> None:
    recipe = demo_recipe()
    assert [c[c.index("$(BIN)/splitlab") + 1] for c in recipe] == ["init", "demo", "serve"]
    port = free_port()
    server = None
    try:
        for command in recipe:
            at = command.index("$(BIN)/splitlab")
            env = dict(server_env) | dict(c.split("=", 1) for c in command[:at])
            args = [a if a != "8000" else str(port) for a in command[at + 1 :]]
            argv = [sys.executable, "-m", "splitlab.cli", *args]
            if args[0] != "serve":
                subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
                continue
            server = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the demo server did not start")
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(base + "/?status=all&range=all")  # the fleet view shows active ones by default
        listed = page.locator("table.fleet-list").inner_text()
        page.screenshot(path=str(tmp_path / "demo-home.png"), full_page=True)
        for item in EXPERIMENTS:
            assert item.key in listed, item.key
        assert "Checkout redesign A/B/C" in page.content()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
