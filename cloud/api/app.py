"""The FastAPI application: wiring only (routers, pool, error mapping, metrics)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram

from cloud.api.routes import ROUTERS
from cloud.db import open_pool
from cloud.registry import Conflict, NotFound
from cloud.settings import Settings, load_settings

# Every request body is counted as it arrives (declared or chunked) and refused with 413 past
# this; routes that need more say so with their own ``max_body_size`` (lots, evidence).
MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = open_pool(settings.database_url)
        await pool.open()
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Pledgewatch",
        version="0.1.0",
        description="Pledged goods under watch: sites, gateways, lots, presence, alerts.",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.settings = settings
    registry = CollectorRegistry()
    app.state.metrics = registry
    requests = Counter("pw_api_requests", "HTTP requests", ["route", "status"], registry=registry)
    latency = Histogram("pw_api_request_seconds", "HTTP latency", ["route"], registry=registry)

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        requests.labels(name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(NotFound)
    async def not_found(_: Request, err: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, err: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=status.HTTP_409_CONFLICT)

    for router in ROUTERS:
        app.include_router(router)
    return app
