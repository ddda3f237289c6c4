"""Bulk assignment of a CSV or Parquet file of unit ids (backs ``splitlab assign``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from splitlab.assignment.bulk import assign_bulk
from splitlab.assignment.config import ExperimentConfig

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _format_of(path: Path) -> str:
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: expected a .csv or .parquet file") from None


def bulk_assign_file(
    config: ExperimentConfig,
    in_path: str | Path,
    out_path: str | Path,
    *,
    unit_column: str = "unit_id",
    attribute_columns: Sequence[str] | None = None,
    sticky_assignments: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Assign every unit of ``in_path`` and write ``out_path``; return units per variant.

    Formats follow the file suffix (``.csv``, ``.parquet``). The unit column is read as
    text. The output holds the unit column, ``variant`` (null when not in the experiment),
    ``in_experiment``, ``reason`` and ``bucket`` (null when not hashed). Columns named in
    ``attribute_columns`` (default: every other input column) feed the targeting condition.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if _format_of(in_path) == "csv":
        table = pa_csv.read_csv(
            in_path, convert_options=pa_csv.ConvertOptions(column_types={unit_column: pa.string()})
        )
    else:
        table = pq.read_table(in_path)
    if unit_column not in table.column_names:
        raise ValueError(f"{in_path}: no column {unit_column!r} (have {table.column_names})")
    units = table.column(unit_column).cast(pa.string())
    unit_ids = units.fill_null("").to_numpy(zero_copy_only=False).astype(np.str_)

    attributes = None
    if config.condition:
        names = (
            attribute_columns
            if attribute_columns is not None
            else [c for c in table.column_names if c != unit_column]
        )
        attributes = {name: table.column(name).to_pylist() for name in names}
    result = assign_bulk(config, unit_ids, attributes, sticky_assignments=sticky_assignments)

    bucket = result.bucket
    output = pa.table(
        {
            unit_column: units,
            "variant": pa.array(result.variants(), type=pa.string()),
            "in_experiment": pa.array(result.in_experiment),
            "reason": pa.array(result.reasons(), type=pa.string()),
            "bucket": pa.array(bucket, mask=np.isnan(bucket), type=pa.float64()),
        }
    )
    if _format_of(out_path) == "csv":
        pa_csv.write_csv(output, out_path)
    else:
        pq.write_table(output, out_path)
    return result.counts()
