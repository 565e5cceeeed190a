"""Positional rows whatever the connection's row factory (the API's pool hands out dicts)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import tuple_row


async def execute(conn: AsyncConnection[Any], sql: str, params: Any = None) -> AsyncCursor[Any]:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(sql, params)
    return cur
