"""Query results as dictionaries, the shape every receipts module reads rows in."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def fetch_all(
    conn: AsyncConnection[Any], sql: str, params: Any = None
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def fetch_one(
    conn: AsyncConnection[Any], sql: str, params: Any = None
) -> dict[str, Any] | None:
    found = await fetch_all(conn, sql, params)
    return found[0] if found else None
