"""The API's routers, one per resource. Add yours to ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import (
    alerts,
    gateways,
    health,
    lots,
    receipts,
    rules,
    sites,
    telemetry,
    webhooks,
)

ROUTERS: list[APIRouter] = [
    health.router,
    sites.router,
    gateways.router,
    lots.router,
    alerts.router,
    telemetry.router,
    receipts.router,
    rules.router,
    webhooks.router,
]
