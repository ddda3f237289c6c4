"""Import through a running server: used by CLI commands when the server's process owns the
DuckDB file (``Services.import_file``). An HTTP client, so it sits beside
``server_address`` on the CLI side, not in the warehouse.

The file is validated locally with DuckDB (same SQL rules), and the valid rows are sent to
``POST /api/events`` in batches, so the server's writer applies the usual dedup. The server
is found through ``HOME/server.json`` (``splitlab.server_address``); the API key, with scope
ingest or admin, comes from ``SPLITLAB_API_KEY`` (not needed when the server runs with auth
off). A network failure or a refusal is a ``SplitlabError`` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson

from splitlab.config import Settings
from splitlab.domain.summary import ExperimentSummary
from splitlab.server_address import refused, server_client, unreachable
from splitlab.warehouse.importer import ImportReport, import_into_duckdb, valid_facts
from splitlab.warehouse.validation import from_us


def import_via_server(
    settings: Settings,
    path: Path,
    *,
    kind: str,
    experiments: Mapping[str, ExperimentSummary],
    mapping: Mapping[str, str] | None = None,
    write: bool = True,
    preview_rows: int = 0,
    batch: int = 10_000,
) -> ImportReport:
    con = duckdb.connect()
    try:
        report = import_into_duckdb(
            con,
            path,
            kind=kind,
            experiments=experiments,
            mapping=mapping,
            write=False,
            preview_rows=preview_rows,
        )
        if not write:
            return report
        http, address = server_client(settings, timeout=120)
        sent = 0
        with http:
            for facts in valid_facts(con, kind, chunk=batch):
                items: list[dict[str, Any]] = [
                    {
                        "experimentKey": f.experiment_key,
                        "variantKey": f.variant_key,
                        "userKey": f.unit_id,
                        "eventType": f.name,
                        "value": f.value,
                        "eventId": f.event_id,
                        "occurredAt": from_us(f.occurred_us).isoformat(),
                        "props": orjson.loads(f.properties),
                    }
                    for f in facts
                ]
                doing = "importing through the server" + (
                    f" ({sent:,} rows were sent; importing the file again is safe)" if sent else ""
                )
                try:
                    response = http.post("/api/events", content=orjson.dumps({"events": items}))
                    body = response.json() if response.status_code == 200 else None
                except httpx.HTTPError as exc:
                    raise unreachable(address, exc, doing=doing) from exc
                except ValueError as exc:
                    raise refused(response, doing=doing, scope="ingest") from exc
                if body is None:
                    raise refused(response, doing=doing, scope="ingest")
                sent += len(items)
                report.accepted += body["accepted"]
                report.duplicates += body["duplicates"]
                report.rejected += body["rejected"]
        report.written = True
        return report
    finally:
        con.close()
