"""The live feed: cursor order under concurrent commits, resuming without loss or repeats,
visibility per principal, and clear refusals. Real PostgreSQL, real API socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from psycopg import AsyncConnection

from cloud import live
from tests.conftest import free_port
from tests.map_fixtures import running_api


def add_lot(database_url: str, lot: str, bank: str, site: str = "site-1") -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lots (id, site_id, name, financier_id) VALUES (%s, %s, %s, %s)",
                     (lot, site, lot, bank))


def raise_alert(database_url: str, subject: str, lot: str | None, site: str = "site-1") -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO alerts (alert_type, subject, severity, site_id, lot_id, explanation, "
            "first_seen_at, last_seen_at) VALUES ('theft.tag_missing', %s, 'critical', %s, %s, "
            "'tags gone', now(), now()) RETURNING id", (subject, site, lot)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def api_url(database_url: str, api_keys: dict[str, str]) -> AsyncIterator[str]:
    async with running_api(database_url, free_port()) as url:
        yield url


async def open_feed(url: str, key: str, after: str | None) -> Any:
    ws = await websockets.connect(url.replace("http", "ws") + "/api/v1/live")
    await ws.send(json.dumps({"key": key, "after": after}))
    return ws


async def frames_until(ws: Any, want: int, timeout_s: float = 5) -> list[dict[str, Any]]:
    """Events from ``events`` frames until ``want`` arrived; fails on a timeout."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while len(events) < want:
            frame = json.loads(await ws.recv())
            if frame["type"] == "events":
                events += frame["events"]
    return events


@pytest.mark.integration
async def test_a_row_committed_late_is_held_back_until_nothing_can_precede_it(
    database_url: str, api_keys: dict[str, str]
) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as reader, \
            await AsyncConnection.connect(database_url) as early, \
            await AsyncConnection.connect(database_url) as late:
        start = await live.head(reader)
        # ``early`` takes its transaction id and row id first, but commits last.
        await early.execute("INSERT INTO alerts (alert_type, subject, severity, explanation, "
                            "first_seen_at, last_seen_at) VALUES ('x', 'early', 'minor', '', "
                            "now(), now())")
        await late.execute("INSERT INTO alerts (alert_type, subject, severity, explanation, "
                           "first_seen_at, last_seen_at) VALUES ('x', 'late', 'minor', '', "
                           "now(), now())")
        await late.commit()
        # An id-only cursor would hand out 'late' now and step over 'early' forever after.
        assert await live.read_after(reader, start) == []
        await early.commit()
        events = await live.read_after(reader, start)
    assert [e.payload["subject"] for e in events] == ["early", "late"]
    assert events[0].cursor < events[1].cursor


@pytest.mark.integration
async def test_a_reconnecting_browser_gets_exactly_what_it_missed(
    database_url: str, api_keys: dict[str, str], api_url: str
) -> None:
    add_lot(database_url, "LOT-A", "bank-a")
    ws = await open_feed(api_url, api_keys["supervisor"], None)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello" and hello["role"] == "supervisor"
    first = raise_alert(database_url, "lot:LOT-A", "LOT-A")
    got = await frames_until(ws, 1)
    assert [e["payload"]["id"] for e in got] == [first]
    cursor = got[-1]["cursor"]
    await ws.close()

    missed = [raise_alert(database_url, f"lot:LOT-A/{i}", "LOT-A") for i in range(5)]
    ws = await open_feed(api_url, api_keys["supervisor"], cursor)
    assert json.loads(await ws.recv())["cursor"] == cursor
    after = raise_alert(database_url, "lot:LOT-A/after", "LOT-A")
    got = await frames_until(ws, 6)
    assert [e["payload"]["id"] for e in got] == [*missed, after]  # in order, none twice
    with pytest.raises(TimeoutError):
        await frames_until(ws, 1, timeout_s=0.5)
    await ws.close()


@pytest.mark.integration
async def test_each_principal_receives_only_what_it_may_see(
    database_url: str, api_keys: dict[str, str], api_url: str
) -> None:
    add_lot(database_url, "LOT-A", "bank-a")
    add_lot(database_url, "LOT-B", "bank-b")
    feeds = {who: await open_feed(api_url, api_keys[who], None)
             for who in ("admin", "supervisor", "supervisor-2", "bank-a", "bank-b")}
    for ws in feeds.values():
        assert json.loads(await ws.recv())["type"] == "hello"
    a = raise_alert(database_url, "lot:LOT-A", "LOT-A")
    b = raise_alert(database_url, "lot:LOT-B", "LOT-B")
    site = raise_alert(database_url, "reader:r1", None)
    other_site = raise_alert(database_url, "reader:r9", None, site="site-2")
    seen = {}
    for who, want in (("admin", 4), ("supervisor", 3), ("supervisor-2", 1), ("bank-a", 1),
                      ("bank-b", 1)):
        seen[who] = [e["payload"]["id"] for e in await frames_until(feeds[who], want)]
    assert seen == {"admin": [a, b, site, other_site], "supervisor": [a, b, site],
                    "supervisor-2": [other_site], "bank-a": [a], "bank-b": [b]}
    for who, ws in feeds.items():
        with pytest.raises(TimeoutError):
            await frames_until(ws, 1, timeout_s=0.3)  # nothing more, for anyone
        await ws.close()
        assert who


@pytest.mark.integration
@pytest.mark.parametrize(("hello", "code", "reason"), [
    ({"key": "pw_nope_nope", "after": None}, 4401, "unknown or revoked API key"),
    ({"after": None}, 4400, "first frame"),
    ({"key": "KEY", "after": "12"}, 4400, "is not <tx>-<id>"),
])
async def test_a_bad_hello_is_refused_with_the_reason(
    api_url: str, api_keys: dict[str, str], hello: dict[str, Any], code: int, reason: str
) -> None:
    if hello.get("key") == "KEY":
        hello["key"] = api_keys["admin"]
    async with websockets.connect(api_url.replace("http", "ws") + "/api/v1/live") as ws:
        await ws.send(json.dumps(hello))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code
    assert reason in closed.value.rcvd.reason


@pytest.mark.integration
async def test_a_cursor_older_than_the_feed_keeps_asks_the_page_to_reload(
    database_url: str, api_keys: dict[str, str], api_url: str
) -> None:
    raise_alert(database_url, "reader:r1", None)
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await asyncio.sleep(0.05)
        assert await live.prune(conn, keep_s=0) == 1
    ws = await open_feed(api_url, api_keys["admin"], "1-1")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409


def _event(n: int, *, site: str | None = "s1", financier: str | None = None) -> live.LiveEvent:
    return live.LiveEvent(live.Cursor(10, n), "alert", datetime.now(UTC), site, None, financier,
                          {"n": n})


def test_audiences_follow_the_scope_rules() -> None:
    admin = live.Audience("admin")
    supervisor = live.Audience("supervisor", frozenset({"s1"}))
    bank = live.Audience("financier", financier_id="bank-a")
    gateway = live.Audience("gateway")
    ours, theirs, elsewhere = _event(1, financier="bank-a"), _event(2, financier="bank-b"), \
        _event(3, site="s2")
    assert [admin.sees(e) for e in (ours, theirs, elsewhere)] == [True, True, True]
    assert [supervisor.sees(e) for e in (ours, theirs, elsewhere)] == [True, True, False]
    assert [bank.sees(e) for e in (ours, theirs, elsewhere)] == [True, False, False]
    assert not gateway.sees(ours)
    assert not live.Audience("financier", financier_id=None).sees(_event(4))


def test_a_batch_skips_what_the_browser_already_has() -> None:
    batch = live.Batch([_event(1), _event(2), _event(3)])
    audience = live.Audience("admin")
    full = json.loads(batch.encoded_for(audience, live.Cursor(0, 0)) or "{}")
    assert [e["payload"]["n"] for e in full["events"]] == [1, 2, 3]
    assert full["cursor"] == "10-3"
    tail = json.loads(batch.encoded_for(audience, live.Cursor(10, 2)) or "{}")
    assert [e["payload"]["n"] for e in tail["events"]] == [3]
    assert batch.encoded_for(audience, live.Cursor(10, 3)) is None


@pytest.mark.parametrize("text", ["", "1", "a-1", "1-", "-1-2", "1-2-3"])
def test_a_malformed_cursor_says_what_a_cursor_is(text: str) -> None:
    with pytest.raises(ValueError, match="<tx>-<id>"):
        live.Cursor.parse(text)
    assert live.Cursor.parse("12-34") == live.Cursor(12, 34)


async def test_a_browser_that_falls_behind_is_told_to_resume_instead_of_stalling_the_feed(
) -> None:
    feed = live.LiveFeed("postgresql://unused", max_batches=2)
    with feed.subscribe() as slow, feed.subscribe() as quick:
        for n in range(3):
            batch = live.Batch([_event(n + 1)])
            slow.offer(batch)
            quick.offer(batch)
            if n < 2:
                assert (await quick.next()).last == live.Cursor(10, n + 1)
        with pytest.raises(live.SlowSubscriber):
            await slow.next()
        assert (await quick.next()).last == live.Cursor(10, 3)


def test_evidence_images_are_found_wherever_the_alert_keeps_them() -> None:
    from cloud.map_state import image_refs

    a, b = "a" * 64, "b" * 64
    evidence = {"plate_crop": {"kind": "plate_crop", "sha256": a},
                "frames": [{"kind": "frame", "sha256": b}, {"sha256": "short"}], "n": 3}
    assert image_refs(evidence) == [{"sha256": a, "kind": "plate_crop"},
                                    {"sha256": b, "kind": "frame"}]


@pytest.mark.integration
async def test_revoking_a_key_closes_its_open_socket_within_seconds(
    database_url: str, api_keys: dict[str, str], api_url: str
) -> None:
    add_lot(database_url, "LOT-A", "bank-a")
    ws = await open_feed(api_url, api_keys["bank-a"], None)
    assert json.loads(await ws.recv())["type"] == "hello"
    key_id = api_keys["bank-a"].split("_")[1]
    async with httpx.AsyncClient(base_url=api_url) as api:
        refused = await api.post(f"/api/v1/api-keys/{key_id}/revoke",
                                 headers={"Authorization": f"Bearer {api_keys['supervisor']}"})
        assert refused.status_code == 403
        revoked = await api.post(f"/api/v1/api-keys/{key_id}/revoke",
                                 headers={"Authorization": f"Bearer {api_keys['admin']}"})
        assert revoked.status_code == 204
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(6):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert time.monotonic() - started < 5
        rest = await api.get("/api/v1/sites",
                             headers={"Authorization": f"Bearer {api_keys['bank-a']}"})
        assert rest.status_code == 401
        again = await api.post(f"/api/v1/api-keys/{key_id}/revoke",
                               headers={"Authorization": f"Bearer {api_keys['admin']}"})
        assert again.status_code == 404
