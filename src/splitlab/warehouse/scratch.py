"""Temporary tables of one analysis inside the warehouse engine.

The analysis materialises its per-unit tables in the engine (never in Python) and drops them
when it is done. How a stored table is numbered and how it is dropped differ per engine; those
details stay here, so ``analysis`` does not branch on the engine or write SQL.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from splitlab.warehouse import queries


class ScratchTables:
    """Temporary tables under one random prefix, dropped (newest first) on leaving the
    ``with`` block, also when the analysis failed."""

    def __init__(self, con: BaseBackend) -> None:
        self.con = con
        self.prefix = f"splitlab_{uuid.uuid4().hex[:16]}"
        self._names: list[str] = []

    def __enter__(self) -> ScratchTables:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.drop()

    def store(self, name: str, expr: ir.Table) -> ir.Table:
        """Materialise ``expr`` as the temporary table ``<prefix>_<name>``."""
        full = f"{self.prefix}_{name}"
        table = self.con.create_table(full, expr, temp=True)
        self._names.append(full)
        return table

    def units(
        self,
        exposures: ir.Table,
        conflicts: ir.Table,
        *,
        experiment_key: str,
        variants: Sequence[str],
        segments: Sequence[str],
        numeric: Mapping[int, str] | None = None,
    ) -> ir.Table:
        """The analysed units (``queries.experiment_units``), stored, with their integer unit
        number ``uid``: DuckDB numbers a new table's rows itself (``rowid``, 0 … n-1; a
        ``row_number()`` would be a single-threaded window over all units), other engines
        number them in the query."""
        by_rowid = self.con.name == "duckdb"
        units = self.store(
            "units",
            queries.experiment_units(
                exposures,
                conflicts,
                experiment_key=experiment_key,
                variants=variants,
                segments=segments,
                numbered=not by_rowid,
                numeric=numeric,
            ),
        )
        if not by_rowid:
            return units
        name = self._names[-1]
        schema = ibis.schema({"uid": "int64", **dict(units.schema().items())})
        return self.con.sql(f'SELECT rowid AS uid, * FROM "{name}"', schema=schema)

    def drop(self) -> None:
        """Drop every table made here, newest first."""
        while self._names:
            name = self._names.pop()
            with contextlib.suppress(Exception):  # already gone with a failed connection
                self.con.raw_sql(f'DROP TABLE IF EXISTS "{name}"')
