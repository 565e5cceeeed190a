"""The API's access rules and input errors, against the real app and a real database."""

from __future__ import annotations

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.integration

LOT_A = {"id": "LOT-A", "site_id": "site-1", "name": "Copper A", "pieces": 2,
         "financier_id": "bank-a", "epcs": ["3034257BF7194E4000000001", "3034257BF7194E4000000002"]}
LOT_B = {"id": "LOT-B", "site_id": "site-1", "name": "Copper B", "pieces": 1,
         "financier_id": "bank-b", "epcs": ["3034257BF7194E4000000003"]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def lots(api_client: httpx.AsyncClient, api_keys: dict[str, str]) -> None:
    for lot in (LOT_A, LOT_B):
        response = await api_client.post("/api/v1/lots", json=lot, headers=auth(api_keys["admin"]))
        assert response.status_code == 201, response.text


async def test_requests_without_a_valid_key_are_refused(api_client: httpx.AsyncClient) -> None:
    assert (await api_client.get("/api/v1/lots")).status_code == 401
    bad = await api_client.get("/api/v1/lots", headers=auth("pw_nothere_secret"))
    assert bad.status_code == 401
    assert "unknown or revoked" in bad.json()["detail"]


async def test_a_financier_sees_only_the_lots_pledged_to_them(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], lots: None
) -> None:
    mine = await api_client.get("/api/v1/lots", headers=auth(api_keys["bank-a"]))
    assert [lot["id"] for lot in mine.json()] == ["LOT-A"]
    for path in ("/api/v1/lots/LOT-B", "/api/v1/lots/LOT-B/tags",
                 "/api/v1/telemetry/lots/LOT-B/counts"):
        denied = await api_client.get(path, headers=auth(api_keys["bank-a"]))
        assert denied.status_code == 404, path  # not even whether it exists
    theirs = await api_client.get("/api/v1/lots/LOT-B", headers=auth(api_keys["bank-b"]))
    assert theirs.status_code == 200
    tags = await api_client.get("/api/v1/lots/LOT-A/tags", headers=auth(api_keys["bank-a"]))
    assert tags.json()["expected"] == 2 and tags.json()["unknown"] == 2


async def test_supervisors_see_their_operators_sites_only(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], lots: None
) -> None:
    own = await api_client.get("/api/v1/lots", headers=auth(api_keys["supervisor"]))
    assert [lot["id"] for lot in own.json()] == ["LOT-A", "LOT-B"]
    other = auth(api_keys["supervisor-2"])
    assert (await api_client.get("/api/v1/lots", headers=other)).json() == []
    assert (await api_client.get("/api/v1/lots/LOT-A", headers=other)).status_code == 404
    sites = await api_client.get("/api/v1/sites", headers=other)
    assert [s["id"] for s in sites.json()] == ["site-2"]
    lot_elsewhere = {**LOT_A, "id": "LOT-C", "epcs": []}
    refused = await api_client.post("/api/v1/lots", json=lot_elsewhere, headers=other)
    assert refused.status_code == 404  # site-1 is not theirs


async def test_financiers_cannot_create_or_act(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], lots: None
) -> None:
    response = await api_client.post("/api/v1/lots", json={**LOT_A, "id": "LOT-Z", "epcs": []},
                                     headers=auth(api_keys["bank-a"]))
    assert response.status_code == 403
    assert "financier" in response.json()["detail"]


async def test_bad_input_gets_a_4xx_that_says_what_is_wrong(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], lots: None
) -> None:
    admin = auth(api_keys["admin"])
    bad_epc = await api_client.post("/api/v1/lots", headers=admin,
                                    json={**LOT_A, "id": "LOT-X", "epcs": ["XYZ"]})
    assert bad_epc.status_code == 422
    assert "EPC 'XYZ'" in bad_epc.text
    again = await api_client.post("/api/v1/lots", json=LOT_A, headers=admin)
    assert again.status_code == 409
    bad_id = await api_client.post("/api/v1/lots", headers=admin,
                                   json={**LOT_A, "id": "lot/../x", "epcs": []})
    assert bad_id.status_code == 422
    bad_key = await api_client.post("/api/v1/gateways", headers=admin,
                                    json={"id": "gw-9", "site_id": "site-1", "public_key": "abc"})
    assert bad_key.status_code == 422
    assert "public key" in bad_key.text
    window = await api_client.get("/api/v1/telemetry/lots/LOT-A/counts?bucket_s=0", headers=admin)
    assert window.status_code == 422


async def test_alert_lifecycle_and_visibility(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], lots: None, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for lot in ("LOT-A", "LOT-B"):
            conn.execute(
                "INSERT INTO alerts (alert_type, subject, severity, site_id, lot_id, explanation,"
                " first_seen_at, last_seen_at) VALUES ('theft.tag_missing', %s, 'critical',"
                " 'site-1', %s, 'tags gone', now(), now())", (f"lot:{lot}", lot))
    seen_by_a = await api_client.get("/api/v1/alerts", headers=auth(api_keys["bank-a"]))
    assert [a["lot_id"] for a in seen_by_a.json()] == ["LOT-A"]
    alert_b = next(a for a in (await api_client.get(
        "/api/v1/alerts", headers=auth(api_keys["supervisor"]))).json() if a["lot_id"] == "LOT-B")
    assert (await api_client.get(f"/api/v1/alerts/{alert_b['id']}",
                                 headers=auth(api_keys["bank-a"]))).status_code == 404
    path = f"/api/v1/alerts/{alert_b['id']}/acknowledge"
    assert (await api_client.post(path, headers=auth(api_keys["bank-b"]))).status_code == 403
    acked = await api_client.post(path, json={"comment": "guard sent"},
                                  headers=auth(api_keys["supervisor"]))
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    assert (await api_client.post(path, headers=auth(api_keys["supervisor"]))).status_code == 409
    detail = await api_client.get(f"/api/v1/alerts/{alert_b['id']}",
                                  headers=auth(api_keys["supervisor"]))
    step = detail.json()["history"][-1]
    assert step["action"] == "acknowledged" and step["comment"] == "guard sent"


async def test_health_readiness_and_metrics(api_client: httpx.AsyncClient) -> None:
    assert (await api_client.get("/health")).json() == {"status": "ok"}
    ready = await api_client.get("/ready")
    assert ready.status_code == 503  # the fixture's broker address is deliberately dead
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"] != "ok"
    metrics = await api_client.get("/metrics")
    assert "pw_api_requests_total" in metrics.text
