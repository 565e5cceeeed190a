"""Sensor readings and fence acknowledgements land in PostgreSQL as the writers promise."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from cloud.ingest.geo_writers import store_geofence_ack, store_sensor_readings
from contract.messages import GeofencesAppliedBody, SensorReadingsBody


async def test_readings_and_acks_are_stored(database_url):
    body = SensorReadingsBody(
        sensor="cold-1",
        quantity="temperature",
        unit="degC",
        lot="LOT-A",
        readings=[(1_780_000_000_000_000, 5250), (1_780_000_060_000_000, -1500)],
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            assert await store_sensor_readings(conn, "gw-1", [body]) == 2
            newer = datetime(2026, 5, 28, tzinfo=UTC)
            older = datetime(2026, 5, 27, tzinfo=UTC)
            await store_geofence_ack(
                conn, "gw-1", GeofencesAppliedBody(version=3, state="applied", fences=6), newer
            )
            # A late, older acknowledgement does not overwrite the newer one.
            await store_geofence_ack(
                conn,
                "gw-1",
                GeofencesAppliedBody(version=2, state="refused", fences=6, reason="x"),
                older,
            )
        rows = await (
            await conn.execute(
                "SELECT value, lot_id FROM sensor_readings WHERE sensor = 'cold-1'"
                " ORDER BY observed_at"
            )
        ).fetchall()
        assert rows == [(5.25, "LOT-A"), (-1.5, "LOT-A")]
        ack = await (
            await conn.execute("SELECT version, state FROM geofence_acks WHERE gateway_id='gw-1'")
        ).fetchone()
        assert ack == (3, "applied")
