"""`splitlab users list|set-role|disable|enable|delete` and `splitlab keys list|revoke`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from splitlab.config import Settings
from splitlab.services import Services
from splitlab.store.audit import audit_to_dict, list_audit
from splitlab.store.users import authenticate_api_key

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "data"))
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_AUTH", "SPLITLAB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def audit(entity: str, key: str) -> list[dict]:
    services = Services.open(Settings())
    try:
        with services.sessions() as session:
            return [
                audit_to_dict(e) for e in list_audit(session=session, entity=entity, entity_key=key)
            ]
    finally:
        services.close()


def key_works(key: str) -> bool:
    services = Services.open(Settings())
    try:
        with services.sessions() as session:
            return authenticate_api_key(session=session, key=key) is not None
    finally:
        services.close()


@pytest.fixture
def people(home: Path) -> str:
    """An admin and an editor with an ingest key; returns the key."""
    invoke("init")
    invoke("users", "create", "admin", "--role", "admin", "--password", "long-password")
    invoke("users", "create", "bob", "--role", "editor", "--password", "long-password")
    return invoke("keys", "create", "--scope", "ingest", "--user", "bob").split()[0]


def test_list_and_set_role(people: str) -> None:
    listed = invoke("users", "list")
    assert "admin" in listed and "bob" in listed and "keys=1" in listed
    out = invoke("users", "set-role", "bob", "reviewer", "--reason", "joined review duty")
    assert "bob now has role reviewer" in out
    users = json.loads(invoke("users", "list", "--json"))["users"]
    assert {u["username"]: u["role"] for u in users} == {"admin": "admin", "bob": "reviewer"}
    (entry, _) = audit("user", "bob")
    assert entry["action"] == "set_role" and entry["actor"].startswith("cli:")
    assert entry["reason"] == "joined review duty"
    assert "role" in invoke("users", "set-role", "bob", "boss", code=2)


def test_disable_enable_and_keys(people: str) -> None:
    assert key_works(people)
    invoke("users", "disable", "bob")
    assert not key_works(people)
    assert "disabled" in invoke("users", "list")
    keys = json.loads(invoke("keys", "list", "--json"))["keys"]
    assert [(k["user"], k["active"]) for k in keys] == [("bob", False)]
    assert "user disabled" in invoke("keys", "list")
    invoke("users", "enable", "bob")
    assert key_works(people)
    assert [e["action"] for e in audit("user", "bob")] == ["enable", "disable", "create"]

    prefix = people.split("_")[1]
    assert prefix in invoke("keys", "list", "--user", "bob")
    assert f"key {prefix} revoked" in invoke("keys", "revoke", prefix, "--reason", "leaked")
    assert not key_works(people)
    assert "already revoked" in invoke("keys", "revoke", prefix)
    assert [e["action"] for e in audit("api_key", prefix)] == ["revoke", "create"]
    assert "no API key" in invoke("keys", "revoke", "nope", code=1)


def test_delete(people: str) -> None:
    invoke("users", "delete", "bob", code=1)  # asks first; no answer aborts
    assert "bob" in invoke("users", "list")
    assert "bob deleted" in invoke("users", "delete", "bob", "--yes")
    assert "bob" not in invoke("users", "list")
    assert not key_works(people)
    assert "no API keys" in invoke("keys", "list")
    assert audit("user", "bob")[0]["action"] == "delete"
    assert "no user 'bob'" in invoke("users", "disable", "bob", code=1)


def test_the_last_admin_cannot_be_removed(people: str) -> None:
    for args in (
        ("disable", "admin"),
        ("set-role", "admin", "editor"),
        ("delete", "admin", "--yes"),
    ):
        assert "last active admin" in invoke("users", *args, code=1)
