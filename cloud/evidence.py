"""Evidence images (plate crops, frames, label crops) uploaded by gateways, stored by hash.

Events carry only a reference (sha256, size) inside their signed bodies, so the signature pins
the picture; an upload is accepted only if its bytes hash to the id it is sent under.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable

from psycopg import AsyncConnection

MAX_IMAGE_BYTES = 2 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"


class EvidenceRefused(ValueError):
    """The upload is not what its id claims (wrong hash, not a JPEG, too large)."""


class EvidenceTooLarge(EvidenceRefused):
    """The upload passed the size cap (it was not read further)."""


def check_image(sha256: str, data: bytes) -> None:
    if not data:
        raise EvidenceRefused("empty body")
    if len(data) > MAX_IMAGE_BYTES:
        raise EvidenceRefused(f"{len(data)} bytes exceeds the {MAX_IMAGE_BYTES}-byte limit")
    if not data.startswith(JPEG_MAGIC):
        raise EvidenceRefused("not a JPEG image")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise EvidenceRefused(f"body hashes to {actual}, not {sha256}")


async def receive_image(sha256: str, chunks: AsyncIterable[bytes]) -> bytes:
    """Read an upload as it streams: refused the moment it passes the cap, hashed on the way."""
    digest, parts, size = hashlib.sha256(), bytearray(), 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise EvidenceTooLarge(f"more than the {MAX_IMAGE_BYTES}-byte limit")
        digest.update(chunk)
        parts += chunk
    data = bytes(parts)
    if not data:
        raise EvidenceRefused("empty body")
    if not data.startswith(JPEG_MAGIC):
        raise EvidenceRefused("not a JPEG image")
    if digest.hexdigest() != sha256:
        raise EvidenceRefused(f"body hashes to {digest.hexdigest()}, not {sha256}")
    return data


async def store_image(conn: AsyncConnection, sha256: str, data: bytes, gateway_id: str) -> bool:
    """Store once; returns True when it was new. Raises EvidenceRefused for bad uploads."""
    check_image(sha256, data)
    cur = await conn.execute(
        "INSERT INTO evidence_images (sha256, gateway_id, content_type, bytes, data) "
        "VALUES (%s, %s, 'image/jpeg', %s, %s) ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
        (sha256, gateway_id, len(data), data),
    )
    return await cur.fetchone() is not None
