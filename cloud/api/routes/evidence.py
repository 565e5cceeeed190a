"""Gateways upload the images their events reference (viewing is under /api/v1/map/images)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from cloud import evidence
from cloud.api.deps import DbConn, require_roles
from cloud.apikeys import Principal

router = APIRouter(prefix="/api/v1/evidence", tags=["evidence"])

Gateway = Annotated[Principal, Depends(require_roles("gateway"))]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the JPEG")]


@router.put("/{sha256}", status_code=status.HTTP_201_CREATED,
            responses={200: {"description": "already stored"}},
            max_body_size=evidence.MAX_IMAGE_BYTES)
async def upload(sha256: Sha256, request: Request, conn: DbConn, gateway: Gateway) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "image/jpeg":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send Content-Type: image/jpeg")
    # The route's max_body_size refuses a larger body on its first read; the bytes are streamed,
    # counted and hashed here, never buffered past the cap.
    assert gateway.gateway_id is not None  # the gateway role always names its gateway
    try:
        data = await evidence.receive_image(sha256, request.stream())
        new = await evidence.store_image(conn, sha256, data, gateway.gateway_id)
    except evidence.EvidenceTooLarge as err:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(err)) from None
    except evidence.EvidenceRefused as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    return Response(status_code=status.HTTP_201_CREATED if new else status.HTTP_200_OK)
