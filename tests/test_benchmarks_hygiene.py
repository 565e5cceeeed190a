"""Benchmarks share the machine's PostgreSQL with everything else: each run uses databases of
its own, drops only those, and dates its readings inside the retention window."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import psycopg
import pytest

from benchmarks.ingest import _fresh_database, base_us, drop_database
from tests.conftest import PG_SERVER_URL, _url_for


@pytest.mark.integration
def test_two_runs_get_their_own_databases_and_drop_only_those() -> None:
    first = _fresh_database(PG_SERVER_URL, "pw_bench_hygiene")
    second = _fresh_database(PG_SERVER_URL, "pw_bench_hygiene")
    try:
        assert first != second
        with psycopg.connect(first, autocommit=True) as conn:  # migrated and usable
            assert conn.execute("SELECT count(*) FROM tag_observations").fetchone() == (0,)
        with pytest.raises(ValueError, match="not made by this run"):
            drop_database(PG_SERVER_URL, _url_for("postgres"))
    finally:
        drop_database(PG_SERVER_URL, first)
        drop_database(PG_SERVER_URL, second)
    with psycopg.connect(PG_SERVER_URL, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert first.rsplit("/", 1)[1] not in names and second.rsplit("/", 1)[1] not in names


def test_readings_are_dated_now_not_on_a_fixed_day() -> None:
    now_us = time.time_ns() // 1000
    assert now_us - 120_000_000 < base_us() <= now_us


BENCHMARKS = sorted(
    p.stem for p in (Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py")
    if not p.stem.startswith("_")
)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_still_imports(name: str) -> None:
    # A module moved by a refactor must not leave `python -m benchmarks NAME` broken until
    # someone runs it (the alerts benchmark once imported a name the scenario split had moved).
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)), name
