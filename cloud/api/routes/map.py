"""The supervisor's live map: the page, its assets (Leaflet served locally), and the state,
lot panel and alert evidence it reads. Live changes come over /api/v1/live (routes/live.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import FileResponse

from cloud import map_state
from cloud.api.deps import AppSettings, CurrentPrincipal, DbConn
from decisions.alert_text import catalogue

WEB = Path(__file__).resolve().parent.parent.parent / "web"
LEAFLET = WEB / "node_modules" / "leaflet" / "dist"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
                ".svg": "image/svg+xml", ".html": "text/html"}

router = APIRouter(tags=["map"])


def _asset(base: Path, name: str) -> FileResponse:
    path = (base / name).resolve()
    if not path.is_relative_to(base.resolve()) or path.suffix not in _ASSET_TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name!r}")
    if not path.is_file():
        if base == LEAFLET:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                "Leaflet is not installed: run `npm ci --prefix cloud/web`")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name!r}")
    return FileResponse(path, media_type=_ASSET_TYPES[path.suffix],
                        headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
@router.get("/map", include_in_schema=False)
async def page() -> FileResponse:
    return _asset(WEB, "index.html")


@router.get("/map/assets/messages.js", include_in_schema=False)
async def messages() -> Response:
    """The alert text catalogue (decisions/alert_text.py) for i18n.js: one source for both."""
    data = json.dumps(catalogue(), ensure_ascii=False)
    body = f"\"use strict\";\nconst PW_MESSAGES = {data};\n"
    return Response(body, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


@router.get("/map/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    return _asset(WEB, name)


@router.get("/map/vendor/leaflet/{name:path}", include_in_schema=False)
async def leaflet(name: str) -> FileResponse:
    return _asset(LEAFLET, name)


@router.get("/api/v1/map/state")
async def state(conn: DbConn, principal: CurrentPrincipal, settings: AppSettings
                ) -> dict[str, Any]:
    """Everything the map draws, as of ``cursor``; apply /api/v1/live events after it."""
    return await map_state.map_state(conn, principal, settings.map_tile_url)


@router.get("/api/v1/map/trackers")
async def trackers(conn: DbConn, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Latest fix per tracker; the page itself gets them live, this is for pollers."""
    return await map_state.tracker_positions(conn, principal)


@router.get("/api/v1/map/lots/{lot_id}")
async def lot_panel(lot_id: str, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    return await map_state.lot_panel(conn, principal, lot_id)


@router.get("/api/v1/map/alerts/{alert_id}/evidence")
async def alert_evidence(alert_id: int, conn: DbConn, principal: CurrentPrincipal
                         ) -> dict[str, Any]:
    return await map_state.alert_evidence(conn, principal, alert_id)


@router.get("/api/v1/map/images/{sha256}")
async def image(sha256: str, conn: DbConn, principal: CurrentPrincipal) -> Response:
    if not _SHA256.match(sha256):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "not a lower-case SHA-256")
    data = await map_state.evidence_image(conn, principal, sha256)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=86400, immutable"})
