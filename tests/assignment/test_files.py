"""bulk_assign_file: CSV and Parquet in, CSV and Parquet out."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from splitlab.assignment import ExperimentConfig, VariantConfig, assign, bulk_assign_file

CONFIG = ExperimentConfig(
    key="file-exp",
    variants=(VariantConfig("control", 0.5), VariantConfig("treatment", 0.5)),
    coverage=0.9,
    condition={"country": {"$ne": "DE"}},
)
UNITS = [f"u{i}" for i in range(300)] + ["007", "ünï😀"]
COUNTRIES = ["NL", "DE", "BE"]


def write_input(path: Path) -> None:
    table = pa.table(
        {
            "user": UNITS,
            "country": [COUNTRIES[i % 3] for i in range(len(UNITS))],
        }
    )
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)


def read_output(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        return pa_csv.read_csv(
            path,
            convert_options=pa_csv.ConvertOptions(
                column_types={"user": pa.string()}, strings_can_be_null=True
            ),
        )
    return pq.read_table(path)


@pytest.mark.parametrize(("source", "target"), [("csv", "parquet"), ("parquet", "csv")])
def test_round_trip(tmp_path: Path, source: str, target: str) -> None:
    in_path, out_path = tmp_path / f"units.{source}", tmp_path / f"out.{target}"
    write_input(in_path)
    counts = bulk_assign_file(CONFIG, in_path, out_path, unit_column="user")
    out = read_output(out_path).to_pylist()
    assert [row["user"] for row in out] == UNITS  # "007" stays text, order is kept
    for i, row in enumerate(out):
        expected = assign(CONFIG, UNITS[i], {"country": COUNTRIES[i % 3]})
        assert row["variant"] == expected.variant
        assert row["in_experiment"] == expected.in_experiment
        assert row["reason"] == expected.reason
        assert row["bucket"] == expected.bucket
    assert counts == {
        key: sum(row["variant"] == key for row in out) for key in ("control", "treatment")
    }
    assert {row["reason"] for row in out} == {"assigned", "not_targeted", "coverage"}


def test_errors(tmp_path: Path) -> None:
    write_input(tmp_path / "units.csv")
    with pytest.raises(ValueError, match="no column"):
        bulk_assign_file(CONFIG, tmp_path / "units.csv", tmp_path / "out.csv")
    with pytest.raises(ValueError, match=r"csv or \.parquet"):
        bulk_assign_file(CONFIG, tmp_path / "units.txt", tmp_path / "out.csv")
