"""One rule for the ids of facts: Python (server, SDK) and its SQL twins agree."""

from __future__ import annotations

import subprocess
import sys

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlab import ids
from splitlab.warehouse.facts import conflict_id_sql, event_id_sql, exposure_id_sql

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=6)
CLIENT_ID = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6)
"""A client's id is never empty (every path trims it and refuses or drops an empty one)."""


@settings(max_examples=60, deadline=None)
@given(TEXT | st.none(), TEXT, TEXT, CLIENT_ID | st.none(), TEXT)
def test_the_sql_twins_compute_the_python_ids(
    experiment: str | None, unit: str, name: str, client: str | None, variant: str
) -> None:
    sql = (
        f"SELECT {event_id_sql('$1', '$2', '$3', '$4')}, {exposure_id_sql('$1', '$2')}, "
        f"{conflict_id_sql('$1', '$2', '$5')}"
    )
    row = duckdb.execute(sql, [experiment, unit, name, client, variant]).fetchall()[0]
    assert row[0] == ids.event_id(experiment, unit, name, client)
    if experiment is not None:
        assert row[1:] == (
            ids.exposure_id(experiment, unit),
            ids.conflict_id(experiment, unit, variant),
        )


def test_an_exposure_and_an_event_are_keyed_by_the_rule() -> None:
    assert (
        ids.fact_key("checkout", "u1", "purchase")
        == (ids.derive_id("checkout", "u1", "purchase"),) * 2
    )
    assert ids.fact_key(None, "u1", "purchase", "e-1") == ("e-1", "e-1")
    assert ids.fact_key("checkout", "u1", ids.EXPOSURE) == (
        ids.derive_id("checkout", "u1"),
        ids.derive_id("checkout", "u1", "exposure"),
    )
    assert ids.fact_key("checkout", "u1", ids.EXPOSURE, "e-2") == (
        ids.derive_id("checkout", "u1"),
        "e-2",
    )


def test_the_id_module_loads_nothing_heavy() -> None:
    code = (
        "import sys, splitlab.ids; "
        "print(sorted(m for m in ('duckdb', 'ibis', 'psycopg', 'pyarrow', 'splitlab.warehouse') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
