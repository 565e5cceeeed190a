"""Lots: the pledged goods, their tags and their latest presence."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from cloud import registry
from cloud.api.deps import CurrentPrincipal, DbConn, Manager
from cloud.api.schemas import LotCreate, LotOut
from cloud.receipts import lots

router = APIRouter(prefix="/api/v1/lots", tags=["lots"])


@router.post("", status_code=status.HTTP_201_CREATED, max_body_size=8 * 1024 * 1024)  # 100k EPCs
async def create_lot(body: LotCreate, conn: DbConn, principal: Manager) -> LotOut:
    await registry.get_site(conn, principal, body.site_id)  # visible to this principal, or 404
    row = await lots.create_lot(conn, body.model_dump(exclude={"epcs"}), body.epcs)
    return LotOut.model_validate(row)


@router.get("")
async def list_lots(conn: DbConn, principal: CurrentPrincipal) -> list[LotOut]:
    return [LotOut.model_validate(r) for r in await lots.list_lots(conn, principal)]


@router.get("/{lot_id}")
async def get_lot(lot_id: str, conn: DbConn, principal: CurrentPrincipal) -> LotOut:
    return LotOut.model_validate(await lots.get_lot(conn, principal, lot_id))


@router.get("/{lot_id}/tags")
async def lot_presence(lot_id: str, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    """Latest presence of each of the lot's tags (present / missing / unknown) and totals."""
    return await lots.lot_presence(conn, principal, lot_id)
