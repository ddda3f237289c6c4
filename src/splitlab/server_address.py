"""Where the ``splitlab serve`` of a data directory listens, for CLI commands that need it.

``splitlab serve`` records its process id and address in ``HOME/server.json`` once it
listens, and removes the file when it shuts down cleanly. CLI commands that must go through
the server (because it owns the DuckDB warehouse file) read it, so they find a server started
with ``--port`` without ``SPLITLAB_HOST``/``SPLITLAB_PORT``.

The file is a hint, never trusted as it is: it is ignored unless it is well formed, its
process is alive, its host is a loopback address or the configured ``SPLITLAB_HOST`` (the
CLI sends its API key there), and its port accepts a connection. Otherwise the configured
host and port are used, as before the file existed.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splitlab.config import Settings, is_loopback
from splitlab.errors import SplitlabError

if TYPE_CHECKING:
    import httpx

SERVER_FILE = "server.json"
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
"""A server bound to every address is reached on the loopback one."""
CONNECT_TIMEOUT = 1.0


class ServerUnreachableError(SplitlabError):
    """No Splitlab server answers where the CLI looked, or the connection broke."""

    status = 503
    code = "server_unreachable"


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int
    pid: int | None = None
    """The server's process id when the address comes from ``server.json``."""

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def server_file(settings: Settings) -> Path:
    return settings.home / SERVER_FILE


def connect_host(host: str) -> str:
    """The address a client on this machine uses for a server bound to ``host``."""
    return WILDCARD_HOSTS.get(host, host)


def record_server(settings: Settings, *, host: str, port: int) -> Path:
    """Write ``HOME/server.json`` for this process, atomically (readers never see half)."""
    path = server_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps({"pid": os.getpid(), "host": connect_host(host), "port": port})
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".server.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def forget_server(settings: Settings) -> None:
    """Remove ``HOME/server.json`` if this process wrote it (another server may own it now)."""
    path = server_file(settings)
    recorded = _read(path)
    if recorded is not None and recorded.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    except OSError:
        return False
    return True


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def recorded_server(settings: Settings) -> ServerAddress | None:
    """The address in ``HOME/server.json`` when it is valid, alive and answering, else None."""
    data = _read(server_file(settings))
    if data is None:
        return None
    pid, host, port = data.get("pid"), data.get("host"), data.get("port")
    if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
        return None
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        return None
    if not isinstance(host, str) or not (is_loopback(host) or host == connect_host(settings.host)):
        return None  # the API key is sent there: never to an address the user did not choose
    if not _pid_alive(pid) or not _answers(host, port):
        return None
    return ServerAddress(host=host, port=port, pid=pid)


def find_server(settings: Settings) -> ServerAddress:
    """The running server of this data directory: ``server.json``, else the configured address."""
    return recorded_server(settings) or ServerAddress(
        host=connect_host(settings.host), port=settings.port
    )


def server_client(
    settings: Settings, *, timeout: float = 300
) -> tuple[httpx.Client, ServerAddress]:
    """An HTTP client for the running server (API key from ``SPLITLAB_API_KEY``)."""
    import httpx

    address = find_server(settings)
    headers = {}
    if key := os.environ.get("SPLITLAB_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    client = httpx.Client(base_url=address.base_url, headers=headers, timeout=timeout)
    return client, address


def unreachable(address: ServerAddress, error: Exception, *, doing: str) -> ServerUnreachableError:
    """A one-line error for a network failure while talking to the server."""
    reason = " ".join(str(error).split()) or type(error).__name__
    where = (
        f"the server recorded in {SERVER_FILE} ({address.base_url}, pid {address.pid})"
        if address.pid
        else f"{address.base_url}, where no `splitlab serve` of this data directory is recorded "
        "(start one, or set SPLITLAB_HOST / SPLITLAB_PORT to its address)"
    )
    return ServerUnreachableError(f"{doing} failed: cannot reach {where}: {reason}")


def refused(response: httpx.Response, *, doing: str, scope: str) -> SplitlabError:
    """A one-line error for a server answer other than 200, naming the key scope needed."""
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    message = " ".join(message.split())
    hint = ""
    if response.status_code in (401, 403):
        hint = f" (set SPLITLAB_API_KEY to an API key with scope {scope})"
    error = SplitlabError(f"{doing}: the server answered {response.status_code}: {message}{hint}")
    error.status = response.status_code
    return error
