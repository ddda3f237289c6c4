"""The package lanes (DESIGN.md's table), read from the source with ``ast``: which
package may import which, where HTTP and SQL may appear, and that the SDK stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import splitlab

SRC = Path(splitlab.__file__).parent

BASE = {"errors", "ids"}
"""Plain modules every lane may use: the error root and the ids of facts (no I/O)."""

LANES: dict[str, set[str]] = {
    "domain": set(),
    "stats": set(),
    "assignment": {"domain"},
    "store": {"domain"},
    "warehouse": {"domain"},
    "analysis": {"domain", "stats", "warehouse", "store"},
    "simulate": {"domain", "assignment", "warehouse"},
    "decisions": {"domain", "stats", "analysis", "store"},
}
"""What each lower package may import of splitlab (besides itself and ``BASE``)."""

STANDALONE = {"stats"}
"""Packages that import nothing of splitlab at all, not even ``BASE``."""

DEVIATIONS: dict[str, set[str]] = {
    # the simulator also seeds the demo (store, analysis) and runs the end-to-end validity
    # study (analysis, stats, config): an application over the services, not a lower lane;
    # the demo stores each analysed experiment's recommendation (decisions) for the fleet badges
    "simulate": {"analysis", "config", "decisions", "services", "stats", "store"},
}
"""Known departures from ``LANES``, each with its reason; nothing else may be added."""

TOP = {"api", "web", "app", "cli", "client", "remote", "server_address", "contracts"}
"""The surfaces (and the CLI's helpers) over the services."""

HTTP = {"fastapi", "starlette", "httpx", "itsdangerous", "uvicorn"}
SQL = {"sqlalchemy", "alembic"}
ENGINES = {"duckdb", "ibis", "psycopg"}


@dataclass(frozen=True)
class Import:
    module: str
    where: str
    type_only: bool

    @property
    def splitlab_part(self) -> str | None:
        parts = self.module.split(".")
        return parts[1] if parts[0] == "splitlab" and len(parts) > 1 else None

    @property
    def top_level(self) -> str:
        return self.module.split(".")[0]


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            where = f"{path.relative_to(SRC)}:{getattr(child, 'lineno', '?')}"
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, where, type_only) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append(Import(child.module, where, type_only))
            visit(child, type_only or (isinstance(child, ast.If) and _type_checking(child)))

    visit(tree, False)
    return found


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else path.stem


ALL = [(path, _package(path), imp) for path in sorted(SRC.rglob("*.py")) for imp in _imports(path)]


def test_lower_packages_import_only_their_lanes() -> None:
    wrong = []
    for _, package, imp in ALL:
        target = imp.splitlab_part
        if package not in LANES or target is None or target == package:
            continue
        if imp.type_only and target == "services":
            continue  # the composition root, named in the signature of what it is handed to
        allowed = LANES[package] | DEVIATIONS.get(package, set())
        if package not in STANDALONE:
            allowed |= BASE
        if target not in allowed:
            wrong.append(f"{imp.where} ({package}) imports {imp.module}")
    assert wrong == []


def test_every_deviation_is_still_needed() -> None:
    for package, targets in DEVIATIONS.items():
        used = {imp.splitlab_part for _, p, imp in ALL if p == package}
        assert targets <= used, f"{package} no longer imports {targets - used}: drop them"


HTTP_DEVIATIONS = {
    # the webhook sender drains the notification outbox it shares a module with; it posts
    # from its own worker thread, never inside a request or a scheduler tick
    ("decisions/webhooks.py", "httpx"),
}
"""Known departures from "HTTP only in the surfaces": (file, library), each with its reason."""


def test_no_http_below_the_surfaces() -> None:
    wrong = [
        f"{imp.where} imports {imp.module}"
        for _, package, imp in ALL
        if imp.top_level in HTTP
        and package not in TOP
        and (imp.where.split(":")[0], imp.top_level) not in HTTP_DEVIATIONS
    ]
    assert wrong == []


def test_every_http_deviation_is_still_needed() -> None:
    used = {(imp.where.split(":")[0], imp.top_level) for _, _, imp in ALL}
    assert used >= HTTP_DEVIATIONS, f"no longer needed: {HTTP_DEVIATIONS - used}"


SQL_LANES = {"store", "services", "contracts"}
"""Where SQLAlchemy is used at run time (services builds the engine; contracts applies a file
in one store transaction). A ``Session`` named in a type hint elsewhere is not SQL."""

ENGINE_LANES = {"warehouse", "remote"}
"""Where the warehouse engines are used (remote validates a file with DuckDB locally)."""

ENGINE_DEVIATIONS = {
    ("api/upload.py", "duckdb"),  # names an unreadable upload from DuckDB's error types
    ("analysis/aggregates.py", "ibis"),  # builds its per-unit expressions with Ibis
}
"""Known departures from ``ENGINE_LANES`` (backend details outside the backends)."""


def test_sql_only_in_the_store_and_engines_only_in_the_warehouse() -> None:
    wrong = []
    for _, package, imp in ALL:
        if imp.type_only:
            continue
        file = imp.where.split(":")[0]
        if (imp.top_level in SQL and package not in SQL_LANES) or (
            imp.top_level in ENGINES
            and package not in ENGINE_LANES
            and (file, imp.top_level) not in ENGINE_DEVIATIONS
        ):
            wrong.append(f"{imp.where} imports {imp.module}")
    assert wrong == []


def test_api_never_imports_web_and_nothing_imports_the_cli() -> None:
    wrong = [
        f"{imp.where} imports {imp.module}"
        for _, package, imp in ALL
        if (package == "api" and imp.splitlab_part == "web")
        or (package != "cli" and imp.splitlab_part == "cli")
    ]
    assert wrong == []


def test_the_cli_uses_no_private_api_function() -> None:
    tree = ast.parse((SRC / "cli.py").read_text())
    private = [
        f"cli.py:{node.lineno} imports {alias.name} from {node.module}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("splitlab.api")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_the_sdk_loads_no_warehouse_engine_or_app_store() -> None:
    code = (
        "import sys\n"
        "from splitlab import Client\n"
        "assert Client.__name__ == 'Client'\n"
        f"heavy = {sorted(ENGINES | SQL | {'fastapi', 'starlette'})!r}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
