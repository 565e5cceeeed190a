"""Tracker -> gateway agent -> Mosquitto -> cloud ingest -> PostgreSQL, all real: a coil driven
out of its pledge zone becomes positions, a geofence_exit row with its deciding fix, an open
theft.geofence_exit alert, and the gateway's fence version is on record."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiomqtt
import psycopg
import pytest

from cloud.ingest.consumer import Ingest, IngestOptions
from contract.owntracks import location_payload
from edge.agent import Agent
from edge.config import load_config
from firmware_sim.trackers import drive_out
from geofences.fences import SITES_DIR, load_site

pytestmark = pytest.mark.integration


def _agent_config(path: Path, *, gateway: str, key_file: Path, broker_url: str) -> Path:
    path.write_text(f"""
site = "demo-site"
gateway = "{gateway}"
key_file = "{key_file}"
data_dir = "{path.parent / "edge-data"}"
health_interval_s = 3600

[broker]
url = "{broker_url}"
client_id = "test-{gateway}"
keepalive_s = 5

[trackers]
mqtt_url = "{broker_url}"
fences = "{SITES_DIR / "demo-site.geojson"}"
flush_s = 0.3

[trackers.rules]
confirm_seconds = 10

[[trackers.assets]]
tracker = "pw-coil-1"
lot = "LOT-B"
report_interval_s = 600
""")
    return path


def _scalar(database_url: str, sql: str) -> object:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


async def test_coil_driven_out_reaches_the_database_as_a_theft(
    database_url, mqtt_broker, register_gateway, tmp_path
):
    gw = register_gateway(site="demo-site", gateway="gw-geo")
    config = _agent_config(
        tmp_path / "edge.toml", gateway=gw.gateway, key_file=gw.key_file, broker_url=mqtt_broker.url
    )
    ingest = Ingest(
        IngestOptions(
            database_url=database_url, mqtt_url=mqtt_broker.url, client_id="ingest-geo", batch_ms=20
        )
    )
    agent = Agent(load_config(config))
    tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(agent.run())]
    t0_us = time.time_ns() // 1000 - 3_600_000_000
    fixes = [p.fix for p in drive_out(load_site("demo-site"), t0_us, device="coil-1")]
    try:
        await asyncio.sleep(1.0)  # agent and its trackers pipeline subscribed
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:
            for fix in fixes:
                await client.publish(
                    "owntracks/pw/coil-1",
                    location_payload(
                        lat=fix.lat,
                        lon=fix.lon,
                        acc=fix.accuracy_m or 5,
                        tst=fix.t_us // 1_000_000,
                        created_at=fix.t_us // 1_000_000,
                    ),
                    qos=1,
                )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stored = _scalar(database_url, "SELECT count(*) FROM tracker_positions")
            alert = _scalar(
                database_url, "SELECT state FROM alerts WHERE alert_type = 'theft.geofence_exit'"
            )
            if stored == len(fixes) and alert == "open":
                break
            await asyncio.sleep(0.3)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert _scalar(database_url, "SELECT count(*) FROM tracker_positions") == len(fixes)
    with psycopg.connect(database_url) as conn:
        exits = conn.execute(
            "SELECT fence_id, gateway_id, lots, run_fixes FROM geofence_events"
            " WHERE kind = 'geofence_exit' ORDER BY fix_at"
        ).fetchall()
        alert = conn.execute(
            "SELECT severity, state, lot_id, source_gateway FROM alerts"
            " WHERE alert_type = 'theft.geofence_exit' AND subject = 'tracker:pw-coil-1'"
        ).fetchone()
        ack = conn.execute(
            "SELECT version, state FROM geofence_acks WHERE gateway_id = 'gw-geo'"
        ).fetchone()
        latest = conn.execute("SELECT tracker FROM tracker_state").fetchall()
    assert exits[0] == ("pz-lot-b", "gw-geo", ["LOT-B"], exits[0][3])
    assert exits[0][3] >= 3
    assert [e[0] for e in exits].count("pz-lot-b") == 1
    assert alert[:2] == ("critical", "open") and alert[3] == "gw-geo"
    assert ack == (0, "applied")
    assert latest == [("pw-coil-1",)]
