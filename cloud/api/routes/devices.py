"""Gateway and reader details for the console (last seen, read rate, outbox, version), and a
tracker's track for replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, status

from cloud import console
from cloud.api.deps import CurrentPrincipal, DbConn
from cloud.api.schemas import ApiTime

router = APIRouter(prefix="/api/v1/devices", tags=["console"])
MAX_TRACK = timedelta(days=7)


@router.get("/gateways/{gateway_id}")
async def gateway(gateway_id: str, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    return await console.gateway_details(conn, principal, gateway_id)


@router.get("/gateways/{gateway_id}/readers/{reader}")
async def reader(
    gateway_id: str, reader: str, conn: DbConn, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await console.reader_details(conn, principal, gateway_id, reader)


@router.get("/trackers/{tracker}/track")
async def track(
    tracker: str, conn: DbConn, principal: CurrentPrincipal,
    start: ApiTime | None = None, end: ApiTime | None = None,
) -> list[dict[str, Any]]:
    """The tracker's fixes, oldest first; by default the last two hours."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=2)
    if end < start or end - start > MAX_TRACK:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "start must be before end, at most 7 days apart")
    return await console.track(conn, principal, tracker, start, end)
