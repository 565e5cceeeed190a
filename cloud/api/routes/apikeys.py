"""API keys: an administrator revokes one; its open live sockets close within seconds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from cloud import apikeys
from cloud.api.deps import Admin, DbConn

router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$", description="the key's public id")]


@router.post("/{key_id}/revoke", status_code=status.HTTP_204_NO_CONTENT,
             responses={404: {"description": "no such unrevoked key"}})
async def revoke_key(key_id: KeyId, conn: DbConn, _: Admin) -> None:
    if not await apikeys.revoke(conn, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unrevoked API key {key_id!r}")
