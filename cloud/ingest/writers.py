"""How each accepted message type becomes rows. Called inside the batch's transaction.

A writer gets the connection and the accepted messages of its type (already deduplicated by
(gateway, seq)) and returns how many rows it wrote. Types without a writer of their own are
kept whole: events in ``raw_events``, telemetry in ``telemetry``. Bulk rows go through COPY.
Writers only store: what a batch means for alerts is decided afterwards, once per batch, by
the alerting stage (cloud.alerting.stage; see cloud.ingest.store).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from cloud.ingest.decode import Accepted
from cloud.ingest.geo_writers import (
    write_geofence_events,
    write_geofences_applied,
    write_sensor_readings,
    write_tracker_positions,
)
from contract import (
    CHANNEL_OF,
    Channel,
    GatewayStatusBody,
    LotCountBody,
    MessageType,
    PresenceChangeBody,
    TagReadsBody,
    parse_topic,
)

Writer = Callable[[AsyncConnection, list[Accepted]], Awaitable[int]]


class _TimeText:
    """µs since the epoch -> COPY text for timestamptz, caching the whole-second part."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def __call__(self, us: int) -> str:
        whole, frac = divmod(us, 1_000_000)
        base = self._seconds.get(whole)
        if base is None:
            if len(self._seconds) > 4096:
                self._seconds.clear()
            base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%d %H:%M:%S")
            self._seconds[whole] = base
        return f"{base}.{frac:06d}+00"


_time_text = _TimeText()


def _us_to_dt(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, UTC)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """A value for COPY's text format: a tab or newline in a sender's reader name would
    otherwise end the field or the row, and let the sender write rows of its choosing."""
    return value.translate(_COPY_ESCAPES)


Latest = dict[str, tuple[int, str, str, int, int | None]]

# Above this many reads the COPY text is built in a thread: the interpreter lock is handed back
# every few milliseconds, so an event on ingest's other lane does not wait for all of it.
INLINE_READS_MAX = 1000


def _tag_read_rows(items: list[Accepted]) -> tuple[str, int, Latest]:
    """COPY text for ``tag_observations``, its row count, and each EPC's latest read."""
    lines: list[str] = []
    latest: Latest = {}
    for item in items:
        body: TagReadsBody = item.body  # type: ignore[assignment]
        gateway, seq = item.envelope.gateway, item.envelope.seq
        reader = _copy_text(body.reader)  # the EPC is hex and the gateway an identifier
        for epc, antenna, rssi, at_us in body.reads:
            rssi_text = "\\N" if rssi is None else str(rssi)
            lines.append(
                f"{_time_text(at_us)}\t{gateway}\t{reader}\t{epc}\t{antenna}\t{rssi_text}\t{seq}\n"
            )
            seen = latest.get(epc)
            if seen is None or at_us > seen[0]:
                latest[epc] = (at_us, gateway, body.reader, antenna, rssi)
    return "".join(lines), len(lines), latest


def _tag_read_bodies(items: list[Accepted]) -> list[TagReadsBody]:
    return [i.body for i in items]  # type: ignore[misc]  # the writer of TAG_READS only


async def write_tag_reads(conn: AsyncConnection, items: list[Accepted]) -> int:
    reads = sum(len(body.reads) for body in _tag_read_bodies(items))
    text, rows, latest = (_tag_read_rows(items) if reads <= INLINE_READS_MAX
                          else await asyncio.to_thread(_tag_read_rows, items))
    async with conn.cursor().copy(
        "COPY tag_observations (observed_at, gateway_id, reader, epc, antenna, rssi_cdbm, seq) "
        "FROM STDIN"
    ) as copy:
        await copy.write(text)
    # Rows are locked in EPC order, as the presence writer locks them: the event lane's
    # transaction and this one then never wait for each other in a circle (a deadlock).
    epcs = sorted(latest)
    await conn.execute(
        """
        INSERT INTO tag_state (epc, gateway_id, reader, antenna, rssi_cdbm, last_seen_at)
        SELECT e, g, r, a, s, to_timestamp(t / 1e6)
        FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::bigint[])
             AS u(e, g, r, a, s, t)
        ON CONFLICT (epc) DO UPDATE SET
            gateway_id = excluded.gateway_id, reader = excluded.reader,
            antenna = excluded.antenna, rssi_cdbm = excluded.rssi_cdbm,
            last_seen_at = excluded.last_seen_at
        WHERE tag_state.last_seen_at IS NULL OR excluded.last_seen_at > tag_state.last_seen_at
        """,
        (
            epcs,
            [latest[e][1] for e in epcs],
            [latest[e][2] for e in epcs],
            [latest[e][3] for e in epcs],
            [latest[e][4] for e in epcs],
            [latest[e][0] for e in epcs],
        ),
        binary=True,  # binary arrays: text arrays are quoted element by element (regex per EPC)
    )
    return rows


# One statement for a batch of presence changes: the change rows, the messages kept whole, and
# each tag's presence. It runs inside an event's transaction, where every round trip to the
# database is latency the alert waits for (two COPYs and an upsert per tag were 4 + n round
# trips; docs/alerts.md). Each tag's latest change wins, as applying them in time order did:
# an older change never overwrites a newer one (the WHERE below), and a tag new to tag_state
# keeps the gateway of its first change. Rows are upserted in EPC order, as write_tag_reads
# locks them (no deadlock between the lanes).
_PRESENCE_SQL = """
WITH c AS (
    SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[],
                         %s::text[], %s::timestamptz[], %s::bigint[], %s::jsonb[])
        WITH ORDINALITY AS c(observed_at, gateway_id, lot_id, epc, state, previous,
                             last_seen_at, seq, body, n)
), changes AS (
    INSERT INTO presence_changes (observed_at, gateway_id, lot_id, epc, state, previous,
                                  last_seen_at, seq)
    SELECT observed_at, gateway_id, lot_id, epc, state, previous, last_seen_at, seq FROM c
), whole AS (
    INSERT INTO raw_events (observed_at, gateway_id, seq, type, body)
    SELECT observed_at, gateway_id, seq, %s, body FROM c
)
INSERT INTO tag_state (epc, gateway_id, presence, presence_changed_at)
SELECT DISTINCT ON (epc) epc,
       first_value(gateway_id) OVER (PARTITION BY epc ORDER BY observed_at, n), state, observed_at
FROM c ORDER BY epc, observed_at DESC, n DESC
ON CONFLICT (epc) DO UPDATE SET presence = excluded.presence,
    presence_changed_at = excluded.presence_changed_at
WHERE tag_state.presence_changed_at IS NULL
   OR excluded.presence_changed_at >= tag_state.presence_changed_at
"""


async def write_presence_changes(conn: AsyncConnection, items: list[Accepted]) -> int:
    bodies: list[PresenceChangeBody] = [i.body for i in items]  # type: ignore[misc]
    await conn.execute(_PRESENCE_SQL, (
        [i.envelope.observed_at for i in items], [i.envelope.gateway for i in items],
        [b.lot for b in bodies], [b.epc for b in bodies], [b.state for b in bodies],
        [b.previous for b in bodies], [_us_to_dt(b.last_seen_us) for b in bodies],
        [i.envelope.seq for i in items], [Jsonb(i.envelope.body) for i in items],
        MessageType.PRESENCE_CHANGE.value,
    ))
    return 2 * len(items)  # a change row and the message kept whole, as before


async def write_lot_counts(conn: AsyncConnection, items: list[Accepted]) -> int:
    async with conn.cursor().copy(
        "COPY lot_counts (observed_at, gateway_id, lot_id, expected, present, missing, unknown) "
        "FROM STDIN"
    ) as copy:
        for item in items:
            b: LotCountBody = item.body  # type: ignore[assignment]
            await copy.write_row((item.envelope.observed_at, item.envelope.gateway, b.lot,
                                  b.expected, b.present, b.missing, b.unknown))
    return len(items)


async def write_gateway_status(conn: AsyncConnection, items: list[Accepted]) -> int:
    # Applied in arrival order: the last will is sealed at connect time, so its seq and
    # observation time are older than the session it ends.
    for item in items:
        b: GatewayStatusBody = item.body  # type: ignore[assignment]
        await conn.execute(
            "UPDATE gateways SET online = %s, status_changed_at = now() WHERE id = %s",
            (b.state == "online", item.envelope.gateway),
        )
    return await write_raw_events(conn, items)


async def write_raw_events(conn: AsyncConnection, items: list[Accepted]) -> int:
    # One INSERT, not a COPY (two round trips): these are events, in small batches, inside the
    # transaction an alert waits for.
    await conn.execute(
        "INSERT INTO raw_events (observed_at, gateway_id, seq, type, body) "
        "SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[], %s::text[], "
        "%s::jsonb[])",
        ([i.envelope.observed_at for i in items], [i.envelope.gateway for i in items],
         [i.envelope.seq for i in items], [i.envelope.type for i in items],
         [Jsonb(i.envelope.body) for i in items]))
    return len(items)


async def write_telemetry(conn: AsyncConnection, items: list[Accepted]) -> int:
    async with conn.cursor().copy(
        "COPY telemetry (observed_at, gateway_id, kind, body) FROM STDIN"
    ) as copy:
        for item in items:
            kind = parse_topic(item.topic).subtopic or item.envelope.type
            await copy.write_row((item.envelope.observed_at, item.envelope.gateway, kind,
                                  json.dumps(item.envelope.body)))
    return len(items)


WRITERS: dict[MessageType, Writer] = {
    MessageType.TAG_READS: write_tag_reads,
    MessageType.PRESENCE_CHANGE: write_presence_changes,
    MessageType.LOT_COUNT: write_lot_counts,
    # The edge's alerts are kept whole here; the alerting stage absorbs them into ``alerts``.
    MessageType.ALERT: write_raw_events,
    MessageType.PLATE_READ: write_raw_events,
    MessageType.GATEWAY_STATUS: write_gateway_status,
    MessageType.AGENT_HEALTH: write_telemetry,
    MessageType.TRACKER_POSITIONS: write_tracker_positions,
    MessageType.GEOFENCE_ENTER: write_geofence_events,
    MessageType.GEOFENCE_EXIT: write_geofence_events,
    MessageType.GEOFENCE_DWELL: write_geofence_events,
    MessageType.GEOFENCES_APPLIED: write_geofences_applied,
    MessageType.SENSOR_READINGS: write_sensor_readings,
}


def writer_for(msg_type: MessageType) -> Writer:
    """The registered writer, else keep the message whole by channel."""
    if msg_type in WRITERS:
        return WRITERS[msg_type]
    channel, _ = CHANNEL_OF[msg_type]
    return write_telemetry if channel is Channel.TELEMETRY else write_raw_events
