"""``POST /api/import/{exposures|events}``: the file import of ``splitlab import`` over HTTP.

The file comes as the raw request body or as the ``file`` field of a multipart form; its
format from ``?format=csv|parquet|jsonl`` or the uploaded file's name. ``?preview=true``
validates and shows the inferred columns and the first rows, ``?dry_run=true`` validates
only; otherwise the valid rows are written (one transaction on DuckDB). ``?map=col:field``
(repeatable, or comma-separated) renames file columns to the /api/track names. The answer is
the same report as the CLI's. Bodies are bounded by ``SPLITLAB_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from splitlab.api.ingest import ingestor
from splitlab.errors import ValidationError
from splitlab.services import Services
from splitlab.store.live import experiment_summaries
from splitlab.warehouse.importer import KINDS

router = APIRouter(tags=["ingest"])

FORMATS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl", "ndjson": ".jsonl"}
PREVIEW_ROWS = 10


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["user_id:userKey", "exp:experimentKey,ts:occurredAt"]`` → a column mapping."""
    mapping = {}
    for pair in (p for item in pairs for p in item.split(",") if p.strip()):
        source, sep, target = pair.partition(":")
        if not sep or not source.strip() or not target.strip():
            raise ValidationError(
                f"map: use file_column:trackField, not {pair!r}",
                details=[{"loc": ["map"], "msg": "expected file_column:trackField"}],
            )
        mapping[source.strip()] = target.strip()
    return mapping


def reader_problem(exc: Exception, path: Path) -> str:
    """DuckDB's complaint about an uploaded file, for the client: its first line only (the
    rest quotes our SQL), naming the file as uploaded, not the server's temporary folder."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first.replace(str(path), path.name).replace(str(path.parent), "")


def _suffix(fmt: str | None, filename: str | None) -> str:
    if fmt is None and filename:
        fmt = Path(filename).suffix.lstrip(".").lower() or None
    if fmt is None or fmt.lower() not in FORMATS:
        raise ValidationError(
            "format: say format=csv, parquet or jsonl (or upload a file with that extension)",
            details=[{"loc": ["format"], "msg": "unknown or missing format"}],
        )
    return FORMATS[fmt.lower()]


async def _save_upload(request: Request, fmt: str | None, folder: Path) -> Path:
    """The uploaded file, written to ``folder`` with the suffix the importer reads by."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValidationError(
                "file: the multipart form needs a 'file' field holding the file",
                details=[{"loc": ["file"], "msg": "required"}],
            )
        path = folder / f"upload{_suffix(fmt, upload.filename)}"
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                out.write(chunk)
        await form.close()
        return path
    path = folder / f"upload{_suffix(fmt, None)}"
    with path.open("wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
    if path.stat().st_size == 0:
        raise ValidationError(
            "file: the request body is empty", details=[{"loc": ["file"], "msg": "required"}]
        )
    return path


@router.post(
    "/api/import/{kind}",
    summary="Import exposures, events or a per-unit table (units) from a CSV, Parquet or "
    "JSON Lines file",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            }
        }
    },
)
async def import_file(
    request: Request,
    kind: str,
    file_format: Annotated[
        str | None, Query(alias="format", description="csv, parquet or jsonl")
    ] = None,
    preview: Annotated[bool, Query(description="validate; show columns and rows")] = False,
    dry_run: Annotated[bool, Query(description="validate only, write nothing")] = False,
    renames: Annotated[
        list[str],
        Query(alias="map", description="rename a column: file_column:trackField (repeatable)"),
    ] = [],  # noqa: B006 - FastAPI reads the default
) -> dict[str, Any]:
    """Validate (and unless ``preview``/``dry_run``, write) an uploaded file; the report has
    ``rows, accepted, duplicates, conflicts, rejected, reasons[{reason, rows, examples}],
    columns, preview, written``. ``units`` imports a per-unit table (``splitlab import units``;
    ``map=user_id:unit_id`` names its unit id column) and reports ``rows, accepted, values,
    rejected, reasons, columns[{name, type, use}], preview, written``. Needs an API key with
    scope ingest or admin."""
    services: Services = request.app.state.services
    await ingestor(request, services)
    if kind not in (*KINDS, "units"):
        raise ValidationError(
            f"kind: use one of {', '.join(KINDS)}, units",
            details=[{"loc": ["kind"], "msg": "unknown"}],
        )
    mapping = parse_mapping(renames)
    with tempfile.TemporaryDirectory(prefix="splitlab-upload-") as folder:
        path = await _save_upload(request, file_format, Path(folder))

        def run() -> Any:
            with services.sessions() as session:
                experiments = experiment_summaries(session=session)
            if kind == "units":  # a per-unit table (warehouse.unit_tables)
                return services.warehouse.import_units(
                    path,
                    mapping=mapping,
                    write=not (preview or dry_run),
                    preview_rows=PREVIEW_ROWS if preview else 0,
                )
            try:
                return services.warehouse.import_file(
                    path,
                    kind=kind,
                    experiments=experiments,
                    mapping=mapping,
                    write=not (preview or dry_run),
                    preview_rows=PREVIEW_ROWS if preview else 0,
                )
            except (
                duckdb.InvalidInputException,
                duckdb.IOException,
                duckdb.ConversionException,
            ) as exc:
                problem = reader_problem(exc, path)
                raise ValidationError(
                    f"file: cannot be read as {path.suffix.lstrip('.')}: {problem}",
                    details=[{"loc": ["file"], "msg": "unreadable"}],
                ) from exc

        report = await run_in_threadpool(run)
    result: dict[str, Any] = report.to_dict()
    result["file"] = path.name  # not the server's temporary folder
    return result
