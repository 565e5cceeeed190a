"""Webhooks end to end: alert change -> outbox -> worker -> a real HTTP receiver on 127.0.0.1.

The worker's clock is a value we move, so a day of retries takes milliseconds; PostgreSQL,
HTTP and the receiver are real.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection

from cloud import alerts
from cloud.apikeys import Principal
from cloud.webhooks import service, signing
from cloud.webhooks.worker import WebhookSender
from tests.webhooks_fixtures import Answer, Receiver, pledge_lot, receiving


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def sender(database_url: str, clock: Clock, **kw: Any) -> WebhookSender:
    return WebhookSender(database_url, allow=["127.0.0.1"], clock=clock, rng=random.Random(3),
                         **kw)


async def make_endpoint(api: httpx.AsyncClient, key: str, url: str, **extra: Any
                        ) -> dict[str, Any]:
    r = await api.post("/api/v1/webhooks/endpoints", json={"url": url, **extra},
                       headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def raise_one(database_url: str, subject: str, lot: str | None = "L1",
                    alert_type: str = "theft.tag_missing") -> int:
    async with await AsyncConnection.connect(database_url) as conn:
        alert_id, _ = await alerts.raise_alert(
            conn, alert_type=alert_type, subject=subject, severity="critical",
            site_id="site-1", lot_id=lot, explanation=f"{subject} gone", evidence={},
            seen_at=datetime.now(UTC), actor="test")
        await conn.commit()
    return alert_id


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Payloads the receiver accepted, each checked against the secret."""
    out = []
    for r in receiver.received:
        if 200 <= r.status < 300:
            signing.verify(secret, r.headers, r.body, now=int(r.headers["webhook-timestamp"]))
            out.append({**json.loads(r.body), "_id": r.headers["webhook-id"]})
    return out


@pytest.fixture
def bank(database_url: str, api_keys: dict[str, str]) -> dict[str, str]:
    pledge_lot(database_url)
    return api_keys


async def test_failures_then_success_deliver_every_alert_once_in_order_signed(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with receiving(lambda n: Answer(500 if n < 3 else 200)) as rx:
        ep = await make_endpoint(api_client, bank["bank-a"], rx.url)
        for i in range(3):
            await raise_one(database_url, f"lot:L1-{i}")
        worker = sender(database_url, clock)
        for _ in range(10):
            await worker.deliver_due()
            clock.advance(hours=1)
        got = verified(rx, ep["secret"])
    assert [g["data"]["alert"]["subject"] for g in got] == ["lot:L1-0", "lot:L1-1", "lot:L1-2"]
    assert all(g["type"] == "alert.opened" for g in got)
    assert len({g["_id"] for g in got}) == 3
    # Retries repeat the same webhook-id; nothing else is sent twice.
    first_ids = [r.headers["webhook-id"] for r in rx.received[:3]]
    assert len(set(first_ids)) == 1 and first_ids[0] == got[0]["_id"]
    r = await api_client.get(f"/api/v1/webhooks/endpoints/{ep['id']}/deliveries",
                             headers={"Authorization": f"Bearer {bank['bank-a']}"})
    rows = r.json()
    assert {d["state"] for d in rows} == {"delivered"}
    detail = (await api_client.get(f"/api/v1/webhooks/deliveries/{rows[-1]['id']}",
                                   headers={"Authorization": f"Bearer {bank['bank-a']}"})).json()
    assert [a["status"] for a in detail["attempts_log"]] == [500, 500, 500, 200]


async def test_429_retry_after_is_waited_out(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with receiving(lambda n: Answer(429, (("Retry-After", "120"),)) if n == 0
                         else Answer(200)) as rx:
        await make_endpoint(api_client, bank["bank-a"], rx.url)
        await raise_one(database_url, "lot:L1")
        worker = sender(database_url, clock)
        assert await worker.deliver_due() == 1
        clock.advance(seconds=100)
        assert await worker.deliver_due() == 0
        clock.advance(seconds=21)
        assert await worker.deliver_due() == 1
    assert [r.status for r in rx.received] == [429, 200]


async def test_a_receiver_that_hangs_times_out_and_is_retried(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with receiving(lambda n: Answer(200, delay_s=3.0 if n == 0 else 0.0)) as rx:
        await make_endpoint(api_client, bank["bank-a"], rx.url)
        await raise_one(database_url, "lot:L1")
        worker = sender(database_url, clock, timeout_s=0.5)
        await worker.deliver_due()
        with psycopg.connect(database_url) as c:
            err = c.execute("SELECT last_error FROM webhook_deliveries").fetchone()
        assert err is not None and "no answer within 0.5 s" in err[0]
        clock.advance(minutes=5)
        await worker.deliver_due()
    assert worker.sent == 1


async def test_410_disables_the_endpoint_tells_the_operator_and_keeps_the_rest(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with receiving(lambda n: Answer(410) if n == 0 else Answer(200)) as rx:
        ep = await make_endpoint(api_client, bank["bank-a"], rx.url)
        await raise_one(database_url, "lot:L1-a")
        await raise_one(database_url, "lot:L1-b")
        worker = sender(database_url, clock)
        await worker.deliver_due()
        clock.advance(hours=2)
        await worker.deliver_due()
        assert len(rx.received) == 1
        admin = {"Authorization": f"Bearer {bank['admin']}"}
        told = (await api_client.get("/api/v1/alerts?state=open", headers=admin)).json()
        assert [a["subject"] for a in told
                if a["alert_type"] == "webhook.endpoint_disabled"] == [f"webhook:{ep['id']}"]
        r = await api_client.patch(f"/api/v1/webhooks/endpoints/{ep['id']}",
                                   json={"enabled": True},
                                   headers={"Authorization": f"Bearer {bank['bank-a']}"})
        assert r.json()["enabled"] is True
        await worker.deliver_due()
        got = verified(rx, ep["secret"])
    assert [g["data"]["alert"]["subject"] for g in got] == ["lot:L1-a", "lot:L1-b"]


async def test_a_day_long_outage_disables_then_everything_arrives_once_after_it(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    rx = Receiver(lambda n: Answer(200))
    await rx.start()
    url = rx.url
    await rx.stop()  # the receiver is down: connections are refused
    ep = await make_endpoint(api_client, bank["bank-a"], url)
    for i in range(4):
        await raise_one(database_url, f"lot:L1-{i}")
    worker = sender(database_url, clock)
    attempts = 0
    while clock.now < datetime.now(UTC) + timedelta(hours=30):
        attempts += await worker.deliver_due()
        clock.advance(minutes=20)
    with psycopg.connect(database_url) as c:
        enabled, reason = c.execute("SELECT enabled, disabled_reason FROM webhook_endpoints"
                                    ).fetchone()  # type: ignore[misc]
        states = [r[0] for r in c.execute("SELECT state FROM webhook_deliveries")]
        told = c.execute("SELECT explanation FROM alerts WHERE alert_type = "
                         "'webhook.endpoint_disabled'").fetchone()
    assert not enabled and "failing since" in reason
    assert told is not None and ep["id"] in told[0]
    assert states == ["pending"] * 4
    assert 20 < attempts < 80  # backoff over a day, not a hammering
    rx2 = Receiver(lambda n: Answer(200), port=rx.port)
    await rx2.start()
    try:
        await api_client.patch(f"/api/v1/webhooks/endpoints/{ep['id']}", json={"enabled": True},
                               headers={"Authorization": f"Bearer {bank['bank-a']}"})
        await worker.deliver_due()
    finally:
        await rx2.stop()
    got = verified(rx2, ep["secret"])
    assert [g["data"]["alert"]["subject"] for g in got] == [f"lot:L1-{i}" for i in range(4)]


async def test_redirects_are_not_followed_and_private_targets_need_the_allow_list(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with receiving() as target, receiving(
        lambda n: Answer(302, (("Location", "http://127.0.0.1:1/x"),))
    ) as redirector:
        await make_endpoint(api_client, bank["bank-a"], redirector.url)
        await raise_one(database_url, "lot:L1")
        await sender(database_url, clock).deliver_due()
        assert len(redirector.received) == 1 and target.received == []
        strict = WebhookSender(database_url, allow=[], clock=clock)
        clock.advance(hours=2)
        await strict.deliver_due()
        assert len(redirector.received) == 1
    with psycopg.connect(database_url) as c:
        err = c.execute("SELECT error FROM webhook_attempts ORDER BY id DESC LIMIT 1").fetchone()
    assert err is not None and "non-public address 127.0.0.1" in err[0]


async def test_the_outbox_row_commits_or_rolls_back_with_the_alert(
    database_url: str, bank: dict[str, str]
) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        await service.create_endpoint(
            conn, Principal("k", "financier", None, "bank-a", None), url="http://127.0.0.1:9/x",
            event_types=[], lot_ids=None, receipt_numbers=None, financier_id=None)
        await conn.commit()
    async with await AsyncConnection.connect(database_url) as conn:
        await alerts.raise_alert(conn, alert_type="theft.tag_missing", subject="lot:L1",
                                 severity="critical", site_id="site-1", lot_id="L1",
                                 explanation="x", evidence={}, seen_at=datetime.now(UTC),
                                 actor="t")
        await conn.rollback()
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT count(*) FROM webhook_messages").fetchone() == (0,)
    await raise_one(database_url, "lot:L1")
    await raise_one(database_url, "lot:L1")  # a repeat counts; it does not notify again
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT count(*) FROM webhook_deliveries").fetchone() == (1,)
        assert c.execute("SELECT count FROM alerts").fetchone() == (2,)


async def test_other_financiers_and_filtered_lots_hear_nothing(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    pledge_lot(database_url, "L2", "bank-b")
    b = await make_endpoint(api_client, bank["bank-b"], "http://127.0.0.1:9/b")
    a = await make_endpoint(api_client, bank["bank-a"], "http://127.0.0.1:9/a",
                            lot_ids=["L9"])
    await raise_one(database_url, "lot:L1", lot="L1")
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT count(*) FROM webhook_deliveries").fetchone() == (0,)
    await raise_one(database_url, "lot:L2", lot="L2")
    with psycopg.connect(database_url) as c:
        rows = c.execute("SELECT endpoint_id FROM webhook_deliveries").fetchall()
    assert rows == [(b["id"],)] and a["id"] != b["id"]
    r = await api_client.get(f"/api/v1/webhooks/endpoints/{b['id']}/deliveries",
                             headers={"Authorization": f"Bearer {bank['bank-a']}"})
    assert r.status_code == 404


async def test_replay_and_secret_rotation_through_the_api(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    auth = {"Authorization": f"Bearer {bank['bank-a']}"}
    async with receiving() as rx:
        ep = await make_endpoint(api_client, bank["bank-a"], rx.url)
        await raise_one(database_url, "lot:L1")
        worker = sender(database_url, clock)
        await worker.deliver_due()
        rotated = (await api_client.post(f"/api/v1/webhooks/endpoints/{ep['id']}/rotate-secret",
                                         json={"overlap_s": 3600}, headers=auth)).json()
        [delivery] = (await api_client.get(
            f"/api/v1/webhooks/endpoints/{ep['id']}/deliveries", headers=auth)).json()
        r = await api_client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay",
                                  headers=auth)
        assert r.status_code == 201
        await worker.deliver_due()
        clock.advance(hours=2)  # the old secret's overlap is over
        await raise_one(database_url, "lot:L1-later")
        await worker.deliver_due()
    first, replayed, later = rx.received
    assert replayed.headers["webhook-id"] == first.headers["webhook-id"]
    assert len(replayed.headers["webhook-signature"].split()) == 2
    for secret in (ep["secret"], rotated["secret"]):
        signing.verify(secret, replayed.headers, replayed.body,
                       now=int(replayed.headers["webhook-timestamp"]))
    assert len(later.headers["webhook-signature"].split()) == 1
    signing.verify(rotated["secret"], later.headers, later.body,
                   now=int(later.headers["webhook-timestamp"]))


async def test_two_workers_share_the_outbox_without_sending_anything_twice(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with receiving(lambda n: Answer(200, delay_s=0.02)) as rx:
        await make_endpoint(api_client, bank["bank-a"], rx.url)
        await make_endpoint(api_client, bank["bank-a"], rx.url.replace("/hooks", "/other"))
        for i in range(6):
            await raise_one(database_url, f"lot:L1-{i}")
        w1, w2 = sender(database_url, clock), sender(database_url, clock)
        await asyncio.gather(w1.deliver_due(), w2.deliver_due())
    assert w1.sent + w2.sent == 12
    per_path: dict[str, list[str]] = {}
    for r in rx.received:
        per_path.setdefault(r.path, []).append(json.loads(r.body)["data"]["alert"]["subject"])
    assert per_path == {p: [f"lot:L1-{i}" for i in range(6)] for p in ("/hooks", "/other")}


async def test_the_connection_goes_to_the_address_that_was_checked(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    # A rebinding name: the check sees an allowed address, any later lookup the metadata service.
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["169.254.169.254"]

    clock = Clock()
    async with receiving() as target:
        url = f"http://rebind.invalid:{target.port}/hooks"  # .invalid never resolves for real
        await make_endpoint(api_client, bank["bank-a"], url)
        await raise_one(database_url, "lot:L1")
        await sender(database_url, clock, resolver=rebinding).deliver_due()
    assert lookups == ["rebind.invalid"]
    assert [(r.path, r.headers["host"]) for r in target.received] == [
        ("/hooks", f"rebind.invalid:{target.port}")]


async def test_an_endpoint_hears_only_its_event_types_and_receipts(
    database_url: str, bank: dict[str, str], api_client: httpx.AsyncClient
) -> None:
    resolved = await make_endpoint(api_client, bank["bank-a"], "http://127.0.0.1:9/r",
                                   event_types=["alert.resolved"])
    await make_endpoint(api_client, bank["bank-a"], "http://127.0.0.1:9/w",
                        receipt_numbers=["WR-9"])  # L1 stands behind no such receipt
    await raise_one(database_url, "lot:L1")
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT count(*) FROM webhook_deliveries").fetchone() == (0,)
    async with await AsyncConnection.connect(database_url) as conn:
        await alerts.clear_alert(conn, alert_type="theft.tag_missing", subject="lot:L1",
                                 actor="test", comment="back")
        await conn.commit()
    with psycopg.connect(database_url) as c:
        rows = c.execute("SELECT d.endpoint_id, m.event_type FROM webhook_deliveries d "
                         "JOIN webhook_messages m ON m.seq = d.message_seq").fetchall()
    assert rows == [(resolved["id"], "alert.resolved")]
