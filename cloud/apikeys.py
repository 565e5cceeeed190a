"""API keys: ``pw_<id>_<secret>``; only a hash of the secret is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from psycopg import AsyncConnection, Connection

ROLES = ("admin", "supervisor", "financier", "gateway")


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: str
    operator_id: str | None
    financier_id: str | None
    gateway_id: str | None


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_key(
    conn: Connection,
    role: str,
    *,
    operator_id: str | None = None,
    financier_id: str | None = None,
    gateway_id: str | None = None,
    label: str = "",
) -> str:
    """Make a key and return it whole (the only time the secret is visible)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    conn.execute(
        "INSERT INTO api_keys (id, secret_hash, role, operator_id, financier_id, gateway_id, "
        "label) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (key_id, _hash(secret), role, operator_id, financier_id, gateway_id, label),
    )
    return f"pw_{key_id}_{secret}"


async def authenticate(conn: AsyncConnection, token: str) -> Principal | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "pw":
        return None
    key_id, secret = parts[1], parts[2]
    cur = await conn.execute(
        "SELECT secret_hash, role, operator_id, financier_id, gateway_id FROM api_keys "
        "WHERE id = %s AND revoked_at IS NULL",
        (key_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    stored = row["secret_hash"] if isinstance(row, dict) else row[0]
    values = list(row.values()) if isinstance(row, dict) else list(row)
    if not hmac.compare_digest(bytes(stored), _hash(secret)):
        return None
    return Principal(key_id, values[1], values[2], values[3], values[4])


async def is_active(conn: AsyncConnection, key_id: str) -> bool:
    """Whether the key still exists unrevoked (long-lived sessions ask again and again)."""
    cur = await conn.execute(
        "SELECT 1 FROM api_keys WHERE id = %s AND revoked_at IS NULL", (key_id,))
    return await cur.fetchone() is not None


async def revoke(conn: AsyncConnection, key_id: str) -> bool:
    """Revoke a key for good; False when there is no such unrevoked key."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
        "RETURNING id", (key_id,))
    return await cur.fetchone() is not None
