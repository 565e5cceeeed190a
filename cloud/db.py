"""Database connections: one place that knows how to reach PostgreSQL."""

from __future__ import annotations

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


def connect(dsn: str) -> Connection:
    return Connection.connect(dsn, autocommit=True)


def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    """A pool whose connections return rows as dicts (the API's services read by name)."""
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        open=False,
    )
