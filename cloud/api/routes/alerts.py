"""Alerts: the list supervisors watch, and their lifecycle (acknowledge, resolve)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from cloud import alerts
from cloud.actor_names import name_actors
from cloud.alert_condition import why_still_open
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
    return await name_actors(conn, alert)


async def _transition(
    conn: DbConn, principal: Manager, alert_id: int, action: str, body: AlertAction
) -> dict[str, Any]:
    current = await alerts.get_alert(conn, alert_condition(principal), alert_id)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    if action == "resolve" and current["state"] != "resolved":
        # Closing an alert says "this is over": it must say why, and it must be true.
        if not body.comment.strip():
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                "resolving an alert needs a comment saying what was done")
        reason = await why_still_open(conn, current)
        if reason is not None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"cannot resolve: {reason}; acknowledge or snooze it instead")
    try:
        alert = await alerts.transition(conn, alert_id, action, principal.key_id, body.comment)
    except alerts.AlertTransitionError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    assert alert is not None
    return await name_actors(conn, alert)


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
