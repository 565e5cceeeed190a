"""JT/T 808 terminals in the adapter shape: a terminal is answered only after its events are
stored, and left unanswered (so it sends again) when storing fails."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from cloud.jt808.feed import Jt808Listen, Jt808Terminals, settle
from cloud.jt808.provisioning import load_terminals
from cloud.jt808.service import Jt808Tracking, tracker_of
from cloud.jt808.session import ProvisionedTerminals, SessionEvent
from contract.jt808 import Result
from firmware_sim.jt808_terminal import Jt808Terminal
from firmware_sim.trackers import drive_out
from geofences.fences import load_site
from ops.supervised import Health
from tests.test_jt808_server import PHONE, prepare_sites, provision_terminal

pytestmark = pytest.mark.integration


async def _tracking(database_url: str) -> tuple[Jt808Tracking, ProvisionedTerminals]:
    prepare_sites(database_url)
    await provision_terminal(database_url)
    fences = load_site("demo-site")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        terminals = await load_terminals(conn, fences.site)
    tracking = Jt808Tracking(database_url, fences, terminals, name="feed",
                             now_us=time.time_ns() // 1000)
    return tracking, ProvisionedTerminals(terminals)


async def test_positions_are_stored_before_the_terminal_is_answered(database_url: str) -> None:
    tracking, authority = await _tracking(database_url)
    health: list[Health] = []
    answered_after_store: list[bool] = []
    stored_batches = 0

    async def store(events: list[SessionEvent]) -> None:
        nonlocal stored_batches
        await tracking.on_events(events, time.time_ns() // 1000)
        stored_batches += 1

    feed = Jt808Terminals(Jt808Listen("127.0.0.1", 0, idle_timeout_s=30), health.append,
                          authority=authority)

    async def consume() -> None:
        async for batch in feed.batches():
            await settle(batch, store)

    fixes = [p.fix for p in drive_out(load_site("demo-site"), time.time_ns() // 1000 - 3.6e9,
                                      device=PHONE)][:5]
    terminal = Jt808Terminal(PHONE)
    async with feed:
        consumer = asyncio.create_task(consume())
        for _ in range(100):
            if feed.owner.online:
                break
            await asyncio.sleep(0.02)
        await terminal.connect("127.0.0.1", feed.port)
        assert await terminal.log_in()
        for fix in fixes:
            before = stored_batches
            serial = await terminal.report(fix)
            assert terminal.log.answers[serial].result == Result.OK
            answered_after_store.append(stored_batches > before)
        await terminal.close()
        consumer.cancel()
    await tracking.close()
    assert answered_after_store == [True] * len(fixes)
    assert [h.online for h in health] == [True]
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM tracker_positions WHERE tracker = %s",
                             (tracker_of(PHONE),)).fetchone()
    assert count == (len(fixes),)


async def test_a_batch_that_cannot_be_stored_leaves_its_terminal_unanswered(
    database_url: str,
) -> None:
    tracking, authority = await _tracking(database_url)

    async def broken_store(events: list[SessionEvent]) -> None:
        raise psycopg.OperationalError("database gone")

    feed = Jt808Terminals(Jt808Listen("127.0.0.1", 0), None, authority=authority)

    async def consume() -> None:
        async for batch in feed.batches():
            await settle(batch, broken_store)

    terminal = Jt808Terminal(PHONE)
    async with feed:
        consumer = asyncio.create_task(consume())
        for _ in range(100):
            if feed.owner.online:
                break
            await asyncio.sleep(0.02)
        await terminal.connect("127.0.0.1", feed.port)
        with pytest.raises((ConnectionError, TimeoutError)):
            await terminal.log_in()  # registration is stored first: never answered
        await terminal.close()
        consumer.cancel()
    await tracking.close()
