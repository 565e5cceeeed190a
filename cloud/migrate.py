"""Schema migrations: SQL files in cloud/migrations applied once each, in name order.

``NNNN_name.sql`` always applies. ``NNNN_name.timescale.sql`` applies on the TimescaleDB path
(the extension is created then), ``NNNN_name.native.sql`` on the native one (plain PostgreSQL
partitions). The path is chosen at the first migration and recorded:

- ``PW_TIMESERIES=timescale`` or ``native`` chooses it explicitly;
- otherwise TimescaleDB when ``timescaledb`` is in ``shared_preload_libraries`` (the extension
  cannot be created without it, so a server with the package merely installed stays native).

A choice the server cannot honour, or one that contradicts the recorded path, is refused with
a clear error before anything is changed. Each file runs in its own transaction, under an
advisory lock so concurrent starters do not race.
"""

from __future__ import annotations

import logging
import os
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


TIMESERIES_ENV = "PW_TIMESERIES"


class MigrationRefused(RuntimeError):
    """The requested time-series path cannot be used on this server or database."""


def choose_timeseries(
    requested: str | None, *, preloaded: bool, available: bool, recorded: str | None = None,
) -> str:
    """``timescale`` or ``native``: the path to migrate on, from what was asked, what the
    server offers and what the database already uses (``recorded``)."""
    requested = (requested or "").strip().lower() or None
    if requested not in (None, "auto", "timescale", "native"):
        raise MigrationRefused(
            f"{TIMESERIES_ENV}={requested!r}: use 'timescale', 'native' or leave it unset")
    if recorded is not None:
        if requested in ("timescale", "native") and requested != recorded:
            raise MigrationRefused(
                f"{TIMESERIES_ENV}={requested} but this database was migrated on the {recorded} "
                f"path; the path cannot change after the first migration (unset {TIMESERIES_ENV})")
        return recorded
    if requested == "native":
        return "native"
    if requested == "timescale":
        if not available:
            raise MigrationRefused(
                f"{TIMESERIES_ENV}=timescale but the timescaledb extension is not installed on "
                "this server: install TimescaleDB 2.x for its PostgreSQL major, or set "
                f"{TIMESERIES_ENV}=native")
        if not preloaded:
            raise MigrationRefused(
                f"{TIMESERIES_ENV}=timescale but timescaledb is not in shared_preload_libraries: "
                "add it in postgresql.conf (shared_preload_libraries = 'timescaledb') and "
                f"restart PostgreSQL, or set {TIMESERIES_ENV}=native")
        return "timescale"
    if preloaded and not available:
        raise MigrationRefused(
            "timescaledb is in shared_preload_libraries but its extension files are missing: "
            f"install the TimescaleDB package, or set {TIMESERIES_ENV}=native")
    return "timescale" if preloaded else "native"


def _server_offers(conn: Connection) -> tuple[bool, bool]:
    """(preloaded, available) for the timescaledb extension on this server."""
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    libraries = {lib.strip().strip('"') for lib in (row[0] if row else "").split(",")}
    # The loader may be named with its version (timescaledb-2.17.2) in some packagings.
    preloaded = any(lib == "timescaledb" or lib.startswith("timescaledb-") for lib in libraries)
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is not None
    return preloaded, available


def migrate(conn: Connection, timeseries: str | None = None) -> list[str]:
    """Apply what is missing; returns the versions applied now. ``conn`` is autocommit.
    ``timeseries`` (else ``$PW_TIMESERIES``): ``timescale``, ``native`` or ``auto``."""
    requested = timeseries if timeseries is not None else os.environ.get(TIMESERIES_ENV)
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(),"
            " timeseries text NOT NULL)"
        )
        row = conn.execute("SELECT timeseries FROM schema_migrations LIMIT 1").fetchone()
        preloaded, available = _server_offers(conn)
        path = choose_timeseries(requested, preloaded=preloaded, available=available,
                                 recorded=row[0] if row else None)
        timescale = path == "timescale"
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
