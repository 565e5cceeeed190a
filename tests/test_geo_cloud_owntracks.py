"""OwnTracks trackers on the cloud's broker (no gateway on site): the cloud makes the same
decisions, and positions, the exit and the theft alert reach PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiomqtt
import psycopg

from cloud.owntracks import follow
from cloud.tracking import CloudTracking
from contract.owntracks import location_payload
from decisions.trackers.watch import TrackedAsset
from firmware_sim.trackers import drive_out
from geofences.fences import load_site


async def test_tracker_on_the_cloud_broker_is_tracked(database_url, mqtt_broker):
    fences = load_site("demo-site")
    tracking = CloudTracking(
        database_url,
        fences,
        [TrackedAsset("pw-coil-1", "LOT-B", 600)],
        source="owntracks",
        name="test",
        now_us=time.time_ns() // 1000,
    )
    task = asyncio.create_task(follow(tracking, mqtt_broker.url, flush_s=0.2, client_id="t-ot"))
    fixes = [p.fix for p in drive_out(fences, time.time_ns() // 1000 - 3_600_000_000)]
    try:
        await asyncio.sleep(0.5)
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:
            for fix in fixes:
                await client.publish(
                    "owntracks/pw/coil-1",
                    location_payload(
                        lat=fix.lat,
                        lon=fix.lon,
                        acc=4,
                        tst=fix.t_us // 1_000_000,
                        created_at=fix.t_us // 1_000_000,
                    ),
                    qos=1,
                )
        for _ in range(100):
            await asyncio.sleep(0.1)
            with psycopg.connect(database_url) as conn:
                stored = conn.execute("SELECT count(*) FROM tracker_positions").fetchone()[0]
            if stored == len(fixes):
                break
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await tracking.close()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM tracker_positions").fetchone()[0] == len(fixes)
        exits = conn.execute(
            "SELECT fence_id, gateway_id FROM geofence_events WHERE kind = 'geofence_exit'"
            " ORDER BY fix_at"
        ).fetchall()
        alert = conn.execute(
            "SELECT state FROM alerts WHERE alert_type = 'theft.geofence_exit'"
            " AND subject = 'tracker:pw-coil-1'"
        ).fetchone()
    assert exits[0] == ("pz-lot-b", "owntracks:test")
    assert alert == ("open",)
