"""The API's routers, one per resource. Add yours to ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import (
    alerts,
    apikeys,
    command_key,
    devices,
    evidence,
    exports,
    gateways,
    health,
    incidents,
    integrity,
    lots,
    receipts,
    rules,
    search,
    sites,
    telemetry,
    trackers,
    webhooks,
)
from cloud.api.routes import live as live_routes
from cloud.api.routes import map as map_routes

ROUTERS: list[APIRouter] = [
    health.router,
    sites.router,
    gateways.router,
    lots.router,
    alerts.router,
    evidence.router,
    telemetry.router,
    receipts.router,
    rules.router,
    webhooks.router,
    map_routes.router,
    live_routes.router,
    trackers.router,
    apikeys.router,
    command_key.router,
    integrity.router,
    # the supervisor's console (docs/console.md)
    search.router,
    exports.router,
    devices.router,
    incidents.router,
]
