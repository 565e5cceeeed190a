"""Gateways: registration with their public key, revocation, last seen, online state."""

from __future__ import annotations

from fastapi import APIRouter, status

from cloud import registry
from cloud.api.deps import CurrentPrincipal, DbConn, Manager
from cloud.api.schemas import GatewayOut, GatewayRegister

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def register_gateway(body: GatewayRegister, conn: DbConn, principal: Manager) -> GatewayOut:
    # A supervisor registers gateways only at their own operator's sites (else NotFound: 404).
    await registry.get_site(conn, principal, body.site_id)
    row = await registry.register_gateway(
        conn, body.id, body.site_id, body.public_key, body.mqtt_username
    )
    return GatewayOut.model_validate(row)


@router.get("")
async def list_gateways(conn: DbConn, principal: CurrentPrincipal) -> list[GatewayOut]:
    return [GatewayOut.model_validate(r) for r in await registry.list_gateways(conn, principal)]


@router.get("/{gateway_id}")
async def get_gateway(gateway_id: str, conn: DbConn, principal: CurrentPrincipal) -> GatewayOut:
    return GatewayOut.model_validate(await registry.get_gateway(conn, principal, gateway_id))


@router.post("/{gateway_id}/revoke")
async def revoke_gateway(gateway_id: str, conn: DbConn, principal: Manager) -> GatewayOut:
    """From now on every message of this gateway is dead-lettered, by every ingest process;
    registering a new key brings it back."""
    return GatewayOut.model_validate(await registry.revoke_gateway(conn, principal, gateway_id))
