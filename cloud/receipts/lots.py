"""Lots (the pledged goods): their rows and tags, what the readings say, and their description.

One home for lot logic. The dashboard's view (create, list, presence) follows the visibility of
``cloud/scope.py``; describing a lot for the receipts issued on it is a manager's act, logged in
the evidence ledger, because receipts are issued on the description and the authorised vehicles
in it open the gate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cloud.apikeys import Principal
from cloud.receipts import ledger
from cloud.receipts.access import MANAGERS, Clerk, managed_site_scope, require
from cloud.receipts.document import tag_set_sha256
from cloud.receipts.rows import fetch_all, fetch_one
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


# --- the description receipts are issued on ---------------------------------------------------

LOT_DETAIL_FIELDS = (
    "depositor",
    "goods_kind",
    "pieces",
    "zone",
    "quality",
    "packaging",
    "quantity",
    "unit",
    "marks",
    "unit_value",
    "currency",
    "fence",
    "tag_pattern",
    "expected_labels",
    "temperature_c_min",
    "temperature_c_max",
    "humidity_pct_min",
    "humidity_pct_max",
    "authorised_vehicles",
)
_JSON_FIELDS = ("expected_labels", "authorised_vehicles")


async def managed_lot(
    conn: AsyncConnection[Any], p: Principal, lot_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The lot row with its site and operator, if ``p`` manages it (``lock``: FOR UPDATE)."""
    cond, params = managed_site_scope(p)
    row = await fetch_one(
        conn,
        "SELECT l.*, s.name AS site_name, s.operator_id, o.name AS operator_name"
        " FROM lots l JOIN sites s ON s.id = l.site_id JOIN operators o ON o.id = s.operator_id"
        f" WHERE l.id = %s AND {cond}" + (" FOR UPDATE OF l" if lock else ""),
        [lot_id, *params],
    )
    if row is None:
        raise NotFound(f"no lot {lot_id!r}")
    return row


async def set_lot_details(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    lot_id: str,
    details: dict[str, Any],
    epcs: list[str] | None,
) -> dict[str, Any]:
    """Record what the receipt will say about the goods (and, optionally, the tag list).

    The new description is logged: receipts are issued on it, and the authorised vehicles in it
    open the gate.
    """
    p = clerk.principal
    require(p, MANAGERS, "describe lots")
    await managed_lot(conn, p, lot_id)
    unknown = set(details) - set(LOT_DETAIL_FIELDS)
    if unknown:
        raise ValueError(f"unknown lot fields {sorted(unknown)}")
    if details:
        assignments = ", ".join(
            f"{name} = %({name})s::jsonb" if name in _JSON_FIELDS else f"{name} = %({name})s"
            for name in details
        )
        values = {k: (Jsonb(v) if k in _JSON_FIELDS else v) for k, v in details.items()}
        await conn.execute(
            f"UPDATE lots SET {assignments} WHERE id = %(lot_id)s", {**values, "lot_id": lot_id}
        )
    if epcs is not None:
        live = await fetch_all(
            conn,
            "SELECT DISTINCT r.number FROM receipts r JOIN receipt_tags t"
            " ON t.receipt_number = r.number WHERE r.lot_id = %s AND t.live",
            (lot_id,),
        )
        if live:
            raise Conflict(
                f"lot {lot_id} backs live receipt {live[0]['number']}; its tags cannot change"
            )
        try:
            async with conn.transaction():
                await conn.execute("DELETE FROM lot_tags WHERE lot_id = %s", (lot_id,))
                await conn.execute(
                    "INSERT INTO lot_tags (epc, lot_id) SELECT unnest(%s::text[]), %s",
                    ([e.upper() for e in epcs], lot_id),
                )
        except psycopg.errors.UniqueViolation as err:
            raise Conflict(f"a tag belongs to another lot: {err.diag.message_detail}") from None
    described = await lot_details(conn, p, lot_id)
    body = {
        k: (str(v) if isinstance(v, Decimal) else v)
        for k, v in described.items()
        if k not in ("epcs", "id")
    }
    body["tag_set_sha256"] = tag_set_sha256(described["epcs"])
    body["tag_count"] = len(described["epcs"])
    await ledger.append(
        conn, ledger.make_entry("lot.described", clerk.now, body, lot=lot_id, actor=p.key_id)
    )
    await ledger.publish_tree_head(conn, clerk.key, clerk.now)
    return described


async def lot_details(conn: AsyncConnection[Any], p: Principal, lot_id: str) -> dict[str, Any]:
    require(p, MANAGERS, "read lot details")
    lot = await managed_lot(conn, p, lot_id)
    tags = await fetch_all(
        conn, "SELECT epc FROM lot_tags WHERE lot_id = %s ORDER BY epc", (lot_id,)
    )
    keep = ("id", "site_id", "name", *LOT_DETAIL_FIELDS)
    return {**{k: lot[k] for k in keep}, "epcs": [t["epc"] for t in tags]}
