"""The public half of the cloud's command key: what a gateway installs as its ``cloud.pub``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cloud.api.deps import DbConn, Manager
from cloud.command_key import aload_command_key
from contract import public_key_b64

router = APIRouter(prefix="/api/v1/command-key", tags=["gateways"])


class CommandKeyOut(BaseModel):
    public_key: str  # base64 of the 32-byte Ed25519 public key


@router.get("")
async def get_command_key(conn: DbConn, principal: Manager) -> CommandKeyOut:
    """Every cmd/ message to a gateway is signed with this key's private half."""
    return CommandKeyOut(public_key=public_key_b64(await aload_command_key(conn)))
