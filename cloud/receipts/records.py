"""Reading receipts: the rows a principal sees, in the shape the API answers with."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from cloud.apikeys import Principal
from cloud.receipts import lifecycle as lc
from cloud.receipts.access import receipt_scope
from cloud.receipts.document import b64, document_sha256
from cloud.receipts.rows import fetch_all, fetch_one
from cloud.registry import NotFound


def receipt_state(row: dict[str, Any]) -> lc.ReceiptState:
    """The stored receipt as the value the pure state machine works on."""
    return lc.ReceiptState(
        number=row["number"],
        status=lc.ReceiptStatus(row["status"]),
        holder=row["holder"],
        pledgee=row["pledgee"],
        unit=row["unit"],
        holding=lc.Holding(Decimal(row["quantity"]), int(row["pieces"]), frozenset(row["tags"])),
    )


async def visible_receipt(conn: AsyncConnection[Any], p: Principal, number: str) -> dict[str, Any]:
    cond, params = receipt_scope(p)
    row = await fetch_one(
        conn, f"SELECT r.* FROM receipts r WHERE r.number = %s AND {cond}", [number, *params]
    )
    if row is None:
        raise NotFound(f"no receipt {number!r}")
    return row


def receipt_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": row["number"],
        "lot_id": row["lot_id"],
        "parent_number": row["parent_number"],
        "status": row["status"],
        "holder": row["holder"],
        "pledgee": row["pledgee"],
        "quantity": str(row["quantity"]),
        "unit": row["unit"],
        "pieces": row["pieces"],
        "tag_count": len(row["tags"]),
        "version": row["version"],
        "document": json.loads(row["document"]),
        "document_sha256": document_sha256(json.loads(row["document"])),
        "signature": b64(bytes(row["signature"])),
        "issued_at": row["issued_at"],
        "updated_at": row["updated_at"],
        "allowed_steps": lc.allowed_steps(receipt_state(row)),
    }


async def get_receipt(conn: AsyncConnection[Any], p: Principal, number: str) -> dict[str, Any]:
    """The receipt, with the latest physical verification of its lot (signed or not since)."""
    row = await visible_receipt(conn, p, number)
    latest = await fetch_one(
        conn,
        "SELECT verified_at, declared_pieces, counted, tolerance, outside_fence,"
        " open_theft_alerts, missing, ledger_idx AS ledger_index FROM lot_verifications"
        " WHERE lot_id = %s ORDER BY verified_at DESC, id DESC LIMIT 1",
        (row["lot_id"],),
    )
    return {**receipt_view(row), "latest_verification": latest}


async def list_receipts(
    conn: AsyncConnection[Any], p: Principal, *, status: str | None = None
) -> list[dict[str, Any]]:
    cond, params = receipt_scope(p)
    if status is not None:
        cond, params = f"{cond} AND r.status = %s", [*params, status]
    rows = await fetch_all(
        conn, f"SELECT r.* FROM receipts r WHERE {cond} ORDER BY r.number", params
    )
    return [receipt_view(r) for r in rows]
