"""Schema migrations: SQL files in cloud/migrations applied once each, in name order.

``NNNN_name.sql`` always applies. ``NNNN_name.timescale.sql`` applies when the TimescaleDB
extension is available (it is created then), ``NNNN_name.native.sql`` when it is not: the
time-series path is chosen at migration time and recorded. Each file runs in its own
transaction, under an advisory lock so concurrent starters do not race.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from psycopg import Connection

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x5057_4D49  # "PWMI"


@dataclass(frozen=True)
class Migration:
    version: str  # "0002_timeseries"
    path: Path


def plan(timescale: bool, directory: Path = MIGRATIONS) -> list[Migration]:
    chosen: dict[str, Migration] = {}
    skip = ".native.sql" if timescale else ".timescale.sql"
    for path in sorted(directory.glob("*.sql")):
        if path.name.endswith(skip):
            continue
        version = path.name.split(".", 1)[0]
        if version in chosen:
            other = chosen[version].path.name
            raise ValueError(f"two migrations for {version}: {other}, {path.name}")
        chosen[version] = Migration(version, path)
    return [chosen[v] for v in sorted(chosen)]


def _timescale_installable(conn: Connection) -> bool:
    cur = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return cur.fetchone() is not None


def migrate(conn: Connection) -> list[str]:
    """Apply what is missing; returns the versions applied now. ``conn`` is autocommit."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(),"
            " timeseries text NOT NULL)"
        )
        row = conn.execute("SELECT timeseries FROM schema_migrations LIMIT 1").fetchone()
        if row is not None:
            timescale = row[0] == "timescale"
        else:
            timescale = _timescale_installable(conn)
            if timescale:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in plan(timescale):
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.path.read_text())
                conn.execute(
                    "INSERT INTO schema_migrations (version, timeseries) VALUES (%s, %s)",
                    (migration.version, "timescale" if timescale else "native"),
                )
            log.info("migration applied", extra={"version": migration.version})
            applied.append(migration.version)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
