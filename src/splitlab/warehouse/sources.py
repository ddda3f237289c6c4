"""Read-only sources: existing tables mapped onto the exposures/events schema, no copying.

A source is configured per warehouse table (``exposures``, ``events``,
``exposure_conflicts``, ``unit_values`` — long: one row per unit and column name), e.g. in
a JSON or YAML file named by ``SPLITLAB_WAREHOUSE_SOURCES``::

    events:
      kind: parquet                 # parquet | table | ibis
      path: /lake/events/*.parquet  # parquet: a file, glob or directory (read by DuckDB)
      columns:                      # warehouse column: source column
        event_id: id
        unit_id: user_id
        event_name: name
        value: amount
        occurred_at: ts
      constants: {source: lake}     # columns the source lacks, filled with a constant
    exposures:
      kind: table                   # a table in another Ibis backend
      url: postgres://analytics@db/warehouse
      table: ab_exposures
      columns: {...}

Columns not mapped and not constant become NULL (typed), so the analysis code sees the same
schema whether data was ingested or lives elsewhere.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
from ibis.backends import BaseBackend

from splitlab.errors import ConfigurationError

TYPES: dict[str, dict[str, dt.DataType]] = {
    "exposures": {
        "exposure_id": dt.string,
        "experiment_key": dt.string,
        "variant_key": dt.string,
        "unit_id": dt.string,
        "exposed_at": dt.Timestamp(timezone="UTC"),
        "attributes": dt.json,
        "source": dt.string,
        "event_id": dt.string,
        "ingested_at": dt.Timestamp(timezone="UTC"),
    },
    "events": {
        "event_id": dt.string,
        "unit_id": dt.string,
        "event_name": dt.string,
        "value": dt.float64,
        "occurred_at": dt.Timestamp(timezone="UTC"),
        "properties": dt.json,
        "experiment_key": dt.string,
        "variant_key": dt.string,
        "source": dt.string,
        "ingested_at": dt.Timestamp(timezone="UTC"),
    },
    "exposure_conflicts": {
        "conflict_id": dt.string,
        "experiment_key": dt.string,
        "unit_id": dt.string,
        "variant_key": dt.string,
        "first_variant_key": dt.string,
        "occurred_at": dt.Timestamp(timezone="UTC"),
        "event_id": dt.string,
        "source": dt.string,
        "ingested_at": dt.Timestamp(timezone="UTC"),
    },
    "unit_values": {
        "unit_id": dt.string,
        "name": dt.string,
        "value": dt.float64,
        "source": dt.string,
        "ingested_at": dt.Timestamp(timezone="UTC"),
    },
}
REQUIRED = {
    "exposures": ("experiment_key", "variant_key", "unit_id", "exposed_at"),
    "events": ("unit_id", "event_name", "occurred_at"),
    "exposure_conflicts": ("experiment_key", "unit_id"),
    "unit_values": ("unit_id", "name", "value"),
}


@dataclass(frozen=True)
class SourceMapping:
    """Where one warehouse table really lives, and how its columns are named there."""

    target: str
    kind: str
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    url: str | None = None
    table: str | None = None

    def __post_init__(self) -> None:
        where = f"source for {self.target!r}"
        if self.target not in TYPES:
            raise ConfigurationError(f"{where}: unknown table; use one of {', '.join(TYPES)}")
        if self.kind not in ("parquet", "table", "ibis"):
            raise ConfigurationError(f"{where}: kind must be parquet, table or ibis")
        if self.kind == "parquet" and not self.path:
            raise ConfigurationError(f"{where}: a parquet source needs path")
        if self.kind in ("table", "ibis") and not self.table:
            raise ConfigurationError(f"{where}: a table source needs table (and url)")
        unknown = sorted(set(self.columns) - set(TYPES[self.target]))
        if unknown:
            raise ConfigurationError(f"{where}: unknown warehouse columns {', '.join(unknown)}")
        missing = [
            c for c in REQUIRED[self.target] if c not in self.columns and c not in self.constants
        ]
        if missing:
            raise ConfigurationError(f"{where}: map the required columns {', '.join(missing)}")


def parquet_glob(path: str) -> str:
    """A directory means every Parquet file below it."""
    candidate = Path(path)
    return str(candidate / "**" / "*.parquet") if candidate.is_dir() else path


class SourceConnections:
    """The Ibis connections of the sources that name a ``url``: one per URL, opened on first
    use, shared by every thread of the process and closed by ``close`` (on shutdown).

    A DuckDB connection serves one call at a time and refuses a second thread, so there each
    thread reads through its own cursor of the one connection (as the warehouse does)."""

    def __init__(self) -> None:
        self._open: dict[str, BaseBackend] = {}
        self._cursors: list[BaseBackend] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def get(self, url: str) -> BaseBackend:
        with self._lock:
            con = self._open.get(url)
            if con is None:
                con = self._open[url] = ibis.connect(url)
        if con.name != "duckdb":
            return con
        mine: dict[str, BaseBackend] = self._local.__dict__.setdefault("cursors", {})
        cursor = mine.get(url)
        if cursor is None:
            raw = con.con.cursor()
            raw.execute("SET TimeZone = 'UTC'")  # a cursor does not inherit it
            cursor = mine[url] = ibis.duckdb.from_connection(raw)
            with self._lock:
                self._cursors.append(cursor)
        return cursor

    def close(self) -> None:
        with self._lock:
            opened = [*self._cursors, *self._open.values()]
            self._cursors, self._open = [], {}
            self._local = threading.local()
        for con in opened:
            con.disconnect()


def mapped_table(
    mapping: SourceMapping, default: BaseBackend, connections: SourceConnections
) -> ibis.Table:
    """The source as an Ibis table with exactly the warehouse table's columns and types.

    A source with a ``url`` is read through its connection in ``connections``; the others
    through ``default``, the warehouse's own connection."""
    if mapping.kind == "parquet":
        assert mapping.path is not None
        raw = default.read_parquet(parquet_glob(mapping.path))
    else:
        backend = connections.get(mapping.url) if mapping.url else default
        raw = backend.table(mapping.table)
    columns: dict[str, Any] = {}
    for name, dtype in TYPES[mapping.target].items():
        if name in mapping.columns:
            column = raw[mapping.columns[name]]
            columns[name] = column if column.type() == dtype else column.cast(dtype)
        elif name in mapping.constants:
            columns[name] = ibis.literal(mapping.constants[name]).cast(dtype)
        else:
            columns[name] = ibis.null().cast(dtype)
    return raw.select(**columns)


def load_sources(path: Path | None) -> dict[str, SourceMapping]:
    """Read a sources file (JSON, or YAML when PyYAML is installed)."""
    if path is None:
        return {}
    text = Path(path).read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: a sources file maps table names to sources")
    return {target: SourceMapping(target=target, **spec) for target, spec in data.items()}
