"""The FastAPI application: wiring only (routers, pool, error mapping, metrics)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram

from cloud.api.alert_sound import sound_router
from cloud.api.docs import docs_router
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
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: blank without internet.
        # /docs is served below from the npm copy instead; ReDoc is not offered.
        docs_url=None,
        redoc_url=None,
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

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each input back and fails (500) on NaN or infinity.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(err.errors()))},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    # What PostgreSQL refuses in a client's values is the client's error, never a 500; the
    # request's transaction has already been rolled back when these run.
    @app.exception_handler(psycopg.errors.UniqueViolation)
    async def duplicate(_: Request, err: psycopg.errors.UniqueViolation) -> JSONResponse:
        return JSONResponse({"detail": f"already exists: {_detail(err)}"},
                            status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(psycopg.IntegrityError)
    async def inconsistent(_: Request, err: psycopg.IntegrityError) -> JSONResponse:
        return JSONResponse({"detail": f"refused by a database rule: {_detail(err)}"},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(psycopg.DataError)
    async def unstorable(_: Request, err: psycopg.DataError) -> JSONResponse:
        # NUL characters, numbers out of a column's range, malformed values in a cast.
        return JSONResponse({"detail": f"a value cannot be stored: {_detail(err)}"},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    for router in ROUTERS:
        app.include_router(router)
    app.include_router(docs_router)
    app.include_router(sound_router)
    app.openapi = lambda: _declare_refusals(app)  # type: ignore[method-assign]
    return app


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _detail(err: psycopg.Error) -> str:
    # The primary message only: no SQL, no parameters echoed back.
    return err.diag.message_primary or str(err).splitlines()[0]


def _declare_refusals(app: FastAPI) -> dict[str, Any]:
    """The schema FastAPI derives, plus what a handler's own 422 looks like: besides FastAPI's
    field-by-field HTTPValidationError, a refusal of the whole request with a message."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["Refusal"] = {
        "title": "Refusal", "type": "object", "required": ["detail"],
        "properties": {"detail": {"title": "Detail", "type": "string"}},
    }
    refusal = {"$ref": "#/components/schemas/Refusal"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422")
            if invalid is not None:
                body = invalid.setdefault("content", {}).setdefault("application/json", {})
                body["schema"] = {"anyOf": [body["schema"], refusal]} if "schema" in body \
                    else refusal
    app.openapi_schema = schema
    return schema
