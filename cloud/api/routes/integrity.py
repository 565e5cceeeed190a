"""Integrity: shipments and their verdicts, and each lot's sources side by side (issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.api.deps import CurrentPrincipal, DbConn, Manager
from cloud.api.schemas import ApiTime
from cloud.integrity import lots, shipments
from decisions.reconciliation import Figure, Source
from decisions.shipments import Direction, Place

Name = Annotated[str, Field(min_length=1, max_length=128)]


class PlaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: Name
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(default=300.0, gt=0, le=50_000)
    site: Name | None = Field(default=None, description="the Pledgewatch site there, if any")

    def place(self) -> Place:
        return Place(self.name, self.lat, self.lon, self.radius_m, self.site)


class ShipmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: Name
    site_id: Name
    lot_id: Name | None = None
    direction: Direction
    counterparty: Name
    origin: PlaceIn
    destination: PlaceIn
    plate: Annotated[str, Field(min_length=2, max_length=16)]
    tracker: Name | None = None
    epcs: list[Annotated[str, Field(pattern=r"^[0-9A-F]{4,124}$")]] = Field(
        default_factory=list, max_length=100_000)
    window_start: ApiTime
    window_end: ApiTime

    @model_validator(mode="after")
    def _window(self) -> ShipmentCreate:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class LotDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    unit_weight_kg: float = Field(ge=0, le=1e6)
    tare_kg: float = Field(default=0.0, ge=0, le=1e7)
    pallets: int | None = Field(default=None, ge=0, le=1_000_000)
    tags: int | None = Field(default=None, ge=0, le=10_000_000)
    declared_at: ApiTime | None = None
    tolerance: dict[Literal[
        "count_pieces", "count_fraction", "weight_kg", "weight_fraction",
        "drift_fraction_per_day", "max_drift_fraction", "persist_for", "stale_after",
    ], Annotated[float, Field(ge=0, le=1e9)]] = Field(default_factory=dict)


class FigureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: Literal["labels", "camera"]
    value: float = Field(ge=0, le=1e9)
    observed_at: ApiTime


router = APIRouter(prefix="/api/v1", tags=["integrity"])


@router.post("/shipments", status_code=status.HTTP_201_CREATED,
             max_body_size=4 * 1024 * 1024)  # room for a container's EPCs
async def create_shipment(
    body: ShipmentCreate, conn: DbConn, principal: Manager
) -> dict[str, Any]:
    return await shipments.create(conn, principal, shipments.NewShipment(
        id=body.id, site_id=body.site_id, direction=body.direction,
        counterparty=body.counterparty, origin=body.origin.place(),
        destination=body.destination.place(), plate=body.plate, window_start=body.window_start,
        window_end=body.window_end, tracker=body.tracker, lot_id=body.lot_id,
        epcs=tuple(body.epcs),
    ))


@router.get("/shipments")
async def list_shipments(
    conn: DbConn, principal: CurrentPrincipal,
    verdict: Literal["corroborated", "partly", "contradicted", "no_evidence"] | None = None,
    lot_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: int = Query(200, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return await shipments.list_shipments(conn, principal, verdict=verdict, lot_id=lot_id,
                                          limit=limit)


@router.get("/shipments/{shipment_id}")
async def get_shipment(
    shipment_id: str, conn: DbConn, principal: CurrentPrincipal
) -> dict[str, Any]:
    found = await shipments.get(conn, principal, shipment_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no shipment {shipment_id}")
    return found


@router.post("/shipments/{shipment_id}/judge")
async def judge_shipment(shipment_id: str, conn: DbConn, principal: Manager) -> dict[str, Any]:
    """Judge now against what the sensors saw; a changed verdict is logged and delivered."""
    if await shipments.get(conn, principal, shipment_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no shipment {shipment_id}")
    result, changed = await shipments.judge_and_record(conn, shipment_id, datetime.now(UTC))
    return {**result.as_json(), "changed": changed}


@router.put("/lots/{lot_id}/integrity", status_code=status.HTTP_204_NO_CONTENT)
async def declare_lot(
    lot_id: str, body: LotDeclaration, conn: DbConn, principal: Manager
) -> None:
    await lots.declare(
        conn, principal, lot_id, unit_weight_kg=body.unit_weight_kg, tare_kg=body.tare_kg,
        pallets=body.pallets, tags=body.tags,
        declared_at=body.declared_at or datetime.now(UTC),
        tolerance={str(k): v for k, v in body.tolerance.items()},
    )
    await lots.reconcile_lot(conn, lot_id, datetime.now(UTC))


@router.post("/lots/{lot_id}/integrity/figures", status_code=status.HTTP_204_NO_CONTENT)
async def record_figure(lot_id: str, body: FigureIn, conn: DbConn, principal: Manager) -> None:
    await lots.record_figure(
        conn, principal, lot_id, Figure(Source(body.source), body.value, body.observed_at))
    # Recomputed as the fact arrives, not only on the next periodic pass.
    await lots.reconcile_lot(conn, lot_id, datetime.now(UTC))


@router.get("/lots/{lot_id}/integrity")
async def lot_panel(lot_id: str, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every source's figure, time and state against the receipt: the map's lot panel."""
    return await lots.panel(conn, principal, lot_id, datetime.now(UTC))
