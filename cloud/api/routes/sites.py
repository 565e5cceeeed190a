"""Operators, financiers and sites."""

from __future__ import annotations

from fastapi import APIRouter, status

from cloud import registry
from cloud.api.deps import Admin, CurrentPrincipal, DbConn
from cloud.api.schemas import FinancierCreate, OperatorCreate, SiteCreate, SiteOut

router = APIRouter(prefix="/api/v1", tags=["sites"])


@router.post("/operators", status_code=status.HTTP_201_CREATED)
async def create_operator(body: OperatorCreate, conn: DbConn, _: Admin) -> OperatorCreate:
    await registry.create_operator(conn, body.id, body.name)
    return body


@router.post("/financiers", status_code=status.HTTP_201_CREATED)
async def create_financier(body: FinancierCreate, conn: DbConn, _: Admin) -> FinancierCreate:
    await registry.create_financier(conn, body.id, body.name)
    return body


@router.post("/sites", status_code=status.HTTP_201_CREATED)
async def create_site(body: SiteCreate, conn: DbConn, _: Admin) -> SiteOut:
    row = await registry.create_site(conn, body.id, body.operator_id, body.name, body.timezone)
    return SiteOut.model_validate(row)


@router.get("/sites")
async def list_sites(conn: DbConn, principal: CurrentPrincipal) -> list[SiteOut]:
    return [SiteOut.model_validate(r) for r in await registry.list_sites(conn, principal)]


@router.get("/sites/{site_id}")
async def get_site(site_id: str, conn: DbConn, principal: CurrentPrincipal) -> SiteOut:
    return SiteOut.model_validate(await registry.get_site(conn, principal, site_id))
