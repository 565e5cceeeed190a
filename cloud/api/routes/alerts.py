"""Alerts: the list supervisors watch, and their lifecycle (acknowledge, resolve)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from cloud import alerts
from cloud.api.deps import CurrentPrincipal, DbConn, Manager
from cloud.api.schemas import AlertAction
from cloud.scope import alert_condition

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("")
async def list_alerts(
    conn: DbConn,
    principal: CurrentPrincipal,
    state: Literal["open", "acknowledged", "resolved", "active"] | None = None,
    limit: int = Query(200, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return await alerts.list_alerts(conn, alert_condition(principal), state=state, limit=limit)


@router.get("/{alert_id}")
async def get_alert(alert_id: int, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    alert = await alerts.get_alert(conn, alert_condition(principal), alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    return alert


async def _transition(
    conn: DbConn, principal: Manager, alert_id: int, action: str, body: AlertAction
) -> dict[str, Any]:
    if await alerts.get_alert(conn, alert_condition(principal), alert_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    try:
        alert = await alerts.transition(conn, alert_id, action, principal.key_id, body.comment)
    except alerts.AlertTransitionError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    assert alert is not None
    return alert


@router.post("/{alert_id}/acknowledge")
async def acknowledge(
    alert_id: int, conn: DbConn, principal: Manager, body: AlertAction | None = None
) -> dict[str, Any]:
    return await _transition(conn, principal, alert_id, "acknowledge", body or AlertAction())


@router.post("/{alert_id}/resolve")
async def resolve(
    alert_id: int, conn: DbConn, principal: Manager, body: AlertAction | None = None
) -> dict[str, Any]:
    return await _transition(conn, principal, alert_id, "resolve", body or AlertAction())
