"""Rows for tracker positions, geofence events, sensor readings and fence acknowledgements.

The ``store_*`` functions take bodies and the gateway they came from, so the ingest writers
(``write_*``, registered in ``writers.WRITERS``) and the JT/T 808 server (whose terminals reach
the cloud directly) store the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg import AsyncConnection

from cloud.ingest.decode import Accepted
from contract.messages import (
    FixRow,
    GeofenceEventBody,
    GeofencesAppliedBody,
    SensorReadingsBody,
    TrackerPositionsBody,
)


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _fix_columns(row: FixRow) -> tuple[datetime, float, float, float | None, int | None]:
    t_us, lon_e7, lat_e7, acc_cm, battery = row
    return _at(t_us), lon_e7 / 1e7, lat_e7 / 1e7, None if acc_cm is None else acc_cm / 100, battery


async def store_positions(
    conn: AsyncConnection, gateway_id: str, bodies: Sequence[TrackerPositionsBody]
) -> int:
    """Insert fixes not stored before (one row per tracker and fix time); returns how many."""
    columns: tuple[list[object], ...] = ([], [], [], [], [], [], [])
    latest: dict[str, tuple[str, tuple[datetime, float, float, float | None, int | None]]] = {}
    for body in bodies:
        for fix in body.fixes:
            at, lon, lat, acc, battery = _fix_columns(fix)
            for column, value in zip(
                columns, (at, body.tracker, lon, lat, acc, battery, body.source), strict=True
            ):
                column.append(value)
            seen = latest.get(body.tracker)
            if seen is None or at > seen[1][0]:
                latest[body.tracker] = (body.source, (at, lon, lat, acc, battery))
    cur = await conn.execute(
        """
        INSERT INTO tracker_positions (fix_at, gateway_id, tracker, lon, lat, accuracy_m,
                                       battery_pct, source)
        SELECT f, %s, t, x, y, a, b, s
        FROM unnest(%s::timestamptz[], %s::text[], %s::float8[], %s::float8[], %s::real[],
                    %s::smallint[], %s::text[]) AS u(f, t, x, y, a, b, s)
        ON CONFLICT (tracker, fix_at) DO NOTHING
        """,
        (gateway_id, *columns),
    )
    inserted = cur.rowcount
    for tracker, (source, (at, lon, lat, acc, battery)) in latest.items():
        await conn.execute(
            """
            INSERT INTO tracker_state (tracker, gateway_id, source, fix_at, lon, lat, accuracy_m,
                                       battery_pct)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (tracker) DO UPDATE SET
                gateway_id = excluded.gateway_id, source = excluded.source,
                fix_at = excluded.fix_at, lon = excluded.lon, lat = excluded.lat,
                accuracy_m = excluded.accuracy_m, battery_pct = excluded.battery_pct
            WHERE excluded.fix_at > tracker_state.fix_at
            """,
            (tracker, gateway_id, source, at, lon, lat, acc, battery),
        )
    return inserted


async def store_geofence_events(
    conn: AsyncConnection,
    gateway_id: str,
    events: Sequence[tuple[int | None, str, GeofenceEventBody]],
) -> int:
    """``events``: (envelope seq or None, message type, body)."""
    async with conn.cursor().copy(
        "COPY geofence_events (fix_at, gateway_id, seq, kind, tracker, fence_id, fence_kind, lots,"
        " lon, lat, accuracy_m, run_started_at, run_fixes, fences_version) FROM STDIN"
    ) as copy:
        for seq, kind, body in events:
            at, lon, lat, acc, _ = _fix_columns(body.fix)
            await copy.write_row(
                (
                    at,
                    gateway_id,
                    seq,
                    kind,
                    body.tracker,
                    body.fence,
                    body.fence_kind,
                    body.lots,
                    lon,
                    lat,
                    acc,
                    _at(body.run_started_us),
                    body.run_fixes,
                    body.fences_version,
                )
            )
    return len(events)


async def store_sensor_readings(
    conn: AsyncConnection, gateway_id: str, bodies: Sequence[SensorReadingsBody]
) -> int:
    rows = 0
    async with conn.cursor().copy(
        "COPY sensor_readings (observed_at, gateway_id, sensor, quantity, unit, lot_id, value)"
        " FROM STDIN"
    ) as copy:
        for body in bodies:
            for t_us, milli in body.readings:
                await copy.write_row(
                    (
                        _at(t_us),
                        gateway_id,
                        body.sensor,
                        body.quantity,
                        body.unit,
                        body.lot,
                        milli / 1000,
                    )
                )
                rows += 1
    return rows


async def store_geofence_ack(
    conn: AsyncConnection, gateway_id: str, body: GeofencesAppliedBody, at: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO geofence_acks (gateway_id, version, state, fences, reason, acked_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (gateway_id) DO UPDATE SET version = excluded.version,
            state = excluded.state, fences = excluded.fences, reason = excluded.reason,
            acked_at = excluded.acked_at
        WHERE excluded.acked_at >= geofence_acks.acked_at
        """,
        (gateway_id, body.version, body.state, body.fences, body.reason, at),
    )


# -- ingest writers ------------------------------------------------------------------------------


async def _raw(conn: AsyncConnection, items: list[Accepted]) -> None:
    """Events are also kept whole, like every other event type."""
    async with conn.cursor().copy(
        "COPY raw_events (observed_at, gateway_id, seq, type, body) FROM STDIN"
    ) as copy:
        for item in items:
            env = item.envelope
            await copy.write_row(
                (env.observed_at, env.gateway, env.seq, env.type, json.dumps(env.body))
            )


async def write_tracker_positions(conn: AsyncConnection, items: list[Accepted]) -> int:
    rows = 0
    for item in items:
        body: TrackerPositionsBody = item.body  # type: ignore[assignment]
        rows += await store_positions(conn, item.envelope.gateway, [body])
    return rows


async def write_geofence_events(conn: AsyncConnection, items: list[Accepted]) -> int:
    rows = 0
    for item in items:
        body: GeofenceEventBody = item.body  # type: ignore[assignment]
        rows += await store_geofence_events(
            conn, item.envelope.gateway, [(item.envelope.seq, item.envelope.type, body)]
        )
    await _raw(conn, items)
    return rows + len(items)


async def write_sensor_readings(conn: AsyncConnection, items: list[Accepted]) -> int:
    rows = 0
    for item in items:
        body: SensorReadingsBody = item.body  # type: ignore[assignment]
        rows += await store_sensor_readings(conn, item.envelope.gateway, [body])
    return rows


async def write_geofences_applied(conn: AsyncConnection, items: list[Accepted]) -> int:
    for item in sorted(items, key=lambda i: i.envelope.observed_at):
        body: GeofencesAppliedBody = item.body  # type: ignore[assignment]
        await store_geofence_ack(conn, item.envelope.gateway, body, item.envelope.observed_at)
    await _raw(conn, items)
    return len(items)
