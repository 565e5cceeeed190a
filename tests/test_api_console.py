"""The supervisor's console through the API: search, alert history with filters and its CSV,
a lot's series as CSV, gateway and reader details, a tracker's track, the missing tags of an
alert and its printable incident report, each within the caller's visibility."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection

from cloud.alerts import raise_alert, transition
from decisions.alert_types import AlertType
from tests.receipts_fixtures import operator_key, world

__all__ = ["operator_key", "world"]  # fixtures used by name

pytestmark = pytest.mark.integration

EPCS = ["3034257BF7194E4000000001", "3034257BF7194E4000000002", "3034257BF7194E4000000003"]
LOT_A = {"id": "LOT-A", "site_id": "site-1", "name": "Copper A", "pieces": 2,
         "financier_id": "bank-a", "epcs": EPCS[:2]}
LOT_B = {"id": "LOT-B", "site_id": "site-1", "name": "Copper B", "pieces": 1,
         "financier_id": "bank-b", "epcs": EPCS[2:]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def site(api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
               ) -> dict[str, int]:
    """Two lots at site-1, a gateway that reads and reports, a tracker, a plate, two alerts."""
    for lot in (LOT_A, LOT_B):
        response = await api_client.post("/api/v1/lots", json=lot, headers=auth(api_keys["admin"]))
        assert response.status_code == 201, response.text
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO gateways (id, site_id, public_key, online, last_seen_at) "
                     "VALUES ('gw-1', 'site-1', 'k', true, %s)", (now,))
        conn.execute("INSERT INTO tag_state (epc, gateway_id, reader, antenna, last_seen_at, "
                     "presence) VALUES (%s, 'gw-1', 'dock-1', 3, %s, 'missing'), "
                     "(%s, 'gw-1', 'dock-1', 1, %s, 'present')",
                     (EPCS[0], now - timedelta(minutes=3), EPCS[1], now))
        for i in range(30):
            conn.execute("INSERT INTO tag_observations (observed_at, gateway_id, reader, epc, "
                         "antenna, seq) VALUES (%s, 'gw-1', 'dock-1', %s, 1, %s)",
                         (now - timedelta(seconds=i), EPCS[1], i))
        conn.execute("INSERT INTO telemetry (observed_at, gateway_id, kind, body) VALUES "
                     "(%s, 'gw-1', 'agent', %s)", (now, json.dumps(
                         {"outbox_depth": 17, "outbox_bytes": 900, "dropped_telemetry": 0,
                          "reconnects": 0, "published": 40})))
        conn.execute("INSERT INTO raw_events (observed_at, gateway_id, seq, type, body) VALUES "
                     "(%s, 'gw-1', 1, 'gateway_status', %s), (%s, 'gw-1', 2, 'plate_read', %s)",
                     (now, json.dumps({"state": "online", "agent_version": "0.1.0",
                                       "session_started_us": 1}),
                      now, json.dumps({"camera": "cam", "plate": "沪A12345", "direction": "out"})))
        for i in range(4):
            conn.execute("INSERT INTO tracker_positions (fix_at, gateway_id, tracker, lon, lat, "
                         "source) VALUES (%s, 'gw-1', 'coil-7', %s, 31.35, 'owntracks')",
                         (now - timedelta(minutes=4 - i), 121.59 + i / 1000))
        conn.execute("INSERT INTO tracker_state (tracker, gateway_id, source, fix_at, lon, lat) "
                     "VALUES ('coil-7', 'gw-1', 'owntracks', %s, 121.593, 31.35)", (now,))
        conn.execute("INSERT INTO lot_counts (observed_at, gateway_id, lot_id, expected, present, "
                     "missing, unknown) VALUES (%s, 'gw-1', 'LOT-A', 2, 1, 1, 0)", (now,))
        conn.execute("INSERT INTO sensor_readings (observed_at, gateway_id, sensor, quantity, "
                     "unit, lot_id, value) VALUES (%s, 'gw-1', 't1', 'temperature', 'C', 'LOT-A', "
                     "31.5)", (now,))
        conn.execute("UPDATE api_keys SET label = 'Wang Fang' WHERE role = 'supervisor' "
                     "AND operator_id = 'op-1'")
    async with await AsyncConnection.connect(database_url, autocommit=False) as conn:
        theft = await raise_alert(
            conn, alert_type=AlertType.TAG_MISSING, subject="lot:LOT-A", severity="critical",
            site_id="site-1", lot_id="LOT-A", explanation="1 of 2 tags of LOT-A missing",
            evidence={"missing_epcs": [EPCS[0]], "missing_count": 1},
            seen_at=now - timedelta(hours=3), actor="gateway:gw-1")
        heat = await raise_alert(
            conn, alert_type=AlertType.TEMPERATURE, subject="sensor:t1", severity="minor",
            site_id="site-1", lot_id="LOT-B", explanation="=2 °C above the range",
            evidence={}, seen_at=now, actor="gateway:gw-1")
        await conn.commit()
        supervisor_id = api_keys["supervisor"].split("_")[1]
        await transition(conn, _id(heat), "resolve", supervisor_id, "door closed")
        await conn.commit()
    return {"theft": _id(theft), "heat": _id(heat)}


def _id(raised: object) -> int:
    if isinstance(raised, dict):
        return int(raised["id"])
    if isinstance(raised, tuple):
        return int(raised[0])
    return int(raised)  # type: ignore[call-overload]


async def test_search_finds_lots_receipts_tags_gateways_plates_and_trackers_within_scope(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], site: dict[str, int]
) -> None:
    async def kinds(q: str, key: str) -> set[tuple[str, str]]:
        response = await api_client.get("/api/v1/search", params={"q": q}, headers=auth(key))
        assert response.status_code == 200, response.text
        return {(r["kind"], r["id"]) for r in response.json()}

    supervisor = api_keys["supervisor"]
    assert await kinds("lot-a", supervisor) == {("lot", "LOT-A")}
    assert ("epc", EPCS[0]) in await kinds("E4000000001", supervisor)
    assert await kinds("gw-", supervisor) == {("gateway", "gw-1")}
    assert await kinds("A123", supervisor) == {("plate", "沪A12345")}
    assert await kinds("coil", supervisor) == {("tracker", "coil-7")}
    # A financier finds their own lot's tags only, and no plates, trackers or gateways.
    assert await kinds("E40000000", api_keys["bank-b"]) == {("epc", EPCS[2])}
    assert await kinds("LOT", api_keys["bank-b"]) == {("lot", "LOT-B")}
    assert await kinds("A123", api_keys["bank-b"]) == set()
    assert await kinds("LOT", api_keys["supervisor-2"]) == set()
    short = await api_client.get("/api/v1/search", params={"q": "L"}, headers=auth(supervisor))
    assert short.status_code == 422


async def test_alert_history_filters_and_exports_resolved_alerts_as_csv(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], site: dict[str, int]
) -> None:
    key = auth(api_keys["supervisor"])

    async def ids(**params: object) -> list[int]:
        response = await api_client.get("/api/v1/alert-history", params=params, headers=key)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()]

    assert await ids() == [site["heat"], site["theft"]]  # newest first, resolved included
    assert await ids(state="resolved") == [site["heat"]]
    assert await ids(severity=["critical", "major"]) == [site["theft"]]
    assert await ids(type=AlertType.TEMPERATURE) == [site["heat"]]
    assert await ids(site="site-2") == []
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await ids(**{"from": recent}) == [site["heat"], site["theft"]]  # theft still active
    old_end = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    assert await ids(to=old_end) == [site["theft"]]
    assert await ids() != []
    bank_a = await api_client.get("/api/v1/alert-history", headers=auth(api_keys["bank-a"]))
    assert [a["id"] for a in bank_a.json()] == [site["theft"]]

    exported = await api_client.get("/api/v1/exports/alerts.csv", params={"state": "resolved"},
                                    headers=key)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert [int(r["id"]) for r in rows] == [site["heat"]]
    assert rows[0]["state"] == "resolved" and rows[0]["resolved_at"]
    assert rows[0]["explanation"] == "'=2 °C above the range"  # never run as a formula


async def test_a_lots_presence_and_sensor_series_export_as_csv(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], site: dict[str, int]
) -> None:
    response = await api_client.get("/api/v1/exports/lots/LOT-A/series.csv",
                                    headers=auth(api_keys["bank-a"]))
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert {(r["series"], r["quantity"], r["value"]) for r in rows} == {
        ("tags", "present", "1.0"), ("sensor", "temperature", "31.5")}
    assert [r["missing"] for r in rows if r["series"] == "tags"] == ["1"]
    other = await api_client.get("/api/v1/exports/lots/LOT-A/series.csv",
                                 headers=auth(api_keys["bank-b"]))
    assert other.status_code == 404


async def test_gateway_and_reader_details_and_a_trackers_track(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], site: dict[str, int]
) -> None:
    key = auth(api_keys["supervisor"])
    gw = (await api_client.get("/api/v1/devices/gateways/gw-1", headers=key)).json()
    assert gw["online"] is True and gw["version"] == "0.1.0" and gw["outbox_depth"] == 17
    assert gw["read_rate_per_s"] == 0.1  # 30 reads in the last 5 minutes
    assert gw["last_seen_at"] is not None
    reader = (await api_client.get("/api/v1/devices/gateways/gw-1/readers/dock-1",
                                   headers=key)).json()
    assert reader["tags"] == 2 and reader["antennas"] == [1, 3]
    assert reader["read_rate_per_s"] == 0.1
    for path in ("/api/v1/devices/gateways/gw-1", "/api/v1/devices/gateways/gw-1/readers/x"):
        assert (await api_client.get(path, headers=auth(api_keys["bank-a"]))).status_code == 404
    assert (await api_client.get("/api/v1/devices/gateways/gw-1",
                                 headers=auth(api_keys["supervisor-2"]))).status_code == 404

    fixes = (await api_client.get("/api/v1/devices/trackers/coil-7/track", headers=key)).json()
    assert [round(f["lon"], 6) for f in fixes] == [121.59, 121.591, 121.592, 121.593]
    hidden = await api_client.get("/api/v1/devices/trackers/coil-7/track",
                                  headers=auth(api_keys["bank-a"]))
    assert hidden.status_code == 404


async def test_missing_tags_and_the_incident_report(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], site: dict[str, int]
) -> None:
    key = auth(api_keys["supervisor"])
    missing = (await api_client.get(f"/api/v1/incidents/{site['theft']}/missing-tags",
                                    headers=key)).json()
    assert [(t["epc"], t["reader"], t["antenna"]) for t in missing] == [(EPCS[0], "dock-1", 3)]
    assert missing[0]["last_seen_at"] is not None

    report = await api_client.get(f"/api/v1/incidents/{site['heat']}/report.pdf", headers=key)
    assert report.status_code == 200, report.text
    assert report.headers["content-type"] == "application/pdf"
    assert report.content.startswith(b"%PDF")
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(report.content)).pages)
    assert "Incident report" in text and "door closed" in text
    assert "Wang Fang" in text  # people by the name their key was issued to
    assert "Ledger proof" in text
    theirs = await api_client.get(f"/api/v1/incidents/{site['heat']}/report.pdf",
                                  headers=auth(api_keys["bank-a"]))
    assert theirs.status_code == 404


async def test_the_incident_report_carries_the_evidence_images_and_the_ledger_proof(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], site: dict[str, int],
    database_url: str,
) -> None:
    import hashlib

    import cv2
    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pypdf import PdfReader

    from cloud.receipts import ledger, merkle

    ok, encoded = cv2.imencode(".jpg", np.full((40, 120, 3), (200, 120, 20), np.uint8))
    assert ok
    crop = bytes(encoded)
    sha = hashlib.sha256(crop).hexdigest()
    now = datetime.now(UTC)
    async with await AsyncConnection.connect(database_url, autocommit=False) as conn:
        await conn.execute(
            "INSERT INTO evidence_images (sha256, gateway_id, content_type, bytes, data) "
            "VALUES (%s, 'gw-1', 'image/jpeg', %s, %s)", (sha, len(crop), crop))
        plate, _ = await raise_alert(
            conn, alert_type=AlertType.TAG_MISSING, subject="lot:LOT-B", severity="critical",
            site_id="site-1", lot_id="LOT-B", explanation="LOT-B left on a truck",
            evidence={"frame": {"kind": "frame", "sha256": sha}}, seen_at=now,
            actor="gateway:gw-1")
        index = await ledger.append(conn, ledger.make_entry(
            "lot_verification", now, {"counted": 1}, lot="LOT-B"))
        head = await ledger.publish_tree_head(conn, Ed25519PrivateKey.generate(), now)
        proof = await ledger.inclusion_proof(conn, index, head.size)
        await conn.commit()
    report = await api_client.get(f"/api/v1/incidents/{plate}/report.pdf",
                                  headers=auth(api_keys["supervisor"]))
    assert report.status_code == 200, report.text
    pages = PdfReader(io.BytesIO(report.content)).pages
    text = "".join(page.extract_text() for page in pages)
    assert sum(len(page.images) for page in pages) == 1  # the frame, embedded
    assert f"size {head.size}, root {head.root.hex()}" in text
    assert f"entry {index} (lot_verification)" in text
    async with await AsyncConnection.connect(database_url) as conn:
        entry = await ledger.entry_at(conn, index)
    assert merkle.leaf_hash(entry.text.encode()).hex() in text.replace("\n", "")
    assert all(h.hex() in text.replace("\n", "") for h in proof)


async def test_search_finds_an_issued_receipt_for_its_holder_side_only(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str,
    operator_key: object, world: dict[str, str],
) -> None:
    from tests.receipts_fixtures import EPCS as RECEIPT_EPCS
    from tests.receipts_fixtures import issue, make_lot, see_tags

    await make_lot(api_client, api_keys)
    see_tags(database_url, RECEIPT_EPCS)
    await issue(api_client, api_keys, "WR-2026-77")
    found = await api_client.get("/api/v1/search", params={"q": "wr-2026"},
                                 headers=auth(api_keys["supervisor"]))
    assert [(r["kind"], r["id"], r["lot_id"]) for r in found.json()] == [
        ("receipt", "WR-2026-77", "LOT-1")]
    other = await api_client.get("/api/v1/search", params={"q": "wr-2026"},
                                 headers=auth(api_keys["supervisor-2"]))
    assert other.json() == []
