"""Edge -> Mosquitto -> ingest -> PostgreSQL, with failures: nothing lost, nothing doubled.

Real broker (the project's config), real database, real agent and ingest over sockets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline_support import running_agent, running_ingest, scalar, wait_until, write_agent_config

from contract import MessageType, PresenceChangeBody, TagReadsBody
from edge.agent import Agent

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
BASE_US = 1_764_136_000_000_000


def emit_reads(agent: Agent, first: int, count: int, per_message: int) -> None:
    """Emit ``count`` readings numbered from ``first`` (each one distinct: its own time)."""
    for start in range(first, first + count, per_message):
        n = min(per_message, first + count - start)
        reads = [(f"{0x3034257BF7194E4000000000 + (i % 500):024X}", 1 + i % 4, -5500, BASE_US + i)
                 for i in range(start, start + n)]
        agent.emit(MessageType.TAG_READS, TagReadsBody(reader="dock-1", reads=reads))


def stored(database_url: str) -> tuple[int, int]:
    total = scalar(database_url, "SELECT count(*) FROM tag_observations")
    distinct = scalar(database_url, "SELECT count(DISTINCT observed_at) FROM tag_observations")
    return int(total), int(distinct)  # type: ignore[arg-type]


async def test_reading_becomes_a_row_with_its_values(
    database_url: str, mqtt_broker, register_gateway, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    gw = register_gateway()
    config = write_agent_config(tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway,
                                key_file=gw.key_file, broker_url=mqtt_broker.url)
    async with running_ingest(database_url, mqtt_broker.url), running_agent(config) as agent:
        agent.emit(MessageType.TAG_READS, TagReadsBody(
            reader="dock-1", reads=[("3034257BF7194E4000003039", 2, -5630, BASE_US)]))
        await wait_until(lambda: stored(database_url)[0] == 1, 20, "the reading to be stored")
        await wait_until(
            lambda: scalar(database_url, "SELECT online FROM gateways WHERE id = %s",
                           (gw.gateway,)) is True, 10, "the gateway to be marked online")
    with __import__("psycopg").connect(database_url) as conn:
        row = conn.execute("SELECT observed_at, gateway_id, reader, epc, antenna, rssi_cdbm "
                           "FROM tag_observations").fetchone()
    assert row == (datetime.fromtimestamp(BASE_US / 1e6, UTC), gw.gateway, "dock-1",
                   "3034257BF7194E4000003039", 2, -5630)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
async def test_broker_down_for_10_s_loses_and_doubles_nothing(
    database_url: str, mqtt_broker, register_gateway, tmp_path: Path,  # type: ignore[no-untyped-def]
    how: signal.Signals,
) -> None:
    """Killed (SIGKILL), the broker loses what it acknowledged but had not saved; the edge's
    outbox still has it and resends what the cloud never confirmed."""
    gw = register_gateway()
    config = write_agent_config(tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway,
                                key_file=gw.key_file, broker_url=mqtt_broker.url)
    async with running_ingest(database_url, mqtt_broker.url), running_agent(config) as agent:
        # 5,000 readings over ~15 s in messages of 25; the broker is down from 2 s to 12 s.
        for second in range(15):
            emit_reads(agent, second * 334, min(334, 5000 - second * 334), 25)
            if second == 2:
                mqtt_broker.stop(how)
            if second == 12:
                mqtt_broker.start()
            await asyncio.sleep(1)
        assert agent.publisher.stats.reconnects >= 1
        # Messages the restarted broker lost (it does not restore a shared subscription that is
        # offline) are resent once the cloud confirms later ones without them.
        await wait_until(lambda: stored(database_url)[0] >= 5000, 90, "5,000 readings")
        await wait_until(lambda: agent.outbox.depth == 0, 30, "every message confirmed")
        await asyncio.sleep(1)  # anything doubled would arrive now
    assert stored(database_url) == (5000, 5000)


async def test_ingest_sigkilled_mid_stream_loses_and_doubles_nothing(
    database_url: str, mqtt_broker, register_gateway, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """Also the paused-subscriber case: 1,500 messages wait in the broker for the dead ingest,
    more than Mosquitto's default queue limit of 1,000 would keep."""
    gw = register_gateway()
    config = write_agent_config(tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway,
                                key_file=gw.key_file, broker_url=mqtt_broker.url)
    env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": mqtt_broker.url}
    command = [sys.executable, "-m", "cloud", "ingest",
               "--client-id", "ingest-killed", "--metrics-port", "0"]
    log = (tmp_path / "ingest.log").open("ab")

    def start_ingest() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)

    ingest = start_ingest()
    # Subscribed first, as in any deployment: a broker keeps nothing for a subscriber that has
    # never existed.
    await wait_until(lambda: "ingest subscribed" in (tmp_path / "ingest.log").read_text(), 30,
                     "ingest to subscribe")
    try:
        async with running_agent(config) as agent:
            emit_reads(agent, 0, 2000, 10)
            await wait_until(lambda: stored(database_url)[0] > 200, 30, "ingest to start storing")
            os.kill(ingest.pid, signal.SIGKILL)  # mid-stream: batches in flight, unacked
            ingest.wait()
            emit_reads(agent, 2000, 15_000, 10)  # 1,500 messages while nobody consumes
            # The broker took everything; the edge keeps it until the cloud confirms.
            await wait_until(
                lambda: agent.outbox.counts()["awaiting_confirmation"] == agent.outbox.depth,
                60, "the broker to acknowledge everything")
            assert agent.outbox.depth >= 1500
            ingest = start_ingest()
            await wait_until(lambda: stored(database_url)[0] >= 17_000, 90, "17,000 readings")
            await wait_until(lambda: agent.outbox.depth == 0, 30, "every message confirmed")
            await asyncio.sleep(1.5)
    finally:
        ingest.kill()
        ingest.wait()
    assert stored(database_url) == (17_000, 17_000)
    assert "dropped" not in mqtt_broker.log().lower()


def emit_departures(agent: Agent, first: int, count: int) -> None:
    """``count`` presence changes (events), each a tag of its own."""
    for n in range(first, first + count):
        agent.emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
            lot="L1", epc=f"BEEF{n:08X}", state="missing", previous="present",
            last_seen_us=None))


def stored_departures(database_url: str) -> tuple[int, int]:
    total = scalar(database_url, "SELECT count(*) FROM presence_changes")
    distinct = scalar(database_url, "SELECT count(DISTINCT epc) FROM presence_changes")
    return int(total), int(distinct)  # type: ignore[arg-type]


async def test_events_and_bulk_through_a_killed_ingest_lose_and_double_nothing(
    database_url: str, mqtt_broker, register_gateway, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """Events go on their own connection ahead of queued bulk, and are acknowledged only after
    every earlier message is committed: a kill in between loses and doubles neither kind."""
    gw = register_gateway()
    config = write_agent_config(tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway,
                                key_file=gw.key_file, broker_url=mqtt_broker.url)
    env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": mqtt_broker.url}
    command = [sys.executable, "-m", "cloud", "ingest",
               "--client-id", "ingest-lanes", "--metrics-port", "0"]
    log = (tmp_path / "ingest.log").open("ab")

    def start_ingest() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)

    ingest = start_ingest()
    await wait_until(lambda: "ingest subscribed" in (tmp_path / "ingest.log").read_text(), 30,
                     "ingest to subscribe")
    try:
        async with running_agent(config) as agent:
            for round_ in range(30):  # bulk and events interleaved, as at a busy dock
                emit_reads(agent, round_ * 100, 100, 10)
                emit_departures(agent, round_, 1)
                await asyncio.sleep(0.02)
            await wait_until(lambda: stored_departures(database_url)[0] > 3, 30,
                             "ingest to store events")
            os.kill(ingest.pid, signal.SIGKILL)  # batches of both lanes in flight, unacked
            ingest.wait()
            for round_ in range(30, 60):
                emit_reads(agent, round_ * 100, 100, 10)
                emit_departures(agent, round_, 1)
            ingest = start_ingest()
            await wait_until(lambda: stored(database_url)[0] >= 6000, 90, "6,000 readings")
            await wait_until(lambda: stored_departures(database_url)[0] >= 60, 30,
                             "60 departures")
            await wait_until(lambda: agent.outbox.depth == 0, 30, "every message confirmed")
            await asyncio.sleep(1.5)  # anything doubled would arrive now
    finally:
        ingest.kill()
        ingest.wait()
    assert stored(database_url) == (6000, 6000)
    assert stored_departures(database_url) == (60, 60)
