"""Maintenance windows per site: alerts opened inside one are stored but notify no one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

COLUMNS = "id, site_id, starts_at, ends_at, alert_types, reason, created_by, created_at"


async def add_window(
    conn: AsyncConnection[Any], site_id: str, *, starts_at: datetime, ends_at: datetime,
    alert_types: list[str] | None, reason: str, actor: str,
) -> dict[str, Any]:
    if ends_at <= starts_at:
        raise ValueError("a maintenance window must end after it starts")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO maintenance_windows (site_id, starts_at, ends_at, alert_types, reason, "
            f"created_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
            (site_id, starts_at, ends_at, alert_types, reason, actor))
        row = await cur.fetchone()
    assert row is not None
    return row


async def list_windows(conn: AsyncConnection[Any], site_id: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM maintenance_windows WHERE site_id = %s "
                          "ORDER BY starts_at", (site_id,))
        return await cur.fetchall()


async def delete_window(conn: AsyncConnection[Any], site_id: str, window_id: int) -> bool:
    cur = await conn.execute("DELETE FROM maintenance_windows WHERE id = %s AND site_id = %s",
                             (window_id, site_id))
    return cur.rowcount > 0


async def manages_site(conn: AsyncConnection[Any], p: Any, site_id: str) -> bool:
    """Admins manage every site, supervisors their operator's."""
    from cloud.scope import managed_site_condition

    cond, params = managed_site_condition(p, "id")
    cur = await conn.execute(f"SELECT 1 FROM sites WHERE id = %s AND {cond}", [site_id, *params])
    return await cur.fetchone() is not None
