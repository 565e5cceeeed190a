"""Integrity in the cloud, on real PostgreSQL: shipments judged from stored sensor facts, the
verdict in the evidence ledger and the API, a contradicted one on the financier's webhook; a
lot's sources side by side and its mismatch alert raised and resolved by the periodic pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg import AsyncConnection

from cloud.integrity.cli import run_pass
from cloud.integrity.lots import reconcile_lot
from cloud.integrity.shipments import judge_and_record

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(hours=14)
MIN = timedelta(minutes=1)
A = {"name": "warehouse-a", "lat": 31.23, "lon": 121.47, "radius_m": 300, "site": "site-1"}
YARD = {"name": "buyer-yard", "lat": 31.70, "lon": 121.47, "radius_m": 300}
EPCS = [f"E2800000000000000000{n:04X}" for n in range(5)]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def seed(database_url: str) -> None:
    """A lot of site-1 pledged to bank-a, a gateway there, and bank-a's webhook endpoint."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lots (id, site_id, name, pieces, financier_id)"
                     " VALUES ('LOT-1', 'site-1', 'Copper cathodes', 100, 'bank-a')")
        conn.execute("INSERT INTO gateways (id, site_id, public_key)"
                     " VALUES ('gw-1', 'site-1', 'k'), ('gw-2', 'site-2', 'k')")
        conn.execute("INSERT INTO webhook_endpoints (id, financier_id, url)"
                     " VALUES ('ep-1', 'bank-a', 'https://bank-a.example/hooks')")


def departure_facts(database_url: str, *, tracker_ends_at: tuple[float, float] | None) -> None:
    """The truck leaves site-1 (plate, tags, track); then drives to ``tracker_ends_at``."""
    left = START + 10 * MIN
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO raw_events (observed_at, gateway_id, seq, type, body)"
            " VALUES (%s, 'gw-1', 1, 'plate_read', %s)",
            (left, json.dumps({"camera": "gate", "plate": "沪A12345", "direction": "out"})))
        for i, epc in enumerate(EPCS):
            conn.execute(
                "INSERT INTO presence_changes (observed_at, gateway_id, lot_id, epc, state, seq)"
                " VALUES (%s, 'gw-1', 'LOT-1', %s, 'missing', %s)", (left + MIN, epc, 10 + i))
        fixes: list[tuple[datetime, float, float]] = [
            (START + k * MIN, 31.23, 121.47) for k in range(0, 10, 2)]  # inside warehouse-a
        if tracker_ends_at is not None:
            lat, lon = tracker_ends_at
            fixes += [(START + (12 + 10 * k) * MIN, lat, lon) for k in range(70)]
        for at, lat, lon in fixes:
            conn.execute(
                "INSERT INTO tracker_positions (fix_at, gateway_id, tracker, lon, lat, source)"
                " VALUES (%s, 'gw-1', 'trk-7', %s, %s, 'test')", (at, lon, lat))


def shipment_body(shipment_id: str = "SHP-1") -> dict[str, Any]:
    return {
        "id": shipment_id, "site_id": "site-1", "lot_id": "LOT-1", "direction": "outbound",
        "counterparty": "Buyer Metals Ltd", "origin": A, "destination": YARD,
        "plate": "沪A 12345", "tracker": "trk-7", "epcs": EPCS,
        "window_start": START.isoformat(), "window_end": (START + timedelta(hours=3)).isoformat(),
    }


async def test_a_phantom_delivery_is_contradicted_logged_and_sent_to_the_financier(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
) -> None:
    seed(database_url)
    # The truck parks 5 km away and keeps reporting: it never reaches the buyer's yard.
    departure_facts(database_url, tracker_ends_at=(31.23, 121.52))
    sup = auth(api_keys["supervisor"])
    created = await api_client.post("/api/v1/shipments", json=shipment_body(), headers=sup)
    assert created.status_code == 201, created.text
    assert created.json()["verdict"] is None

    judged = await api_client.post("/api/v1/shipments/SHP-1/judge", headers=sup)
    assert judged.status_code == 200, judged.text
    result = judged.json()
    assert result["verdict"] == "contradicted" and result["changed"] is True
    outcomes = {(e["leg"], e["kind"]): e["outcome"] for e in result["evidence"]}
    assert outcomes[("departure", "plate")] == "supports"
    assert outcomes[("departure", "tags")] == "supports"
    assert outcomes[("arrival", "track")] == "contradicts"

    # The financier sees the shipment, its verdict and the evidence list.
    shown = await api_client.get("/api/v1/shipments/SHP-1", headers=auth(api_keys["bank-a"]))
    assert shown.status_code == 200
    assert shown.json()["verdict"] == "contradicted"
    assert shown.json()["evidence"] == result["evidence"]
    other = await api_client.get("/api/v1/shipments/SHP-1", headers=auth(api_keys["bank-b"]))
    assert other.status_code == 404
    listed = await api_client.get("/api/v1/shipments?verdict=contradicted", headers=sup)
    assert [s["id"] for s in listed.json()] == ["SHP-1"]

    with psycopg.connect(database_url) as conn:
        entry = conn.execute(
            "SELECT entry FROM ledger_entries WHERE kind = 'shipment.judged' AND lot_id = 'LOT-1'"
        ).fetchone()
        assert entry is not None
        logged = json.loads(entry[0])
        assert logged["body"]["verdict"] == "contradicted"
        assert logged["body"]["evidence"] == result["evidence"]
        alert = conn.execute(
            "SELECT id, alert_type, severity, lot_id FROM alerts WHERE subject = 'shipment:SHP-1'"
        ).fetchone()
        assert alert is not None and alert[1:] == ("integrity.shipment_contradicted", "critical",
                                                   "LOT-1")
        delivery = conn.execute(
            "SELECT d.endpoint_id, m.event_type, m.payload FROM webhook_deliveries d"
            " JOIN webhook_messages m ON m.seq = d.message_seq WHERE m.alert_id = %s",
            (alert[0],)).fetchone()
        assert delivery is not None
        assert delivery[:2] == ("ep-1", "alert.opened")
        assert delivery[2]["data"]["alert"]["alert_type"] == "integrity.shipment_contradicted"

    # Judging again with nothing new changes nothing and logs nothing more.
    again = await api_client.post("/api/v1/shipments/SHP-1/judge", headers=sup)
    assert again.json()["changed"] is False
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_entries WHERE kind = 'shipment.judged'").fetchone()
        assert row == (1,)


async def test_a_gps_gap_leaves_a_genuine_delivery_partly_corroborated(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
) -> None:
    seed(database_url)
    departure_facts(database_url, tracker_ends_at=None)  # the tracker goes quiet after leaving
    sup = auth(api_keys["supervisor"])
    assert (await api_client.post("/api/v1/shipments", json=shipment_body(),
                                  headers=sup)).status_code == 201
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        _, _, changed = await run_pass(conn, NOW)
    assert changed == 1
    shown = (await api_client.get("/api/v1/shipments/SHP-1", headers=sup)).json()
    assert shown["verdict"] == "partly"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


async def test_a_shipment_at_a_site_of_another_operator_is_refused(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
) -> None:
    seed(database_url)
    body = {**shipment_body(), "site_id": "site-2", "lot_id": None}
    refused = await api_client.post("/api/v1/shipments", json=body,
                                    headers=auth(api_keys["supervisor"]))
    assert refused.status_code == 404
    by_financier = await api_client.post("/api/v1/shipments", json=shipment_body(),
                                         headers=auth(api_keys["bank-a"]))
    assert by_financier.status_code == 403
    backwards = {**shipment_body(), "window_end": (START - MIN).isoformat()}
    bad = await api_client.post("/api/v1/shipments", json=backwards,
                                headers=auth(api_keys["supervisor"]))
    assert bad.status_code == 422


async def test_lot_panel_shows_every_source_and_a_weight_swap_raises_then_resolves(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
) -> None:
    seed(database_url)
    sup = auth(api_keys["supervisor"])
    declared = await api_client.put(
        "/api/v1/lots/LOT-1/integrity", headers=sup,
        json={"unit_weight_kg": 25.0, "tare_kg": 40.0, "pallets": 4,
              "declared_at": (NOW - timedelta(days=1)).isoformat(),
              "tolerance": {"persist_for": 900}})
    assert declared.status_code == 204, declared.text
    swapped_at = NOW - 20 * MIN
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lot_counts (observed_at, gateway_id, lot_id, expected, present,"
                     " missing, unknown) VALUES (%s, 'gw-1', 'LOT-1', 100, 100, 0, 0)",
                     (swapped_at,))
        conn.execute("INSERT INTO sensor_readings (observed_at, gateway_id, sensor, quantity,"
                     " unit, lot_id, value) VALUES (%s, 'gw-1', 'scale-1', 'weight', 't',"
                     " 'LOT-1', 1.8)", (swapped_at,))
    for source, value in (("labels", 100), ("camera", 4)):
        recorded = await api_client.post(
            "/api/v1/lots/LOT-1/integrity/figures", headers=sup,
            json={"source": source, "value": value, "observed_at": swapped_at.isoformat()})
        assert recorded.status_code == 204, recorded.text
    # Recording a figure reconciles at once: the swap (20 minutes old) is already an alert.
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM alerts WHERE alert_type ="
                            " 'integrity.weight_mismatch' AND state = 'open'").fetchone() == (1,)

    panel = (await api_client.get("/api/v1/lots/LOT-1/integrity",
                                  headers=auth(api_keys["bank-a"]))).json()
    states = {s["source"]: (s["state"], s["value"]) for s in panel["sources"]}
    assert states == {
        "receipt": ("disagrees", 100.0),
        "rfid": ("agrees", 100.0),
        "labels": ("agrees", 100.0),
        "load_cell": ("disagrees", 1800.0),
        "camera": ("agrees", 4.0),
    }
    assert panel["declared"]["expected_kg"] == 2540.0

    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        # First sight of the disagreement 20 minutes old: it has persisted past 15 minutes.
        async with conn.transaction():
            done = await reconcile_lot(conn, "LOT-1", NOW)
        assert done is not None
        assert [f.alert_type for f in done[1]] == ["integrity.weight_mismatch"]
    with psycopg.connect(database_url) as conn:
        alert = conn.execute("SELECT state, explanation, evidence FROM alerts"
                             " WHERE alert_type = 'integrity.weight_mismatch'").fetchone()
        assert alert is not None and alert[0] == "open"
        assert "every tag is present" in alert[1] and "load_cell: 1800 kg" in alert[1]
        assert {s["source"] for s in alert[2]["sources"]} >= {"rfid", "load_cell", "camera"}

    # The goods come back onto the scale: the alert resolves on the next pass.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sensor_readings (observed_at, gateway_id, sensor, quantity,"
                     " unit, lot_id, value) VALUES (%s, 'gw-1', 'scale-1', 'weight', 'kg',"
                     " 'LOT-1', 2538)", (NOW + MIN,))
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await run_pass(conn, NOW + 2 * MIN)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT state FROM alerts WHERE alert_type ="
                            " 'integrity.weight_mismatch'").fetchone() == ("resolved",)
        assert conn.execute("SELECT count(*) FROM lot_disagreements").fetchone() == (0,)


async def test_the_judgement_functions_refuse_an_unknown_shipment(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        try:
            await judge_and_record(conn, "nope", NOW)
        except LookupError as err:
            assert "nope" in str(err)
        else:
            raise AssertionError("an unknown shipment was judged")


async def test_a_cloned_epc_read_at_two_sites_raises_a_duplicate_identity_on_the_pledged_lot(
    api_keys: dict[str, str], database_url: str
) -> None:
    seed(database_url)
    cloned = EPCS[0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lot_tags (epc, lot_id) VALUES (%s, 'LOT-1')", (cloned,))
        for k in range(10):
            for gateway, offset in (("gw-1", 0), ("gw-2", 1)):
                conn.execute(
                    "INSERT INTO tag_observations (observed_at, gateway_id, reader, epc, antenna,"
                    " seq) VALUES (%s, %s, 'r1', %s, 1, %s)",
                    (NOW - timedelta(hours=2) + (3 * k + offset) * MIN, gateway, cloned, k))
        # A tag read at one site only is no duplicate.
        conn.execute("INSERT INTO tag_observations (observed_at, gateway_id, reader, epc, antenna,"
                     " seq) VALUES (%s, 'gw-1', 'r1', %s, 1, 99)", (NOW - MIN, EPCS[1]))
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        _, duplicates, _ = await run_pass(conn, NOW)
        assert duplicates >= 1
        await run_pass(conn, NOW + MIN)  # the next pass repeats, it does not open another
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT subject, lot_id, site_id, count, explanation, evidence FROM alerts"
            " WHERE alert_type = 'integrity.duplicate_identity'").fetchall()
    assert len(rows) == 1
    subject, lot, site, count, explanation, evidence = rows[0]
    assert (subject, lot, site, count) == (f"epc:{cloned}", "LOT-1", "site-2", 2)
    assert "site-1" in explanation and "site-2" in explanation
    assert [s["site"] for s in evidence["sightings"]] == ["site-1", "site-2"]


async def test_pallet_labels_read_under_a_lot_are_its_labels_figure(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
) -> None:
    seed(database_url)
    sup = auth(api_keys["supervisor"])
    await api_client.put("/api/v1/lots/LOT-1/integrity", headers=sup,
                         json={"unit_weight_kg": 25.0, "pallets": 4})
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n in range(4):
            for repeat in range(2):  # each label read twice counts once
                body = {"camera": "stack-1", "lot": "LOT-1", "symbology": "GS1-128",
                        "text": "...", "gs1": {"00": f"00369{n:013d}", "01": "09506000134352",
                                                "37": "20"}}
                conn.execute(
                    "INSERT INTO raw_events (observed_at, gateway_id, seq, type, body)"
                    " VALUES (%s, 'gw-1', %s, 'label_read', %s)",
                    (NOW - (5 - repeat) * MIN, 100 + 2 * n + repeat, json.dumps(body)))
    panel = (await api_client.get("/api/v1/lots/LOT-1/integrity", headers=sup)).json()
    labels = next(s for s in panel["sources"] if s["source"] == "labels")
    assert (labels["value"], labels["state"]) == (80.0, "disagrees")
