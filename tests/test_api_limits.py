"""Oversize request bodies are refused (413) before they are buffered, sized or chunked."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest

from cloud.api.app import MAX_BODY_BYTES as DEFAULT_MAX_BODY
from cloud.apikeys import create_key
from cloud.evidence import MAX_IMAGE_BYTES
from tests.conftest import free_port
from tests.map_fixtures import running_api

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


class Trickle:
    """A chunked body of ``total`` bytes that counts how much the server actually pulled."""

    def __init__(self, total: int, head: bytes = b"") -> None:
        self.total, self.head, self.sent = total, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            self.sent += len(self.head)
            yield self.head
        while self.sent < self.total:
            self.sent += CHUNK
            yield b" " * CHUNK


async def test_a_chunked_100_mb_json_post_is_refused_after_the_limit_not_buffered(
    api_client: httpx.AsyncClient,
) -> None:
    body = Trickle(100 * 1024 * 1024, head=b'{"id": "')
    response = await api_client.post("/api/v1/operators", content=body,
                                     headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == "Content Too Large"
    # The server stopped reading one chunk past the limit; 100 MB were never pulled.
    assert body.sent <= DEFAULT_MAX_BODY + 2 * CHUNK


async def test_a_declared_oversize_length_is_answered_before_any_body_is_sent(
    database_url: str, api_keys: dict[str, str],
) -> None:
    async with running_api(database_url, free_port()) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/v1/operators HTTP/1.1\r\nHost: api\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
        await writer.drain()
        # Not one body byte was sent: the answer can only come from the declared length.
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


@pytest.fixture
def gateway_key(database_url: str, register_gateway, api_keys) -> str:  # type: ignore[no-untyped-def]
    gw = register_gateway()
    with psycopg.connect(database_url, autocommit=True) as conn:
        return create_key(conn, "gateway", gateway_id=gw.gateway)


async def test_a_chunked_evidence_upload_is_capped_while_streaming(
    api_client: httpx.AsyncClient, gateway_key: str, database_url: str
) -> None:
    headers = {"Authorization": f"Bearer {gateway_key}", "Content-Type": "image/jpeg"}
    body = Trickle(120 * 1024 * 1024, head=b"\xff\xd8\xff")
    sha = hashlib.sha256(b"anything").hexdigest()
    response = await api_client.put(f"/api/v1/evidence/{sha}", content=body, headers=headers)
    assert response.status_code == 413
    assert body.sent <= MAX_IMAGE_BYTES + 2 * CHUNK
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM evidence_images").fetchone() == (0,)


async def test_a_chunked_evidence_upload_within_the_cap_is_hashed_and_stored(
    api_client: httpx.AsyncClient, gateway_key: str, database_url: str
) -> None:
    data = b"\xff\xd8\xff" + bytes(range(256)) * 4000  # ~1 MB, in many chunks

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(data), CHUNK):
            yield data[at:at + CHUNK]

    headers = {"Authorization": f"Bearer {gateway_key}", "Content-Type": "image/jpeg"}
    sha = hashlib.sha256(data).hexdigest()
    response = await api_client.put(f"/api/v1/evidence/{sha}", content=chunks(), headers=headers)
    assert response.status_code == 201
    wrong = await api_client.put(f"/api/v1/evidence/{'0' * 64}", content=chunks(), headers=headers)
    assert wrong.status_code == 422 and "hashes to" in wrong.json()["detail"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT bytes FROM evidence_images").fetchall() == [(len(data),)]
