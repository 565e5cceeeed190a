"""Alert lifecycle through the API and ingest: snooze, maintenance windows, rule sets per site,
auto-resolve, and the cloud absorbing the edge's alert without a second one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg import AsyncConnection

from cloud import alerts
from cloud.alerting.stage import AlertingStage
from cloud.ingest.decode import Accepted
from cloud.ingest.store import write_accepted
from contract import AlertBody, MessageType, PresenceChangeBody
from contract.envelope import Envelope
from contract.messages import PlateReadBody
from tests.webhooks_fixtures import pledge_lot


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _raise(database_url: str, subject: str = "lot:L1", at: datetime | None = None) -> int:
    async with await AsyncConnection.connect(database_url) as conn:
        alert_id, _ = await alerts.raise_alert(
            conn, alert_type="theft.tag_missing", subject=subject, severity="critical",
            site_id="site-1", lot_id="L1", explanation="gone", evidence={},
            seen_at=at or datetime.now(UTC), actor="test")
        await conn.commit()
    return alert_id


def _deliveries(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
    assert row is not None
    return int(row[0])


async def _endpoint(api: httpx.AsyncClient, key: str) -> None:
    r = await api.post("/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/h"},
                       headers=auth(key))
    assert r.status_code == 201


async def test_lifecycle_steps_notify_and_snooze_keeps_reopenings_quiet(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    pledge_lot(database_url)
    await _endpoint(api_client, api_keys["bank-a"])
    sup = auth(api_keys["supervisor"])
    alert_id = await _raise(database_url)
    r = await api_client.post(f"/api/v1/alerts/{alert_id}/acknowledge",
                              json={"comment": "guard sent"}, headers=sup)
    assert r.json()["state"] == "acknowledged"
    until = datetime.now(UTC) + timedelta(hours=2)
    r = await api_client.post(f"/api/v1/alerts/{alert_id}/snooze",
                              json={"until": until.isoformat(), "comment": "forklift tests"},
                              headers=sup)
    assert r.status_code == 200, r.text
    await api_client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"comment": "ok"},
                          headers=sup)
    assert _deliveries(database_url) == 3  # opened, acknowledged, resolved
    again = await _raise(database_url)  # re-opened during the snooze: stored, not sent
    assert again != alert_id and _deliveries(database_url) == 3
    detail = (await api_client.get(f"/api/v1/alerts/{again}", headers=sup)).json()
    assert detail["suppressed_by"].startswith("snoozed until")
    history = (await api_client.get(f"/api/v1/alerts/{alert_id}", headers=sup)).json()["history"]
    assert [(h["action"], h["comment"]) for h in history][1:3] == [
        ("acknowledged", "guard sent"),
        ("snoozed", f"until {until.isoformat()}: forklift tests")]
    r = await api_client.post(f"/api/v1/alerts/{alert_id}/snooze",
                              json={"until": until.isoformat()}, headers=auth(api_keys["bank-a"]))
    assert r.status_code == 403


async def test_maintenance_window_quiets_its_site_and_types_only(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    pledge_lot(database_url)
    await _endpoint(api_client, api_keys["bank-a"])
    now = datetime.now(UTC)
    r = await api_client.post("/api/v1/sites/site-1/maintenance-windows", json={
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "alert_types": ["theft.tag_missing"], "reason": "re-tagging bay 3"},
        headers=auth(api_keys["supervisor"]))
    assert r.status_code == 201, r.text
    quiet = await _raise(database_url, "lot:L1-a")
    assert _deliveries(database_url) == 0
    async with await AsyncConnection.connect(database_url) as conn:
        other, _ = await alerts.raise_alert(
            conn, alert_type="damage.temperature", subject="sensor:s1", severity="major",
            site_id="site-1", lot_id="L1", explanation="hot", evidence={}, seen_at=now,
            actor="t")
        later, _ = await alerts.raise_alert(
            conn, alert_type="theft.tag_missing", subject="lot:L1-b", severity="critical",
            site_id="site-1", lot_id="L1", explanation="x", evidence={},
            seen_at=now + timedelta(hours=2), actor="t")
        await conn.commit()
    assert _deliveries(database_url) == 2
    with psycopg.connect(database_url) as c:
        quiet_by = c.execute("SELECT suppressed_by FROM alerts WHERE id = %s", (quiet,)
                             ).fetchone()
    assert quiet_by is not None and "re-tagging bay 3" in quiet_by[0]
    r = await api_client.post("/api/v1/sites/site-2/maintenance-windows", json={
        "starts_at": now.isoformat(), "ends_at": now.isoformat()},
        headers=auth(api_keys["supervisor"]))
    assert r.status_code == 404  # another operator's site
    r = await api_client.post("/api/v1/sites/site-1/maintenance-windows", json={
        "starts_at": now.isoformat(), "ends_at": now.isoformat()},
        headers=auth(api_keys["supervisor"]))
    assert r.status_code == 422 and "end after" in r.text
    assert other and later


def _accepted(msg_type: MessageType, body: Any, seq: int, gateway: str = "gw-1",
              at: datetime | None = None) -> Accepted:
    at = at or datetime.now(UTC)
    env = Envelope(version=1, site="site-1", gateway=gateway, seq=seq, observed_at=at,
                   observed_at_text=at.isoformat(), clock_offset_ms=None, type=str(msg_type),
                   body=body.model_dump(mode="json"), signature=b"")
    return Accepted(env, body, "pw/v1/site-1/gw-1/events", b"")


async def _write(database_url: str, *items: Accepted) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        for item in items:
            await write_accepted(conn, [item], AlertingStage())
        await conn.commit()


async def test_a_site_rule_set_runs_in_ingest_and_the_edges_alert_is_absorbed(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    pledge_lot(database_url)
    await _endpoint(api_client, api_keys["bank-a"])
    sup = auth(api_keys["supervisor"])
    defaults = (await api_client.get("/api/v1/sites/site-1/rules", headers=sup)).json()
    assert defaults["version"] == 0 and "theft-departure" in {r["name"] for r in defaults["rules"]}
    bad = await api_client.put("/api/v1/sites/site-1/rules", headers=sup, json={"rules": [
        {"name": "x", "trigger": "tags_departed", "explanation": "{subject}"}]})
    assert bad.status_code == 422 and "alert_type" in bad.text
    rules = [*defaults["rules"], {
        "name": "plate-then-gone", "trigger": "tags_departed", "window_s": 5,
        "any_of": [{"fact": "vehicle_unauthorised"}], "alert_type": "theft.quick_grab",
        "severity": "critical", "clear_on": ["tags_returned"],
        "explanation": "{subject} left within {window_s} s of: {facts}"}]
    r = await api_client.put("/api/v1/sites/site-1/rules", headers=sup, json={"rules": rules})
    assert r.json()["version"] == 1
    t0 = datetime.now(UTC)
    t0_us = int(t0.timestamp() * 1_000_000)  # wire times lie in 2000..2100 (contract.bounds)
    plate = PlateReadBody(camera="gate", plate="ZZ1", region="cn", plate_format="cn_blue",
                          confidence_pct=90, reads=3, first_seen_us=t0_us, last_seen_us=t0_us,
                          box=(0, 0, 1, 1))
    gone = PresenceChangeBody(lot="L1", epc="AAAA0001", state="missing", previous="present",
                              last_seen_us=None)
    back = PresenceChangeBody(lot="L1", epc="AAAA0001", state="present", previous="missing",
                              last_seen_us=None)
    # The edge decided the same theft while offline; it arrives with the facts.
    edge = AlertBody(action="raise", alert_type="theft.unreleased_departure", subject="lot:L1",
                     severity="critical", lot="L1", explanation="edge: tags left with ZZ1")
    await _write(database_url, _accepted(MessageType.PLATE_READ, plate, 1, at=t0),
                 _accepted(MessageType.PRESENCE_CHANGE, gone, 2, at=t0 + timedelta(seconds=2)),
                 _accepted(MessageType.ALERT, edge, 3, at=t0 + timedelta(seconds=2)))
    with psycopg.connect(database_url) as c:
        rows = c.execute("SELECT alert_type, subject, count, state, explanation FROM alerts "
                         "WHERE alert_type LIKE 'theft.%%' ORDER BY alert_type").fetchall()
        sent = c.execute("SELECT m.event_type, a.alert_type FROM webhook_messages m "
                         "JOIN alerts a ON a.id = m.alert_id ORDER BY m.seq").fetchall()
    by_type = {r[0]: r for r in rows}
    assert by_type["theft.quick_grab"][4].startswith("lot:L1 left within 5 s of: "
                                                     "vehicle_unauthorised vehicle:ZZ1")
    # One theft alert, raised by the cloud's rule and by the edge: counted twice, sent once.
    assert by_type["theft.unreleased_departure"][2:4] == (2, "open")
    assert sorted(sent) == [("alert.opened", "theft.quick_grab"),
                            ("alert.opened", "theft.unreleased_departure")]
    # The tag coming back clears both (the rules' clear condition): auto-resolved.
    await _write(database_url, _accepted(MessageType.PRESENCE_CHANGE, back, 4,
                                         at=t0 + timedelta(seconds=4)))
    with psycopg.connect(database_url) as c:
        states = c.execute("SELECT alert_type, state, resolved_by FROM alerts "
                           "WHERE alert_type LIKE 'theft.%%' ORDER BY alert_type").fetchall()
    assert states == [("theft.quick_grab", "resolved", "rule:plate-then-gone"),
                      ("theft.unreleased_departure", "resolved", "rule:theft-departure")]


async def test_a_snooze_quiets_its_own_sites_alert_not_another_sites_of_the_same_subject(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('site-9', 'op-2', 'other')")

    async def raise_at(site: str) -> int:
        async with await AsyncConnection.connect(database_url) as conn:
            alert_id, _ = await alerts.raise_alert(
                conn, alert_type="tamper.reader_offline", subject="reader:dock-1",
                severity="major", site_id=site, lot_id=None, explanation="silent", evidence={},
                seen_at=datetime.now(UTC), actor="test")
            await conn.commit()
        return alert_id

    first = await raise_at("site-1")
    r = await api_client.post(
        f"/api/v1/alerts/{first}/snooze", headers=auth(api_keys["supervisor"]),
        json={"until": (datetime.now(UTC) + timedelta(hours=2)).isoformat(), "comment": "work"})
    assert r.status_code == 200, r.text
    other = await raise_at("site-9")  # the same reader name at another site: not snoozed
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT suppressed_by FROM alerts WHERE id = %s", (other,)).fetchone()
    assert row == (None,)


async def test_one_batch_is_decided_once_and_a_plate_a_lot_lists_is_no_theft(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    pledge_lot(database_url)
    pledge_lot(database_url, lot="L2")
    with psycopg.connect(database_url, autocommit=True) as c:
        # Listed with a separator: the gate's reading "QQ7" is the same plate.
        c.execute("""UPDATE lots SET authorised_vehicles = '["QQ-7"]' WHERE id = 'L2'""")
    await _endpoint(api_client, api_keys["bank-a"])
    t0 = datetime.now(UTC)
    earlier = t0 - timedelta(seconds=1000)  # outside the theft rule's 600 s window

    def plate(text: str, at: datetime) -> PlateReadBody:
        at_us = int(at.timestamp() * 1_000_000)
        return PlateReadBody(camera="gate", plate=text, region="cn", plate_format="cn_blue",
                             confidence_pct=90, reads=3, first_seen_us=at_us,
                             last_seen_us=at_us, box=(0, 0, 1, 1))

    def gone(lot: str, epc: str) -> PresenceChangeBody:
        return PresenceChangeBody(lot=lot, epc=epc, state="missing", previous="present",
                                  last_seen_us=None)

    async def batch(*items: Accepted) -> None:
        async with await AsyncConnection.connect(database_url) as conn:
            await write_accepted(conn, list(items), AlertingStage())
            await conn.commit()

    # The authorised truck at the gate while L2's tags leave: no theft.
    await batch(_accepted(MessageType.PLATE_READ, plate("QQ7", earlier), 1, at=earlier),
                _accepted(MessageType.PRESENCE_CHANGE, gone("L2", "BBBB0001"), 2,
                          at=earlier + timedelta(seconds=2)))
    # An unknown plate, the departure and the edge's own verdict in one batch: one stage call.
    edge = AlertBody(action="raise", alert_type="theft.unreleased_departure", subject="lot:L1",
                     severity="critical", lot="L1", explanation="edge: tags left with ZZ1")
    later = t0 + timedelta(seconds=2)
    await batch(_accepted(MessageType.PLATE_READ, plate("ZZ1", t0), 3, at=t0),
                _accepted(MessageType.PRESENCE_CHANGE, gone("L1", "AAAA0001"), 4, at=later),
                _accepted(MessageType.ALERT, edge, 5, at=later))
    with psycopg.connect(database_url) as c:
        rows = c.execute("SELECT alert_type, subject, count FROM alerts ORDER BY id").fetchall()
        sent = c.execute("SELECT m.event_type, a.subject FROM webhook_messages m "
                         "JOIN alerts a ON a.id = m.alert_id ORDER BY m.seq").fetchall()
        facts = c.execute("SELECT kind, subject FROM rule_facts WHERE kind LIKE 'vehicle%%' "
                          "ORDER BY at, id").fetchall()
    assert facts == [("vehicle_authorised", "vehicle:QQ7"),
                     ("vehicle_unauthorised", "vehicle:ZZ1")]
    # The edge's alert and the cloud's rule land on one alert: counted twice, sent once.
    assert rows == [("theft.unreleased_departure", "lot:L1", 2)]
    assert sent == [("alert.opened", "lot:L1")]
