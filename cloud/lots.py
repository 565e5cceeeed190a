"""Lots (the pledged goods), their tags, and what the latest readings say about them."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.apikeys import Principal
from cloud.registry import Conflict, NotFound
from cloud.scope import lot_condition

LOT_COLUMNS = (
    "lots.id, lots.site_id, lots.name, lots.depositor, lots.goods_kind, lots.pieces, lots.zone, "
    "lots.financier_id, lots.absence_window_s, lots.created_at"
)


async def create_lot(conn: AsyncConnection, lot: dict[str, Any], epcs: list[str]) -> dict[str, Any]:
    try:
        async with conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"""
                INSERT INTO lots (id, site_id, name, depositor, goods_kind, pieces, zone,
                                  financier_id, absence_window_s)
                VALUES (%(id)s, %(site_id)s, %(name)s, %(depositor)s, %(goods_kind)s, %(pieces)s,
                        %(zone)s, %(financier_id)s, %(absence_window_s)s)
                RETURNING {LOT_COLUMNS}
                """,
                lot,
            )
            row = await cur.fetchone()
            if epcs:
                await conn.execute(
                    "INSERT INTO lot_tags (epc, lot_id) SELECT unnest(%s::text[]), %s",
                    ([e.upper() for e in epcs], lot["id"]),
                )
    except psycopg.errors.UniqueViolation as err:
        detail = err.diag.message_detail or str(err)
        raise Conflict(f"lot or tag already exists: {detail}") from None
    except psycopg.errors.ForeignKeyViolation as err:
        raise NotFound(err.diag.message_detail or "referenced site or financier missing") from None
    assert row is not None
    return {**row, "tag_count": len(epcs)}


async def list_lots(conn: AsyncConnection, p: Principal) -> list[dict[str, Any]]:
    cond, params = lot_condition(p)
    cur = await conn.execute(
        f"""
        SELECT {LOT_COLUMNS},
               (SELECT count(*) FROM lot_tags t WHERE t.lot_id = lots.id) AS tag_count
        FROM lots WHERE {cond} ORDER BY lots.id
        """,
        params,
    )
    return await cur.fetchall()  # type: ignore[return-value]


async def get_lot(conn: AsyncConnection, p: Principal, lot_id: str) -> dict[str, Any]:
    cond, params = lot_condition(p)
    cur = await conn.execute(
        f"""
        SELECT {LOT_COLUMNS},
               (SELECT count(*) FROM lot_tags t WHERE t.lot_id = lots.id) AS tag_count
        FROM lots WHERE lots.id = %s AND {cond}
        """,
        [lot_id, *params],
    )
    row = await cur.fetchone()
    if row is None:
        # Same answer whether the lot does not exist or is someone else's: no enumeration.
        raise NotFound(f"no lot {lot_id!r}")
    return row  # type: ignore[return-value]


async def lot_presence(conn: AsyncConnection, p: Principal, lot_id: str) -> dict[str, Any]:
    """Latest known state of each of the lot's tags, and the totals."""
    lot = await get_lot(conn, p, lot_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT t.epc, coalesce(s.presence, 'unknown') AS presence, s.presence_changed_at,
               s.last_seen_at, s.gateway_id, s.reader, s.antenna, s.rssi_cdbm
        FROM lot_tags t LEFT JOIN tag_state s ON s.epc = t.epc
        WHERE t.lot_id = %s ORDER BY t.epc
        """,
        (lot_id,),
    )
    tags = await cur.fetchall()
    totals = {"present": 0, "missing": 0, "unknown": 0}
    for tag in tags:
        totals[tag["presence"]] += 1
    return {"lot": lot["id"], "expected": len(tags), **totals, "tags": tags}
