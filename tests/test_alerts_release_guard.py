"""Pledged goods that move without a release are a fact of the lot's departure incident
(theft.unreleased_departure on the lot): it opens the incident when corroborated on its own
(two tags gone, or goods read at another site) and counts over the whole incident."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from cloud.alerting.release_guard import (
    PledgedTag,
    TagMovement,
    UnreleasedMovement,
    unreleased_movements,
)
from cloud.alerting.stage import AlertingStage
from cloud.ingest.decode import Accepted
from cloud.ingest.store import write_accepted
from contract import MessageType, events_topic, open_envelope, seal, validate_body
from tests.receipts_fixtures import EPCS, auth, issue, make_lot, operator_key, see_tags, world

__all__ = ["operator_key", "world"]  # fixtures used by name

STAGE = AlertingStage()

PLEDGED = {
    "E1": PledgedTag("WR-1", "LOT-1", "site-1", "bank-a"),
    "E2": PledgedTag("WR-1", "LOT-1", "site-1", "bank-a"),
    "E3": PledgedTag("WR-2", "LOT-2", "site-1", "bank-b"),
}


def test_only_pledged_tags_that_leave_count_grouped_per_receipt() -> None:
    found = unreleased_movements(
        [
            TagMovement("E1", "missing", None),
            TagMovement("E2", "seen_elsewhere", "site-9"),
            TagMovement("E3", "seen_elsewhere", "site-1"),  # read at home: fine
            TagMovement("E9", "missing", None),  # not pledged (released or never)
        ],
        PLEDGED,
    )
    assert found == [
        UnreleasedMovement("WR-1", "LOT-1", "site-1", "bank-a", ("E1", "E2"), ("site-9",))
    ]
    assert unreleased_movements([TagMovement("E9", "missing", None)], PLEDGED) == []


pytestmark = pytest.mark.integration

KEY = Ed25519PrivateKey.generate()
SEQ = iter(range(1, 1000))


def accepted(site: str, gateway: str, msg_type: MessageType, body: dict[str, Any]) -> Accepted:
    raw = seal(
        KEY,
        site=site,
        gateway=gateway,
        seq=next(SEQ),
        type=str(msg_type),
        body=body,
        observed_at=datetime.now(UTC),
    )
    envelope = open_envelope(raw)
    return Accepted(
        envelope, validate_body(envelope.type, envelope.body), events_topic(site, gateway), raw
    )


def missing(epc: str) -> Accepted:
    body = {
        "lot": "LOT-1",
        "epc": epc,
        "state": "missing",
        "previous": "present",
        "last_seen_us": 1_764_136_000_000_000,  # wire times lie in 2000..2100
    }
    return accepted("site-1", "gw-1", MessageType.PRESENCE_CHANGE, body)


async def alerts_of(database_url: str) -> list[tuple[Any, ...]]:
    async with await AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT alert_type, subject, lot_id, count, evidence FROM alerts ORDER BY id"
        )
        return await cur.fetchall()


async def test_unreleased_movements_open_and_grow_the_lots_incident_not_after_approval(
    api_client: httpx.AsyncClient,
    world: dict[str, str],
    database_url: str,
    operator_key: Any,
    tmp_path: Path,
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup = auth(world["supervisor"])
    # Not pledged yet: a tag going missing is the RFID rules' business, not this alert.
    async with await AsyncConnection.connect(database_url) as conn:
        await write_accepted(conn, [missing(EPCS[0])], STAGE)
        await conn.commit()
    assert await alerts_of(database_url) == []

    await api_client.post("/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup)
    rid = (
        await api_client.post(
            "/api/v1/receipts/WR-1/releases",
            json={"quantity": "10", "pieces": 1, "tags": [EPCS[1]]},
            headers=sup,
        )
    ).json()["id"]
    await api_client.post(
        f"/api/v1/receipts/WR-1/releases/{rid}/approve", headers=auth(world["bank-a"])
    )
    async with await AsyncConnection.connect(database_url) as conn:
        # The released tag leaves: fine. One pledged tag alone: the gateway's absence window
        # decides, not this guard.
        await write_accepted(conn, [missing(EPCS[1])], STAGE)
        await write_accepted(conn, [missing(EPCS[5])], STAGE)
        await conn.commit()
        assert await alerts_of(database_url) == []
        # Two pledged tags leave together: the lot's incident opens.
        await write_accepted(conn, [missing(EPCS[2]), missing(EPCS[3])], STAGE)
        # ...and a pledged tag turns up at the other operator's site.
        reads = {"reader": "dock", "reads": [[EPCS[4], 1, -5500, 1_795_000_000_000_000]]}
        await write_accepted(
            conn, [accepted("site-2", "gw-2", MessageType.TAG_READS, reads)], STAGE)
        await conn.commit()
    rows = await alerts_of(database_url)
    assert len(rows) == 1
    alert_type, subject, lot_id, count, evidence = rows[0]
    assert (alert_type, subject, lot_id, count) == (
        "theft.unreleased_departure",
        "lot:LOT-1",
        "LOT-1",
        2,
    )
    # Counted over the incident, not the last batch: the tags gone alone before (one before
    # the pledge, still missing) are in it.
    assert evidence["incident"]["departed_count"] == 5
    assert evidence["receipts"]["WR-1"] == {
        "pledgee": "bank-a", "epcs": sorted([EPCS[0], *EPCS[2:6]]), "seen_at": ["site-2"]}
    assert evidence["pledgee"] == "bank-a"
    with psycopg.connect(database_url) as conn:
        explanation = conn.execute("SELECT explanation FROM alerts").fetchone()
    assert explanation is not None and explanation[0].startswith("5 tags pledged to bank-a")
    # The pledgee sees the alert on its lot.
    seen = await api_client.get("/api/v1/alerts", headers=auth(world["bank-a"]))
    assert [a["alert_type"] for a in seen.json()] == ["theft.unreleased_departure"]
    with psycopg.connect(database_url) as conn:
        history = conn.execute("SELECT action FROM alert_history ORDER BY id").fetchall()
    assert history == [("opened",), ("repeated",), ("escalated",)]


async def test_a_release_naming_no_tags_takes_its_pieces_and_only_the_overrun_is_theft(
    api_client: httpx.AsyncClient,
    world: dict[str, str],
    database_url: str,
    operator_key: Any,
    tmp_path: Path,
) -> None:
    # 3 pieces approved without naming tags; 5 tags leave, in two batches: the excess of 2 is
    # the incident, counted over both batches.
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup = auth(world["supervisor"])
    await api_client.post("/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup)
    request = await api_client.post("/api/v1/receipts/WR-1/releases",
                                    json={"quantity": "30", "pieces": 3}, headers=sup)
    assert request.status_code == 201, request.text
    approved = await api_client.post(
        f"/api/v1/receipts/WR-1/releases/{request.json()['id']}/approve",
        headers=auth(world["bank-a"]))
    assert approved.status_code == 200, approved.text
    async with await AsyncConnection.connect(database_url) as conn:
        await write_accepted(conn, [missing(e) for e in EPCS[:3]], STAGE)
        await conn.commit()
        assert await alerts_of(database_url) == []  # the release's pieces
        await write_accepted(conn, [missing(e) for e in EPCS[3:5]], STAGE)
        await conn.commit()
    [(alert_type, subject, _, _, evidence)] = await alerts_of(database_url)
    assert (alert_type, subject) == ("theft.unreleased_departure", "lot:LOT-1")
    assert evidence["incident"]["departed_count"] == 2
    assert evidence["receipts"]["WR-1"]["epcs"] == sorted(EPCS[:5])
