"""Liveness, readiness (database and broker reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ops import timeouts

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _broker_reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        _, writer = await timeouts.wait_for(
            asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 1883), 2
        )
    except (OSError, TimeoutError) as err:
        return f"{type(err).__name__}: {err}"
    writer.close()
    return None


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with request.app.state.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as err:  # noqa: BLE001 - any failure means "not ready", reported as such
        checks["database"] = f"{type(err).__name__}: {err}"
    problem = await _broker_reachable(request.app.state.settings.mqtt_url)
    checks["broker"] = problem or "ok"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
