"""One incident, one alert, per site, in the cloud: the gateway's incident, the cloud's rule, the
release guard, the door and the unknown truck of one theft land on one alert on the lot, with
one webhook per state change (opened, updated when more tags are gone, resolved), and the same
subject at two sites is two alerts. Against a real PostgreSQL (ingest's writers and stage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection

from cloud.alerting.stage import AlertingStage
from cloud.ingest.decode import Accepted
from cloud.ingest.store import write_accepted
from contract import AlertBody, MessageType, PresenceChangeBody
from contract.envelope import Envelope
from contract.messages import PlateReadBody
from decisions.incident import departed_count, escalated, merge_evidence
from tests.webhooks_fixtures import pledge_lot

THEFT = "theft.unreleased_departure"
SEQ = iter(range(1, 10_000))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the merge, on values -----------------------------------------------------------------------
def _report(*epcs: str, count: int | None = None) -> dict[str, Any]:
    return {"incident": {"departed_epcs": list(epcs), "departed_count": count or len(epcs)},
            "facts": [{"kind": "tags_departed", "subject": "lot:L1", "at_us": int(epcs[-1][1:])}]}


def test_the_incident_counts_every_report_s_tags_once() -> None:
    first = merge_evidence(None, _report("E1", "E2"))
    second = merge_evidence(first, _report("E2", "E3"))
    assert second["incident"]["departed_epcs"] == ["E1", "E2", "E3"]
    assert departed_count(second) == 3 and escalated(first, second)
    assert len(second["facts"]) == 2
    # A report of what is already counted is no news; an incident a rule opened without a
    # count learns it without a second notification.
    assert not escalated(second, merge_evidence(second, _report("E1")))
    assert not escalated({"rule": "theft-departure"}, _report("E1", "E2"))
    # The largest reported count stands (a gateway lists at most 200 tags).
    assert departed_count(merge_evidence(second, _report("E9", count=500))) == 500


# -- through ingest ---------------------------------------------------------------------------
def _accepted(msg_type: MessageType, body: Any, *, at: datetime, site: str = "site-1",
              gateway: str = "gw-1") -> Accepted:
    env = Envelope(version=1, site=site, gateway=gateway, seq=next(SEQ), observed_at=at,
                   observed_at_text=at.isoformat(), clock_offset_ms=None, type=str(msg_type),
                   body=body.model_dump(mode="json"), signature=b"")
    return Accepted(env, body, f"pw/v1/{site}/{gateway}/events", b"")


async def _batch(database_url: str, *items: Accepted) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        await write_accepted(conn, list(items), AlertingStage())
        await conn.commit()


def _gone(epc: str, lot: str = "L1") -> PresenceChangeBody:
    return PresenceChangeBody(lot=lot, epc=epc, state="missing", previous="present",
                              last_seen_us=None)


def _back(epc: str, lot: str = "L1") -> PresenceChangeBody:
    return PresenceChangeBody(lot=lot, epc=epc, state="present", previous="missing",
                              last_seen_us=None)


def _plate(text: str, at: datetime) -> PlateReadBody:
    at_us = int(at.timestamp() * 1_000_000)
    return PlateReadBody(camera="gate", plate=text, region="cn", plate_format="cn_blue",
                         confidence_pct=90, reads=3, first_seen_us=at_us, last_seen_us=at_us,
                         box=(0, 0, 1, 1))


def _edge_incident(epcs: list[str], *, lot: str = "L1") -> AlertBody:
    """The gateway's incident as edge/alerting.py raises it."""
    return AlertBody(action="raise", alert_type=THEFT, subject=f"lot:{lot}", severity="critical",
                     lot=lot, explanation=f"{len(epcs)} tag(s) of pledged lot {lot} left",
                     evidence={"incident": {"departed_epcs": epcs,
                                            "departed_count": len(epcs)},
                               "decided_at": "edge"})


def _door(action: str) -> AlertBody:
    return AlertBody(action=action, alert_type="theft.door_open_outside_hours",  # type: ignore[arg-type]
                     subject="door:dock-1", severity="major", explanation=f"door {action}")


async def _endpoint(api: httpx.AsyncClient, key: str) -> None:
    r = await api.post("/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/h"},
                       headers=auth(key))
    assert r.status_code == 201


def _rows(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def _lot_tags(database_url: str, lot: str, epcs: list[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for epc in epcs:
            conn.execute("INSERT INTO lot_tags (epc, lot_id) VALUES (%s, %s)", (epc, lot))


@pytest.mark.integration
async def test_a_slow_night_theft_is_one_alert_updated_as_it_grows_with_its_doors_folded_in(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    # 8 tags leave every 30 minutes with the door open each time and an unknown truck.
    pledge_lot(database_url)
    await _endpoint(api_client, api_keys["bank-a"])
    epcs = [f"AAAA{i:04d}" for i in range(24)]
    _lot_tags(database_url, "L1", epcs)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    for k in range(3):
        at = t0 + timedelta(minutes=30 * k)
        pallet = epcs[8 * k: 8 * k + 8]
        await _batch(database_url, _accepted(MessageType.ALERT, _door("raise"), at=at),
                     _accepted(MessageType.PLATE_READ, _plate("ZZ1", at), at=at))
        later = at + timedelta(seconds=25)
        await _batch(database_url, *[_accepted(MessageType.PRESENCE_CHANGE, _gone(e), at=later)
                                     for e in pallet])
        await _batch(database_url, _accepted(MessageType.ALERT, _edge_incident(
            epcs[: 8 * k + 8]), at=later + timedelta(seconds=1)))
        await _batch(database_url, _accepted(MessageType.ALERT, _door("clear"),
                                             at=at + timedelta(minutes=5)))
    thefts = _rows(database_url, "SELECT id, subject, state, explanation, evidence FROM alerts "
                   "WHERE alert_type LIKE 'theft.%%' AND alert_type <> 'theft.door_open_outside"
                   "_hours' AND alert_type <> 'theft.unauthorized_vehicle' ORDER BY id")
    assert [(t[1], t[2]) for t in thefts] == [("lot:L1", "open")]
    [(incident_id, _, _, explanation, evidence)] = thefts
    assert evidence["incident"]["departed_count"] == 24
    assert explanation.startswith("24 tag(s)")
    kinds = {f["kind"] for f in evidence["facts"]}
    assert {"theft.door_open_outside_hours", "vehicle_unauthorised"} <= kinds
    # Each door stood alone for the 25 s before its pallet left, then became the incident's.
    doors = _rows(database_url, "SELECT state, resolved_by FROM alerts WHERE alert_type = "
                  "'theft.door_open_outside_hours'")
    assert doors == [("resolved", f"incident:{incident_id}")] * 3
    sent = _rows(database_url, "SELECT m.event_type FROM webhook_messages m "
                 "JOIN alerts a ON a.id = m.alert_id WHERE a.lot_id = 'L1' ORDER BY m.seq")
    assert sent == [("alert.opened",), ("alert.updated",), ("alert.updated",)]
    # One tag read again is not the end: the incident resolves only when all are read.
    await _batch(database_url, _accepted(MessageType.PRESENCE_CHANGE, _back(epcs[0]),
                                         at=datetime.now(UTC)))
    assert _rows(database_url, "SELECT state FROM alerts WHERE id = %s", incident_id) == [
        ("open",)]
    clear = AlertBody(action="clear", alert_type=THEFT, subject="lot:L1", severity="critical",
                      lot="L1", explanation="every departed tag of lot L1 is read again")
    await _batch(database_url, *[_accepted(MessageType.PRESENCE_CHANGE, _back(e),
                                           at=datetime.now(UTC)) for e in epcs[1:]],
                 _accepted(MessageType.ALERT, clear, at=datetime.now(UTC)))
    assert _rows(database_url, "SELECT state FROM alerts WHERE id = %s", incident_id) == [
        ("resolved",)]
    sent = _rows(database_url, "SELECT m.event_type FROM webhook_messages m "
                 "JOIN alerts a ON a.id = m.alert_id WHERE a.lot_id = 'L1' ORDER BY m.seq")
    assert sent[-1] == ("alert.resolved",) and len(sent) == 4


@pytest.mark.integration
async def test_after_a_link_outage_the_cloud_absorbs_the_gateways_incident(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    # 15 tags left while the link was down; the gateway decided the incident and sounded its
    # siren. When the link returns its outbox arrives: the presence changes, the plate and its
    # incident, in any batch split. One alert, one webhook.
    pledge_lot(database_url)
    await _endpoint(api_client, api_keys["bank-a"])
    epcs = [f"BBBB{i:04d}" for i in range(15)]
    t0 = datetime.now(UTC) - timedelta(minutes=4)
    await _batch(database_url, _accepted(MessageType.PLATE_READ, _plate("ZZ2", t0), at=t0),
                 *[_accepted(MessageType.PRESENCE_CHANGE, _gone(e),
                             at=t0 + timedelta(seconds=20)) for e in epcs[:7]])
    await _batch(database_url, *[_accepted(MessageType.PRESENCE_CHANGE, _gone(e),
                                           at=t0 + timedelta(seconds=20)) for e in epcs[7:]],
                 _accepted(MessageType.ALERT, _edge_incident(epcs), at=t0 + timedelta(seconds=21)))
    rows = _rows(database_url, "SELECT alert_type, subject, evidence FROM alerts "
                 "WHERE lot_id = 'L1'")
    assert [(r[0], r[1]) for r in rows] == [(THEFT, "lot:L1")]
    assert rows[0][2]["incident"]["departed_count"] == 15
    sent = _rows(database_url, "SELECT m.event_type FROM webhook_messages m "
                 "JOIN alerts a ON a.id = m.alert_id WHERE a.lot_id = 'L1'")
    assert sent == [("alert.opened",)]


@pytest.mark.integration
async def test_the_same_plate_or_reader_at_two_sites_is_two_alerts(
    database_url: str, api_keys: dict[str, str]
) -> None:
    # (api_keys: the conftest's operators, sites site-1 and site-2, financiers)
    at = datetime.now(UTC)
    offline = AlertBody(action="raise", alert_type="tamper.reader_offline",
                        subject="reader:dock-1", severity="major", explanation="silent")
    truck = AlertBody(action="raise", alert_type="theft.unauthorized_vehicle",
                      subject="vehicle:ZZ9", severity="critical", explanation="unknown truck")
    for site, gateway in (("site-1", "gw-1"), ("site-2", "gw-2")):
        await _batch(database_url, _accepted(MessageType.ALERT, offline, at=at, site=site,
                                             gateway=gateway),
                     _accepted(MessageType.ALERT, truck, at=at, site=site, gateway=gateway))
    rows = _rows(database_url, "SELECT site_id, alert_type, subject, count FROM alerts "
                 "ORDER BY site_id, alert_type")
    assert rows == [("site-1", "tamper.reader_offline", "reader:dock-1", 1),
                    ("site-1", "theft.unauthorized_vehicle", "vehicle:ZZ9", 1),
                    ("site-2", "tamper.reader_offline", "reader:dock-1", 1),
                    ("site-2", "theft.unauthorized_vehicle", "vehicle:ZZ9", 1)]
    # Clearing one site's reader leaves the other's open.
    back = AlertBody(action="clear", alert_type="tamper.reader_offline",
                     subject="reader:dock-1", severity="major", explanation="back")
    await _batch(database_url, _accepted(MessageType.ALERT, back, at=at, site="site-2",
                                         gateway="gw-2"))
    assert _rows(database_url, "SELECT site_id, state FROM alerts WHERE alert_type = "
                 "'tamper.reader_offline' ORDER BY site_id") == [("site-1", "open"),
                                                                 ("site-2", "resolved")]
    # An incident at site-1 folds site-1's truck only, and not another lot's weight drop.
    pledge_lot(database_url)
    pledge_lot(database_url, lot="L2")
    weight = AlertBody(action="raise", alert_type="theft.weight_drop", subject="scale:bay-2",
                       severity="critical", lot="L2", explanation="L2 lighter")
    await _batch(database_url, _accepted(MessageType.ALERT, weight, at=at))
    await _batch(database_url, _accepted(MessageType.ALERT, _edge_incident(["CCCC0001",
                                                                           "CCCC0002"]), at=at))
    assert _rows(database_url, "SELECT site_id, state FROM alerts WHERE alert_type = "
                 "'theft.unauthorized_vehicle' ORDER BY site_id") == [("site-1", "resolved"),
                                                                      ("site-2", "open")]
    assert _rows(database_url, "SELECT state FROM alerts WHERE alert_type = "
                 "'theft.weight_drop'") == [("open",)]


@pytest.mark.integration
async def test_a_folded_alert_the_financier_never_saw_opened_is_resolved_in_silence(
    database_url: str, api_keys: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    # Lot L1's scale dropped before its financier registered a webhook endpoint: no
    # alert.opened went out. Then tags leave and the incident folds the weight drop in: the
    # financier hears of the incident, and nothing of an alert it never saw opened.
    pledge_lot(database_url)
    pledge_lot(database_url, lot="L2")
    at = datetime.now(UTC) - timedelta(minutes=2)

    def weight(lot: str) -> AlertBody:
        return AlertBody(action="raise", alert_type="theft.weight_drop", subject=f"scale:{lot}",
                         severity="critical", lot=lot, explanation=f"{lot} lighter")

    await _batch(database_url, _accepted(MessageType.ALERT, weight("L1"), at=at))
    await _endpoint(api_client, api_keys["bank-a"])
    await _batch(database_url, _accepted(MessageType.ALERT, _edge_incident(
        ["DDDD0001", "DDDD0002"]), at=at + timedelta(seconds=30)))
    # L2's drop came after the endpoint: the financier saw it open, and hears it end.
    await _batch(database_url, _accepted(MessageType.ALERT, weight("L2"), at=at))
    await _batch(database_url, _accepted(MessageType.ALERT, _edge_incident(
        ["DDDD0003", "DDDD0004"], lot="L2"), at=at + timedelta(seconds=30)))
    folded = _rows(database_url, "SELECT lot_id, state, resolved_by LIKE 'incident:%%' "
                   "FROM alerts WHERE alert_type = 'theft.weight_drop' ORDER BY lot_id")
    assert folded == [("L1", "resolved", True), ("L2", "resolved", True)]
    sent = _rows(database_url, "SELECT a.lot_id, a.alert_type, m.event_type FROM "
                 "webhook_messages m JOIN alerts a ON a.id = m.alert_id ORDER BY m.seq")
    # (the fold is written before the incident's opening, whose payload then holds it)
    assert sent == [("L1", THEFT, "alert.opened"),
                    ("L2", "theft.weight_drop", "alert.opened"),
                    ("L2", "theft.weight_drop", "alert.resolved"),
                    ("L2", THEFT, "alert.opened")]
