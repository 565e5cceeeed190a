"""Rule sets and maintenance windows per site, and snoozing an alert."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from cloud import alerts
from cloud.api.deps import DbConn, Manager
from cloud.api.schemas import ApiTime
from cloud.rules import maintenance, sets
from cloud.scope import alert_condition

router = APIRouter(prefix="/api/v1", tags=["rules"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SnoozeIn(_In):
    until: ApiTime
    comment: str = Field("", max_length=2000)


class MaintenanceIn(_In):
    starts_at: ApiTime
    ends_at: ApiTime
    alert_types: list[str] | None = None
    reason: str = Field("", max_length=2000)


class RuleSetIn(_In):
    rules: list[dict[str, Any]]


async def _site(conn: DbConn, p: Manager, site_id: str) -> None:
    if not await maintenance.manages_site(conn, p, site_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")


@router.post("/alerts/{alert_id}/snooze")
async def snooze(alert_id: int, body: SnoozeIn, conn: DbConn, principal: Manager
                 ) -> dict[str, Any]:
    if await alerts.get_alert(conn, alert_condition(principal), alert_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    alert = await alerts.snooze(conn, alert_id, body.until, principal.key_id, body.comment)
    assert alert is not None
    return alert


@router.get("/sites/{site_id}/rules")
async def get_rules(site_id: str, conn: DbConn, principal: Manager) -> dict[str, Any]:
    await _site(conn, principal, site_id)
    return (await sets.active_rule_set(conn, site_id)).model_dump(exclude_none=True)


@router.put("/sites/{site_id}/rules")
async def put_rules(site_id: str, body: RuleSetIn, conn: DbConn, principal: Manager
                    ) -> dict[str, Any]:
    await _site(conn, principal, site_id)
    try:
        rule_set = await sets.publish_rule_set(conn, site_id, body.rules, principal.key_id)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    return rule_set.model_dump(exclude_none=True)


@router.get("/sites/{site_id}/maintenance-windows")
async def list_windows(site_id: str, conn: DbConn, principal: Manager) -> list[dict[str, Any]]:
    await _site(conn, principal, site_id)
    return await maintenance.list_windows(conn, site_id)


@router.post("/sites/{site_id}/maintenance-windows", status_code=status.HTTP_201_CREATED)
async def add_window(site_id: str, body: MaintenanceIn, conn: DbConn, principal: Manager
                     ) -> dict[str, Any]:
    await _site(conn, principal, site_id)
    try:
        return await maintenance.add_window(
            conn, site_id, starts_at=body.starts_at, ends_at=body.ends_at,
            alert_types=body.alert_types, reason=body.reason, actor=principal.key_id)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None


@router.delete("/sites/{site_id}/maintenance-windows/{window_id}",
               status_code=status.HTTP_204_NO_CONTENT)
async def delete_window(site_id: str, window_id: int, conn: DbConn, principal: Manager) -> None:
    await _site(conn, principal, site_id)
    if not await maintenance.delete_window(conn, site_id, window_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no maintenance window {window_id}")



