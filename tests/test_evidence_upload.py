"""Gateways upload evidence images by hash; the real uploader against the real API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import psycopg
import pytest

from cloud.apikeys import create_key
from edge.vision.evidence import EvidenceStore
from edge.vision.upload import EvidenceUploader

pytestmark = pytest.mark.integration


def _jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture
def gateway_key(database_url: str, register_gateway, api_keys) -> str:  # type: ignore[no-untyped-def]
    gw = register_gateway()
    with psycopg.connect(database_url, autocommit=True) as conn:
        return create_key(conn, "gateway", gateway_id=gw.gateway)


async def test_upload_is_stored_once_and_checked_against_its_hash(
    api_client: httpx.AsyncClient, gateway_key: str, api_keys: dict[str, str], database_url: str
) -> None:
    data = _jpeg(1)
    sha = hashlib.sha256(data).hexdigest()
    headers = {"Authorization": f"Bearer {gateway_key}", "Content-Type": "image/jpeg"}
    first = await api_client.put(f"/api/v1/evidence/{sha}", content=data, headers=headers)
    again = await api_client.put(f"/api/v1/evidence/{sha}", content=data, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    other = hashlib.sha256(b"x").hexdigest()
    wrong = await api_client.put(f"/api/v1/evidence/{other}", content=data, headers=headers)
    assert wrong.status_code == 422 and "hashes to" in wrong.json()["detail"]
    not_jpeg = await api_client.put(f"/api/v1/evidence/{other}", content=b"x", headers=headers)
    assert not_jpeg.status_code == 422 and "JPEG" in not_jpeg.json()["detail"]
    supervisor = {**headers, "Authorization": f"Bearer {api_keys['supervisor']}"}
    denied = await api_client.put(f"/api/v1/evidence/{sha}", content=data, headers=supervisor)
    assert denied.status_code == 403
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT gateway_id, bytes, data FROM evidence_images").fetchall()
    assert stored == [("gw-1", len(data), data)]


async def test_the_gateways_uploader_hands_over_and_forgets(
    api_client: httpx.AsyncClient, gateway_key: str, database_url: str, tmp_path: Path
) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    images = [np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
              for seed in range(3)]
    refs = [store.put_image(image, "plate_crop").sha256 for image in images]
    client = httpx.AsyncClient(transport=api_client._transport, base_url="http://api",
                               headers={"Authorization": f"Bearer {gateway_key}"})
    uploader = EvidenceUploader(store, base_url="http://api", api_key=gateway_key, client=client)
    assert await uploader.upload_pending() == 3
    assert list(store.pending()) == []
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM evidence_images").fetchone()[0]
    assert count == len(set(refs)) == 3
