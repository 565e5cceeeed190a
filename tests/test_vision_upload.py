"""Evidence upload by content hash: against a real HTTP server speaking the route's contract,
and the evidence table in a real, migrated PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import psycopg
import pytest

from edge.vision.evidence import EvidenceStore
from edge.vision.upload import EvidenceUploader, UploadStopped


class CloudStandIn:
    """The route as the cloud hosts it: PUT /api/v1/evidence/{sha256}, hash checked."""

    def __init__(self, token: str) -> None:
        self.stored: dict[str, bytes] = {}
        self.refuse_with: int | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sha = self.path.rsplit("/", 1)[-1]
                if self.headers.get("Authorization") != f"Bearer {token}":
                    status = 401
                elif outer.refuse_with is not None:
                    status = outer.refuse_with
                elif not self.path.startswith("/api/v1/evidence/"):
                    status = 404
                elif hashlib.sha256(body).hexdigest() != sha:
                    status = 422
                else:
                    status = 200 if sha in outer.stored else 201
                    outer.stored[sha] = body
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloud() -> Iterator[CloudStandIn]:
    server = CloudStandIn("pw_gw_secret")
    yield server
    server.close()


def _images(store: EvidenceStore, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [store.put_image(rng.integers(0, 255, (30, 90, 3), dtype=np.uint8), "plate_crop").sha256
            for _ in range(n)]


async def test_uploaded_images_are_forgotten_locally(tmp_path: Path, cloud: CloudStandIn) -> None:
    store = EvidenceStore(tmp_path)
    shas = _images(store, 3)
    uploader = EvidenceUploader(store, base_url=cloud.url, api_key="pw_gw_secret")
    assert await uploader.upload_pending() == 3
    assert sorted(cloud.stored) == sorted(shas)
    assert all(hashlib.sha256(cloud.stored[s]).hexdigest() == s for s in shas)
    assert list(store.pending()) == []


async def test_a_damaged_file_is_set_aside_and_the_rest_still_goes(
    tmp_path: Path, cloud: CloudStandIn
) -> None:
    store = EvidenceStore(tmp_path)
    good, bad = _images(store, 2)
    store.path_of(bad).write_bytes(b"bit rot")  # no longer hashes to its name
    uploader = EvidenceUploader(store, base_url=cloud.url, api_key="pw_gw_secret")
    assert await uploader.upload_pending() == 1
    assert list(cloud.stored) == [good]
    assert (tmp_path / "rejected" / f"{bad}.jpg").exists()
    assert list(store.pending()) == []


async def test_refusals_and_outages_keep_the_images(tmp_path: Path, cloud: CloudStandIn) -> None:
    store = EvidenceStore(tmp_path)
    _images(store, 2)
    wrong_key = EvidenceUploader(store, base_url=cloud.url, api_key="pw_other")
    with pytest.raises(UploadStopped, match="401"):
        await wrong_key.upload_pending()
    cloud.refuse_with = 503
    uploader = EvidenceUploader(store, base_url=cloud.url, api_key="pw_gw_secret")
    with pytest.raises(UploadStopped, match="503"):
        await uploader.upload_pending()
    cloud.close()
    with pytest.raises(UploadStopped, match="failed"):
        await uploader.upload_pending()
    assert len(list(store.pending())) == 2


def test_evidence_table_accepts_images_by_hash_only(database_url: str) -> None:
    data = b"\xff\xd8\xff\xe0 jpeg bytes"
    sha = hashlib.sha256(data).hexdigest()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO operators VALUES ('op-1', 'Operator 1')")
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('s1', 'op-1', 'S1')")
        conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES ('gw-1', 's1', 'k')")
        conn.execute("INSERT INTO evidence_images (sha256, gateway_id, content_type, bytes, data)"
                     " VALUES (%s, 'gw-1', 'image/jpeg', %s, %s)", (sha, len(data), data))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO evidence_images (sha256, gateway_id, content_type, bytes,"
                         " data) VALUES ('NOT-A-HASH', 'gw-1', 'image/jpeg', 1, 'x')")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO evidence_images (sha256, gateway_id, content_type, bytes,"
                         " data) VALUES (%s, 'gw-1', 'image/jpeg', 99, %s)", ("a" * 64, data))
        stored = conn.execute("SELECT data FROM evidence_images WHERE sha256 = %s",
                              (sha,)).fetchone()
    assert stored is not None and bytes(stored[0]) == data


async def test_running_uploader_waits_out_a_refusing_cloud_then_hands_everything_over(
    tmp_path: Path, cloud: CloudStandIn
) -> None:
    import asyncio

    store = EvidenceStore(tmp_path)
    shas = _images(store, 2)
    cloud.refuse_with = 503
    uploader = EvidenceUploader(store, base_url=cloud.url, api_key="pw_gw_secret",
                                interval_s=0.02)
    task = asyncio.create_task(uploader.run())
    try:
        await asyncio.sleep(0.1)
        assert not task.done() and cloud.stored == {}  # refused: kept, retried, still running
        cloud.refuse_with = None
        for _ in range(500):  # the backoff is still short: a few tenths of a second
            if len(cloud.stored) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(cloud.stored) == sorted(shas)
    assert list(store.pending()) == []
