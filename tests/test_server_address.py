"""HOME/server.json: written atomically by `splitlab serve`, trusted only when it checks out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitlab.config import Settings
from splitlab.server_address import (
    ServerAddress,
    find_server,
    forget_server,
    record_server,
    recorded_server,
    server_file,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "data", host="127.0.0.1", port=8000)


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port that accepts connections, as a running server's would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write(settings: Settings, content: object) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    server_file(settings).write_text(json.dumps(content))


def test_record_then_find_then_forget(settings: Settings, listening_port: int) -> None:
    path = record_server(settings, host="0.0.0.0", port=listening_port)
    assert json.loads(path.read_text()) == {
        "pid": os.getpid(),
        "host": "127.0.0.1",  # a wildcard bind is reached on loopback
        "port": listening_port,
    }
    assert [p.name for p in settings.home.iterdir()] == ["server.json"]  # no temporary left
    assert find_server(settings) == ServerAddress("127.0.0.1", listening_port, os.getpid())
    forget_server(settings)
    assert not path.exists()
    assert find_server(settings) == ServerAddress("127.0.0.1", 8000)


def test_forget_leaves_another_servers_file(settings: Settings, listening_port: int) -> None:
    write(settings, {"pid": dead_pid(), "host": "127.0.0.1", "port": listening_port})
    forget_server(settings)
    assert server_file(settings).exists()


def test_a_dead_pid_is_ignored(settings: Settings, listening_port: int) -> None:
    write(settings, {"pid": dead_pid(), "host": "127.0.0.1", "port": listening_port})
    assert recorded_server(settings) is None
    assert find_server(settings) == ServerAddress("127.0.0.1", 8000)


def test_a_port_that_does_not_answer_is_ignored(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = int(sock.getsockname()[1])  # bound, never listening: refused
        write(settings, {"pid": os.getpid(), "host": "127.0.0.1", "port": closed_port})
        assert recorded_server(settings) is None


SELF, PORT = "<this pid>", "<listening port>"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        ["a", "list"],
        {"pid": "1", "host": "127.0.0.1", "port": PORT},
        {"pid": True, "host": "127.0.0.1", "port": PORT},
        {"pid": 0, "host": "127.0.0.1", "port": PORT},
        {"pid": SELF, "host": "127.0.0.1", "port": 70000},
        {"pid": SELF, "host": 127, "port": PORT},
        {"pid": SELF, "host": "attacker.example", "port": PORT},
        {"pid": SELF, "host": "10.1.2.3", "port": PORT},
    ],
)
def test_content_is_not_trusted(settings: Settings, listening_port: int, content: object) -> None:
    if isinstance(content, dict):
        fill = {SELF: os.getpid(), PORT: listening_port}
        content = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in content.items()}
    settings.home.mkdir(parents=True)
    server_file(settings).write_text(content if isinstance(content, str) else json.dumps(content))
    assert recorded_server(settings) is None
    assert find_server(settings) == ServerAddress("127.0.0.1", 8000)


def test_only_the_configured_host_besides_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI sends its API key to the recorded address: a non-loopback one must be the
    address the user configured (SPLITLAB_HOST), never one the file alone names."""
    monkeypatch.setattr("splitlab.server_address._answers", lambda host, port: True)
    settings = Settings(home=tmp_path, host="10.1.2.3")
    write(settings, {"pid": os.getpid(), "host": "10.1.2.3", "port": 9000})
    assert recorded_server(settings) == ServerAddress("10.1.2.3", 9000, os.getpid())
    write(settings, {"pid": os.getpid(), "host": "10.9.9.9", "port": 9000})
    assert recorded_server(settings) is None
