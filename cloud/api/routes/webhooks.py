"""Webhook endpoints per financier, secret rotation, the delivery log and replays."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import DbConn, require_roles
from cloud.apikeys import Principal
from cloud.webhooks import service

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
Owner = Annotated[Principal, Depends(require_roles("admin", "financier"))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointIn(_In):
    url: str = Field(max_length=2000)
    event_types: list[str] = Field(default_factory=list)
    lot_ids: list[str] | None = None
    receipt_numbers: list[str] | None = None
    financier_id: str | None = None  # admins only


class EndpointPatch(_In):
    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = None
    lot_ids: list[str] | None = None
    receipt_numbers: list[str] | None = None
    enabled: bool | None = None


class RotateIn(_In):
    overlap_s: int = Field(86_400, ge=0, le=30 * 86_400)


def _errors(err: Exception) -> HTTPException:
    if isinstance(err, service.NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(err))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err))


@router.post("/endpoints", status_code=status.HTTP_201_CREATED)
async def create_endpoint(body: EndpointIn, conn: DbConn, principal: Owner) -> dict[str, Any]:
    """The response carries the endpoint's secret; it is not shown again."""
    try:
        return await service.create_endpoint(
            conn, principal, url=body.url, event_types=body.event_types, lot_ids=body.lot_ids,
            receipt_numbers=body.receipt_numbers, financier_id=body.financier_id)
    except service.WebhookError as err:
        raise _errors(err) from None


@router.get("/endpoints")
async def list_endpoints(conn: DbConn, principal: Owner) -> list[dict[str, Any]]:
    return await service.list_endpoints(conn, principal)


@router.patch("/endpoints/{endpoint_id}")
async def update_endpoint(endpoint_id: str, body: EndpointPatch, conn: DbConn, principal: Owner
                          ) -> dict[str, Any]:
    try:
        return await service.update_endpoint(conn, principal, endpoint_id,
                                             body.model_dump(exclude_unset=True))
    except (service.NotFound, service.WebhookError) as err:
        raise _errors(err) from None


@router.post("/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(endpoint_id: str, conn: DbConn, principal: Owner,
                        body: RotateIn | None = None) -> dict[str, Any]:
    overlap = timedelta(seconds=(body or RotateIn()).overlap_s)
    try:
        return await service.rotate_secret(conn, principal, endpoint_id, overlap)
    except service.NotFound as err:
        raise _errors(err) from None


@router.get("/endpoints/{endpoint_id}/deliveries")
async def list_deliveries(
    endpoint_id: str, conn: DbConn, principal: Owner,
    state: Literal["pending", "delivered", "failed"] | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    try:
        return await service.list_deliveries(conn, principal, endpoint_id, state, limit)
    except service.NotFound as err:
        raise _errors(err) from None


@router.get("/deliveries/{delivery_id}")
async def get_delivery(delivery_id: int, conn: DbConn, principal: Owner) -> dict[str, Any]:
    try:
        return await service.get_delivery(conn, principal, delivery_id)
    except service.NotFound as err:
        raise _errors(err) from None


@router.post("/deliveries/{delivery_id}/replay", status_code=status.HTTP_201_CREATED)
async def replay(delivery_id: int, conn: DbConn, principal: Owner) -> dict[str, Any]:
    try:
        return await service.replay(conn, principal, delivery_id)
    except service.NotFound as err:
        raise _errors(err) from None
