"""``Warehouse``: the facts store — open by URL, write through the group-commit writer, read
through Ibis.

``duckdb:///path/to/file.duckdb`` (the embedded default; the opening process owns the file)
or ``postgresql+psycopg://user@host/db``. Analysis reads ``exposures_table()`` and
``events_table()`` (Ibis expressions; a configured *source* replaces a native table) and keys
its cache on ``watermark()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb
import ibis
from ibis.backends import BaseBackend
from psycopg import errors as psycopg_errors

from splitlab import ids
from splitlab.errors import ConfigurationError, SplitlabError
from splitlab.ids import EXPOSURE
from splitlab.warehouse.facts import Fact, ItemResult, Kind, Watermark
from splitlab.warehouse.postgres import PostgresBackend, conninfo
from splitlab.warehouse.schema import CONFLICT_COLUMNS, EVENT_COLUMNS, EXPOSURE_COLUMNS
from splitlab.warehouse.sources import TYPES as SOURCE_TYPES
from splitlab.warehouse.sources import SourceConnections, SourceMapping, mapped_table
from splitlab.warehouse.validation import from_us, now_us, to_us
from splitlab.warehouse.writer import Backend, GroupCommitWriter, restore_gc, tune_gc_for_ingestion

if TYPE_CHECKING:
    from splitlab.warehouse.duck import DuckDBBackend

WATERMARK_TABLES = {
    "exposures": "exposed_at",
    "events": "occurred_at",
    "exposure_conflicts": "occurred_at",
}
"""The tables behind the watermark and the time that stands in for a source's ingestion."""


class WarehouseBusyError(SplitlabError):
    """The DuckDB file is open in another process (usually a running ``splitlab serve``)."""

    status = 503
    code = "warehouse_busy"


def mapped_types(table: str) -> ibis.Schema:
    """The Ibis schema of warehouse table ``table`` (as sources map it)."""
    return ibis.schema(SOURCE_TYPES[table])


def _duckdb_path(url: str) -> str:
    """``duckdb:///abs/file.duckdb`` → ``/abs/file.duckdb``; ``duckdb://`` → in memory."""
    path = url.removeprefix("duckdb://")
    if path.startswith("//"):
        path = path[1:]
    return ":memory:" if path in ("", "/", "/:memory:", ":memory:") else path


class Warehouse:
    """Exposures and events: one per process, opened from ``Settings.resolved_warehouse_url()``."""

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        max_batch_items: int = 50_000,
        max_wait_seconds: float = 0.0,
        sources: dict[str, SourceMapping] | None = None,
    ) -> None:
        self.url = url
        self.read_only = read_only
        self.sources = dict(sources or {})
        self._source_connections = SourceConnections()
        self._local = threading.local()
        self._readers: list[BaseBackend] = []
        self._readers_lock = threading.Lock()
        self._duck: duckdb.DuckDBPyConnection | None = None
        if url.startswith("duckdb:"):
            self.dialect = "duckdb"
            path = _duckdb_path(url)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._duck = duckdb.connect(path, read_only=read_only)
            except duckdb.IOException as exc:
                raise WarehouseBusyError(
                    f"the warehouse file {path} is in use by another process "
                    "(a running `splitlab serve`?)",
                    details={"path": path},
                ) from exc
            self._duck.execute("SET TimeZone = 'UTC'")
            backend: Backend | None = None if read_only else _duck_backend(self._duck)
        elif url.startswith(("postgresql", "postgres")):
            self.dialect = "postgres"
            backend = None if read_only else PostgresBackend(url)
        else:
            raise ConfigurationError(
                f"unsupported warehouse URL {url!r}: use duckdb:///path or postgresql+psycopg://…"
            )
        self.writer: GroupCommitWriter | None = (
            GroupCommitWriter(backend, max_items=max_batch_items, max_wait=max_wait_seconds)
            if backend is not None
            else None
        )
        self._backend = backend
        self._gc_tuned = False

    @classmethod
    def open(cls, url: str, **options: Any) -> Warehouse:
        """Open and make sure the tables exist (unless read-only)."""
        warehouse = cls(url, **options)
        if not warehouse.read_only:
            warehouse.ensure_schema()
        return warehouse

    # ----------------------------------------------------------------- schema & writes

    def ensure_schema(self) -> None:
        """Create the tables if missing (idempotent)."""
        assert self._backend is not None, "read-only warehouse"
        if self.writer is not None and self.writer.started:
            self.writer.run(lambda backend: backend.ensure_schema())
        else:
            self._backend.ensure_schema()

    def _writer(self) -> GroupCommitWriter:
        if self.writer is None:
            raise WarehouseBusyError("this warehouse was opened read-only")
        return self.writer

    async def submit(self, facts: Sequence[Fact]) -> list[ItemResult]:
        """Write validated facts; per-item results after the transaction committed."""
        return await self._writer().submit(facts)

    def write(self, facts: Sequence[Fact]) -> list[ItemResult]:
        """Blocking ``submit``."""
        return self._writer().write(facts)

    def record_exposures(
        self, exposures: Iterable[dict[str, Any]], *, source: str = "api"
    ) -> list[ItemResult]:
        """Record exposures given as dicts with ``experiment_key``, ``variant_key``,
        ``unit_id`` and optional ``exposed_at`` (datetime, default now), ``attributes``
        (dict), ``event_id``. Not validated against the app store: the caller (assignment,
        simulator) knows the experiment is running. Blocking; durable when it returns.
        """
        facts = [exposure_fact(source=source, **item) for item in exposures]
        return self.write(facts)

    def write_events(
        self, events: Iterable[dict[str, Any]], *, source: str = "api"
    ) -> list[ItemResult]:
        """Record metric events given as dicts with ``unit_id``, ``event_name`` and optional
        ``value``, ``occurred_at`` (datetime), ``properties`` (dict), ``event_id``,
        ``experiment_key``/``variant_key``. Without ``event_id`` the id is derived from
        (experiment_key, unit_id, event_name). Blocking; durable when it returns.
        """
        facts = [event_fact(source=source, **item) for item in events]
        return self.write(facts)

    def import_file(
        self,
        path: Path,
        *,
        kind: str,
        experiments: dict[str, Any],
        mapping: dict[str, str] | None = None,
        write: bool = True,
        preview_rows: int = 0,
    ) -> Any:
        """Validate and import a CSV/Parquet/JSONL file (see ``importer``); an ``ImportReport``.

        ``experiments`` maps experiment keys to ``ExperimentSummary``. On DuckDB the whole
        import is one transaction on the writer thread; on PostgreSQL DuckDB validates and the
        valid rows stream into PostgreSQL with ``COPY`` and are appended by SQL with the same
        dedup and conflict rules, also in one transaction on the writer thread.
        """
        from splitlab.warehouse.importer import STAGE_COLUMNS, import_into_duckdb, valid_batches

        options: dict[str, Any] = {"kind": kind, "experiments": experiments, "mapping": mapping}
        if self.dialect == "duckdb":
            return self._writer().run(
                lambda backend: import_into_duckdb(
                    cast("DuckDBBackend", backend).con,
                    Path(path),
                    write=write,
                    preview_rows=preview_rows,
                    **options,
                )
            )
        con = duckdb.connect()
        try:
            report = import_into_duckdb(
                con, Path(path), write=False, preview_rows=preview_rows, **options
            )
            if write:
                ingested = now_us()
                report.accepted, report.conflicts = self._writer().run(
                    lambda backend: cast(PostgresBackend, backend).import_rows(
                        kind, STAGE_COLUMNS, valid_batches(con, kind), ingested
                    )
                )
                valid = report.rows - report.rejected
                report.duplicates = valid - report.accepted - report.conflicts
                report.written = True
        finally:
            con.close()
        return report

    # ----------------------------------------------------------------- reads (Ibis)

    def ibis_connection(self) -> BaseBackend:
        """An Ibis backend over the warehouse, one per thread (DuckDB cursors are per thread),
        its session in UTC; ``close`` closes them all."""
        con = getattr(self._local, "ibis", None)
        if con is None:
            if self._duck is not None:
                cursor = self._duck.cursor()
                cursor.execute("SET TimeZone = 'UTC'")  # a cursor does not inherit it
                con = ibis.duckdb.from_connection(cursor)
            else:
                con = ibis.connect(conninfo(self.url).replace("postgresql://", "postgres://", 1))
            self._local.ibis = con
            with self._readers_lock:
                self._readers.append(con)
        return con

    def _table(self, name: str) -> ibis.Table:
        mapping = self.sources.get(name)
        if mapping is not None:
            return mapped_table(mapping, self.ibis_connection(), self._source_connections)
        return self.ibis_connection().table(name)

    def exposures_table(self) -> ibis.Table:
        """Exposures, columns as ``schema.EXPOSURE_COLUMNS`` (or the configured source)."""
        return self._table("exposures")

    def events_table(self) -> ibis.Table:
        """Events, columns as ``schema.EVENT_COLUMNS`` (or the configured source)."""
        return self._table("events")

    def unit_values_table(self) -> ibis.Table:
        """The unit table (``unit_id, name, value, source, ingested_at``; or its source); an
        empty one for a warehouse without it (a read-only file made before it existed)."""
        try:
            return self._table("unit_values")
        except Exception:  # Ibis raises its own or the driver's "no such table"
            if "unit_values" in self.sources:
                raise
            return ibis.memtable(mapped_types("unit_values").to_pyarrow().empty_table())

    def import_units(
        self,
        path: Path,
        *,
        mapping: dict[str, str] | None = None,
        write: bool = True,
        preview_rows: int = 0,
    ) -> Any:
        """Validate (and import) a per-unit table file; a ``unit_tables.UnitImportReport``."""
        from splitlab.warehouse import unit_tables

        if self.dialect == "duckdb":
            return self._writer().run(
                lambda backend: unit_tables.import_duckdb(
                    cast("DuckDBBackend", backend).con,
                    Path(path),
                    mapping=mapping or {},
                    write=write,
                    preview_rows=preview_rows,
                )
            )
        con = duckdb.connect()
        try:
            report = unit_tables.stage(
                con, Path(path), mapping=mapping or {}, preview_rows=preview_rows
            )
            if write:
                report.values = self._writer().run(
                    lambda backend: unit_tables.write_postgres(
                        cast(PostgresBackend, backend).con, con, report
                    )
                )
                report.accepted = report.rows - report.rejected
                report.written = True
        finally:
            con.close()
        return report

    def conflicts_table(self) -> ibis.Table:
        """Units exposed to more than one variant (exclude them from analysis)."""
        return self._table("exposure_conflicts")

    def watermark(self) -> Watermark:
        """Row counts and the newest ``ingested_at``: a cache key for analysis results.

        A table replaced by a configured source counts the source's rows, and its newest
        time is its ``ingested_at`` or, where the source has none, its event time — so
        results cached over a source are recomputed when the source changes.
        """
        counts: dict[str, int] = {}
        newest: list[int] = []
        native = [t for t in WATERMARK_TABLES if t not in self.sources]
        if native:
            stamp = (
                "epoch_us({})"
                if self.dialect == "duckdb"
                else "(extract(epoch FROM {}) * 1000000)::BIGINT"
            )
            columns = [f"(SELECT count(*) FROM {t})" for t in native] + [
                stamp.format(f"(SELECT max(ingested_at) FROM {t})") for t in native
            ]
            row = self.query(f"SELECT {', '.join(columns)}")[0]
            counts.update({t: int(n) for t, n in zip(native, row[: len(native)], strict=True)})
            newest += [int(us) for us in row[len(native) :] if us is not None]
        for name in WATERMARK_TABLES:
            if name in self.sources:
                table = self._table(name)
                time = table.ingested_at.coalesce(table[WATERMARK_TABLES[name]])
                (row,) = table.aggregate(n=table.count(), last=time.max()).to_pyarrow().to_pylist()
                counts[name] = int(row["n"])
                if row["last"] is not None:
                    newest.append(to_us(row["last"]))
        last = from_us(max(newest)) if newest else None
        units = self._unit_values_stamp()
        return Watermark(
            counts["exposures"], counts["events"], counts["exposure_conflicts"], last, units
        )

    def _unit_values_stamp(self) -> str:
        """``count:newest µs`` of the unit table (``warehouse.unit_tables``; its text
        attributes after a ``/`` when there are any), "" when empty."""
        attributes = self._native_stamp("unit_attributes")
        if "unit_values" not in self.sources:
            values = self._native_stamp("unit_values")
            return f"{values}/{attributes}" if attributes else values
        table = self.unit_values_table()
        rows = table.aggregate(n=table.count(), last=table.ingested_at.max()).to_pyarrow()
        n, last = rows.column("n")[0].as_py(), rows.column("last")[0].as_py()
        values = f"{n}:{to_us(last) if last is not None else 0}" if n else ""
        return f"{values}/{attributes}" if attributes else values

    def _native_stamp(self, table: str) -> str:
        """``count:newest µs`` of a native per-unit table, "" when empty or missing."""
        stamp = (
            "epoch_us(max(ingested_at))"
            if self.dialect == "duckdb"
            else "(extract(epoch FROM max(ingested_at)) * 1000000)::BIGINT"
        )
        try:
            n, us = self.query(f"SELECT count(*), {stamp} FROM {table}")[0]
        except (duckdb.CatalogException, psycopg_errors.UndefinedTable):
            return ""  # a read-only warehouse made before the table existed
        return f"{n}:{us}" if n else ""

    def unit_attributes_table(self) -> ibis.Table:
        """Text attributes of units (``unit_id, name, text, …``); empty when missing."""
        try:
            return self.ibis_connection().table("unit_attributes")
        except Exception:  # a read-only warehouse made before it existed
            schema = ibis.schema(
                {
                    "unit_id": "string",
                    "name": "string",
                    "text": "string",
                    "source": "string",
                    "ingested_at": "timestamp('UTC')",
                }
            )
            return ibis.memtable(schema.to_pyarrow().empty_table())

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run read-only SQL on a reader connection (tests, tools, diagnostics)."""
        if self._duck is not None:
            cursor = self._duck.cursor()
            try:
                return cursor.execute(sql, params or []).fetchall()
            finally:
                cursor.close()
        import psycopg

        with psycopg.connect(conninfo(self.url), autocommit=True) as con:
            return con.execute(sql, params).fetchall()

    def start(self) -> None:
        """Start the writer thread: the server calls this once its app is built."""
        if self.writer is not None:
            if not self._gc_tuned:
                tune_gc_for_ingestion()
                self._gc_tuned = True
            self.writer.start()

    def close(self) -> None:
        """Drain and stop the writer, then close the connections."""
        if self.writer is not None:
            self.writer.stop()
            if self._gc_tuned:
                restore_gc()
                self._gc_tuned = False
        self._source_connections.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
            self._local = threading.local()
        for reader in readers:
            reader.disconnect()
        if self._backend is not None:
            self._backend.close()
        if self._duck is not None:
            self._duck.close()


def _duck_backend(connection: duckdb.DuckDBPyConnection) -> Backend:
    from splitlab.warehouse.duck import DuckDBBackend

    cursor = connection.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    return DuckDBBackend(cursor)


def _us(moment: datetime | None) -> int:
    return now_us() if moment is None else to_us(moment)


def _json(value: dict[str, Any] | None) -> str:
    import orjson

    return orjson.dumps(value or {}).decode()


def exposure_fact(
    *,
    experiment_key: str,
    variant_key: str,
    unit_id: str,
    exposed_at: datetime | None = None,
    attributes: dict[str, Any] | None = None,
    event_id: str | None = None,
    source: str = "api",
) -> Fact:
    """A ``Fact`` for one exposure (already known to be valid)."""
    return Fact(
        Kind.EXPOSURE,
        ids.exposure_id(experiment_key, unit_id),
        ids.event_id(experiment_key, unit_id, EXPOSURE, event_id),
        experiment_key,
        variant_key,
        unit_id,
        EXPOSURE,
        None,
        _us(exposed_at),
        _json(attributes),
        source,
    )


def event_fact(
    *,
    unit_id: str,
    event_name: str,
    value: float | None = None,
    occurred_at: datetime | None = None,
    properties: dict[str, Any] | None = None,
    event_id: str | None = None,
    experiment_key: str | None = None,
    variant_key: str | None = None,
    source: str = "api",
) -> Fact:
    """A ``Fact`` for one metric event (already known to be valid)."""
    event_id = ids.event_id(experiment_key, unit_id, event_name, event_id)
    return Fact(
        Kind.EVENT,
        event_id,
        event_id,
        experiment_key,
        variant_key,
        unit_id,
        event_name,
        value,
        _us(occurred_at),
        _json(properties),
        source,
    )


__all__ = [
    "CONFLICT_COLUMNS",
    "EVENT_COLUMNS",
    "EXPOSURE_COLUMNS",
    "Warehouse",
    "WarehouseBusyError",
    "event_fact",
    "exposure_fact",
]
