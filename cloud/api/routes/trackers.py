"""Trackers that reach the cloud directly: provisioning JT/T 808 terminals (admin only).

A terminal is provisioned for one site (and optionally one of that site's lots); the JT/T 808
server of that site accepts it and no other. The authentication code is shown once, in the
answer to the provisioning request.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import Admin, DbConn
from cloud.jt808 import provisioning


class Jt808Provision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(min_length=1, max_length=64)
    phone: str = Field(pattern=r"^[0-9]{1,20}$", description="the terminal's SIM number")
    terminal_id: str | None = Field(
        default=None, pattern=r"^[\x21-\x7e]{1,30}$", description="ID its registration carries"
    )
    auth_code: str | None = Field(
        default=None, pattern=r"^[\x21-\x7e]{8,64}$", description="code given out of band"
    )
    lot_id: str | None = Field(default=None, min_length=1, max_length=64)
    report_interval_s: float = Field(default=600.0, ge=1, le=86_400)


class Jt808Provisioned(BaseModel):
    phone: str
    tracker: str
    site_id: str
    terminal_id: str | None
    lot_id: str | None
    report_interval_s: float
    auth_code: str  # shown here only


class Jt808Terminal(BaseModel):
    phone: str
    tracker: str
    site_id: str
    terminal_id: str | None
    lot_id: str | None
    report_interval_s: float
    plate: str | None
    manufacturer: str | None
    model: str | None
    provisioned_at: datetime | None
    registered_at: datetime | None
    last_seen_at: datetime | None


router = APIRouter(prefix="/api/v1/trackers", tags=["trackers"])


@router.post("/jt808", status_code=status.HTTP_201_CREATED)
async def provision_jt808(body: Jt808Provision, conn: DbConn, principal: Admin) -> Jt808Provisioned:
    try:
        terminal = await provisioning.provision(
            conn,
            site=body.site_id,
            phone=body.phone,
            terminal_id=body.terminal_id,
            auth_code=body.auth_code,
            lot=body.lot_id,
            report_interval_s=body.report_interval_s,
            actor=principal.key_id,
        )
    except provisioning.ProvisioningError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    return Jt808Provisioned(
        phone=terminal.phone,
        tracker=provisioning.tracker_of(terminal.phone),
        site_id=terminal.site,
        terminal_id=terminal.terminal_id,
        lot_id=terminal.lot,
        report_interval_s=terminal.report_interval_s,
        auth_code=terminal.auth_code,
    )


@router.get("/jt808")
async def list_jt808(
    conn: DbConn, principal: Admin, site_id: str | None = None
) -> list[Jt808Terminal]:
    rows = await provisioning.list_terminals(conn, site_id)
    return [Jt808Terminal.model_validate(r) for r in rows]
