"""The console's search box: lots, receipts, tags (EPC), gateways, plates and trackers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from cloud import console
from cloud.api.deps import CurrentPrincipal, DbConn

router = APIRouter(prefix="/api/v1/search", tags=["console"])


@router.get("")
async def search(
    conn: DbConn, principal: CurrentPrincipal,
    q: str = Query(min_length=2, max_length=64, description="part of an id, EPC, plate or name"),
) -> list[dict[str, Any]]:
    """At most a few matches of each kind, each with the site and lot it belongs to."""
    return await console.search(conn, principal, q)
