"""What schemathesis found making 5xx on main: each now a 4xx with a message (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import public_key_b64
from tests.receipts_fixtures import auth, operator_key

__all__ = ["operator_key"]  # a fixture used by name
pytestmark = pytest.mark.integration


def _gateway(gateway_id: str, mqtt_username: str | None) -> dict[str, Any]:
    return {"id": gateway_id, "site_id": "site-1", "mqtt_username": mqtt_username,
            "public_key": public_key_b64(Ed25519PrivateKey.generate())}


async def test_naive_and_out_of_range_times_are_422(
    api_client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    for query in ("from=2026-01-01T00:00:00", "to=2026-01-01T00:00:00",
                  "from=0001-01-01T00:00:00Z", "from=9999-12-31T23:59:59Z"):
        r = await api_client.get(f"/api/v1/telemetry/lots/L1/counts?{query}",
                                 headers=auth(api_keys["admin"]))
        assert r.status_code == 422, (query, r.text)
    since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    ok = await api_client.get("/api/v1/telemetry/lots/L1/counts", params={"from": since},
                              headers=auth(api_keys["admin"]))
    assert ok.status_code in (200, 404), ok.text


async def test_nul_characters_are_422_wherever_they_come_in(
    api_client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    admin = auth(api_keys["admin"])
    r = await api_client.post("/api/v1/operators", json={"id": "op-9", "name": "a\u0000b"},
                              headers=admin)
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    r = await api_client.post("/api/v1/lots", headers=admin, json={
        "id": "LOT-9", "site_id": "site-1", "name": "x", "depositor": "\u0000"})
    assert r.status_code == 422
    r = await api_client.get("/api/v1/sites/site%00-1", headers=admin)
    assert 400 <= r.status_code < 500


async def test_numbers_beyond_what_is_sensible_are_422(
    api_client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    r = await api_client.post("/api/v1/lots", headers=auth(api_keys["admin"]), json={
        "id": "LOT-9", "site_id": "site-1", "name": "x", "absence_window_s": 1.7e308})
    assert r.status_code == 422
    r = await api_client.post(
        "/api/v1/lots", headers={**auth(api_keys["admin"]), "content-type": "application/json"},
        content=b'{"id": "LOT-9", "site_id": "site-1", "name": "x", "absence_window_s": NaN}')
    assert r.status_code == 422


async def test_null_for_a_kept_value_is_422_and_changes_nothing(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], operator_key: Any
) -> None:
    admin = auth(api_keys["admin"])
    made = await api_client.post("/api/v1/lots", headers=admin, json={
        "id": "LOT-9", "site_id": "site-1", "name": "x", "depositor": "Acme"})
    assert made.status_code == 201, made.text
    r = await api_client.put("/api/v1/lots/LOT-9/details", headers=admin,
                             json={"depositor": None})
    assert r.status_code == 422 and "depositor" in r.text
    r = await api_client.put("/api/v1/lots/LOT-9/details", headers=admin,
                             json={"quantity": "1e30"})
    assert r.status_code == 422
    lot = await api_client.get("/api/v1/lots/LOT-9", headers=admin)
    assert lot.json()["depositor"] == "Acme"


async def test_a_taken_mqtt_username_is_409(
    api_client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    admin = auth(api_keys["admin"])
    first = await api_client.post("/api/v1/gateways", json=_gateway("gw-a", "shared-user"),
                                  headers=admin)
    assert first.status_code == 201, first.text
    second = await api_client.post("/api/v1/gateways", json=_gateway("gw-b", "shared-user"),
                                   headers=admin)
    assert second.status_code == 409 and "already exists" in second.json()["detail"]
