"""Time-bucketed telemetry: lot counts over time, reader throughput per gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud import telemetry
from cloud.api.deps import CurrentPrincipal, DbConn
from cloud.api.schemas import ApiTime

router = APIRouter(prefix="/api/v1/telemetry", tags=["telemetry"])


class TimeWindow(BaseModel):
    """``from``/``to`` (ISO 8601; default: the last hour) and the bucket width in seconds."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: ApiTime | None = Field(None, alias="from")
    end: ApiTime | None = Field(None, alias="to")
    bucket_s: int = Field(60, ge=1, le=86_400)

    def bounds(self) -> dict[str, Any]:
        end = self.end or datetime.now(UTC)
        start = self.start or end - timedelta(hours=1)
        return {"start": start, "end": end, "bucket": timedelta(seconds=self.bucket_s)}


Window = Annotated[TimeWindow, Query()]


@router.get("/lots/{lot_id}/counts")
async def lot_counts(
    lot_id: str, window: Window, conn: DbConn, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    try:
        return await telemetry.lot_counts(conn, principal, lot_id, **window.bounds())
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None


@router.get("/gateways/{gateway_id}/reads")
async def read_rates(
    gateway_id: str, window: Window, conn: DbConn, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    try:
        return await telemetry.read_rates(conn, principal, gateway_id, **window.bounds())
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
