"""/docs: Swagger UI from the npm registry's copy (cloud/web/node_modules), like Leaflet, so the
OpenAPI page works on a warehouse network with no way out."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

SWAGGER_UI = (Path(__file__).resolve().parent.parent / "web" / "node_modules"
              / "swagger-ui-dist")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="Pledgewatch · API",
        swagger_js_url="/docs/vendor/swagger-ui-bundle.js",
        swagger_css_url="/docs/vendor/swagger-ui.css",
        swagger_favicon_url="/docs/vendor/favicon-32x32.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
    )


@docs_router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@docs_router.get("/docs/vendor/{name}")
async def swagger_ui_asset(name: str) -> FileResponse:
    path = (SWAGGER_UI / name).resolve()
    if not path.is_relative_to(SWAGGER_UI.resolve()) or path.suffix not in _TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name!r}")
    if not path.is_file():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "Swagger UI is not installed: run `npm ci --prefix cloud/web`")
    return FileResponse(path, media_type=_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=86400"})
