"""Import through a running server: used when its process owns the DuckDB file.

The file is validated locally with DuckDB (same SQL rules), and the valid rows are sent to
``POST /api/events`` in batches, so the server's writer applies the usual dedup. The API key
comes from ``SPLITLAB_API_KEY`` (not needed when the server runs with auth off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson

from splitlab.config import Settings
from splitlab.errors import SplitlabError
from splitlab.warehouse.facts import ExperimentSummary
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
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        headers = {}
        if key := os.environ.get("SPLITLAB_API_KEY"):
            headers["Authorization"] = f"Bearer {key}"
        with httpx.Client(
            base_url=f"http://{host}:{settings.port}", headers=headers, timeout=120
        ) as http:
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
                response = http.post("/api/events", content=orjson.dumps({"events": items}))
                if response.status_code != 200:
                    raise SplitlabError(
                        f"the server refused the import batch ({response.status_code}): "
                        f"{response.text[:300]}"
                    )
                body = response.json()
                report.accepted += body["accepted"]
                report.duplicates += body["duplicates"]
                report.rejected += body["rejected"]
        report.written = True
        return report
    finally:
        con.close()
