"""What the cloud does with JT/T 808 terminals: the same tracker decisions as a gateway.

Positions go through a ``TrackerStation`` (crossing detector, theft and silence rules) for the
site the terminals belong to, and its output is stored like a gateway's: positions, geofence
events, alerts. Terminal ``13800138000`` is tracker ``jt808-13800138000``. Stored as gateway
``jt808:<name>`` so rows show where they came from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
from psycopg import AsyncConnection

from cloud.alerts import clear_alert, raise_alert
from cloud.ingest.geo_writers import store_geofence_events, store_positions
from cloud.jt808.alarms import TerminalAlarms
from cloud.jt808.session import Positions, Registered, SessionEvent
from contract import AlertBody, MessageType
from contract.messages import GeofenceEventBody, TrackerPositionsBody
from edge.trackers.station import Outgoing, TrackerStation
from edge.trackers.watch import TrackedAsset
from geofences.crossing import CrossingRules, Fix
from geofences.fences import FenceSet

log = logging.getLogger(__name__)


def tracker_of(phone: str) -> str:
    return f"jt808-{phone}"


class Jt808Tracking:
    def __init__(
        self,
        database_url: str,
        fences: FenceSet,
        assets: Sequence[TrackedAsset],
        *,
        name: str = "cloud",
        rules: CrossingRules | None = None,
        now_us: int,
    ) -> None:
        self._database_url = database_url
        self.gateway_id = f"jt808:{name}"
        self.site = fences.site
        self.station = TrackerStation(
            fences, assets, rules=rules or CrossingRules(), source="jt808", started_us=now_us
        )
        self._conn: AsyncConnection | None = None
        self._lots = {a.tracker: a.lot for a in assets}
        self.alarms = TerminalAlarms()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._database_url)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def on_events(self, events: list[SessionEvent], now_us: int) -> None:
        """Decide and store; raises (so nothing is acknowledged) when storing fails."""
        out: list[Outgoing] = []
        registered = [e for e in events if isinstance(e, Registered) and e.accepted]
        for event in events:
            if isinstance(event, Positions):
                tracker = tracker_of(event.phone)
                for location in event.locations:
                    if not event.backfill:  # old alarm bits are history, not a current state
                        alarms = self.alarms.on_location(tracker, location, self._lots.get(tracker))
                        out += [(MessageType.ALERT, a) for a in alarms]
                    if not location.positioned:
                        continue  # no GNSS fix: the coordinates are the last known, not news
                    fix = Fix(tracker, location.t_us, location.lon, location.lat)
                    out += self.station.add(fix, None, now_us)
        if any(isinstance(e, Positions) for e in events):
            out += self.station.flush(now_us)
        if not out and not registered:
            return
        try:
            conn = await self._connection()
            async with conn.transaction():
                for event in registered:
                    await conn.execute(
                        """
                        INSERT INTO jt808_terminals (phone, tracker, plate, manufacturer, model,
                                                     registered_at, last_seen_at)
                        VALUES (%s, %s, %s, %s, %s, now(), now())
                        ON CONFLICT (phone) DO UPDATE SET plate = excluded.plate,
                            manufacturer = excluded.manufacturer, model = excluded.model,
                            registered_at = excluded.registered_at, last_seen_at = now()
                        """,
                        (
                            event.phone,
                            tracker_of(event.phone),
                            event.registration.plate,
                            event.registration.manufacturer,
                            event.registration.model,
                        ),
                    )
                await self.store(conn, out)
        except psycopg.Error:
            if self._conn is not None:
                await self._conn.close()
            raise

    async def check_silence(self, now_us: int) -> None:
        out = self.station.flush(now_us)
        if out:
            conn = await self._connection()
            async with conn.transaction():
                await self.store(conn, out)

    async def store(self, conn: AsyncConnection, out: list[Outgoing]) -> None:
        positions = [b for t, b in out if t is MessageType.TRACKER_POSITIONS]
        events = [(None, t.value, b) for t, b in out if isinstance(b, GeofenceEventBody)]
        if positions:
            await store_positions(conn, self.gateway_id, positions)  # type: ignore[arg-type]
            trackers = [p.tracker for p in positions if isinstance(p, TrackerPositionsBody)]
            await conn.execute(
                "UPDATE jt808_terminals SET last_seen_at = now() WHERE tracker = ANY(%s)",
                (trackers,),
            )
        if events:
            await store_geofence_events(conn, self.gateway_id, events)
        for msg_type, body in out:
            if msg_type is MessageType.ALERT and isinstance(body, AlertBody):
                await self._alert(conn, body)

    async def _alert(self, conn: AsyncConnection, body: AlertBody) -> None:
        actor = self.gateway_id
        row = await (
            await conn.execute("SELECT id FROM sites WHERE id = %s", (self.site,))
        ).fetchone()
        site_id = None if row is None else row[0]  # fences may name a site not registered yet
        if body.action == "clear":
            await clear_alert(
                conn,
                alert_type=body.alert_type,
                subject=body.subject,
                actor=actor,
                comment=body.explanation,
            )
            return
        await raise_alert(
            conn,
            alert_type=body.alert_type,
            subject=body.subject,
            severity=body.severity,
            site_id=site_id,
            lot_id=body.lot,
            explanation=body.explanation,
            evidence=body.evidence,
            seen_at=datetime.now(UTC),
            actor=actor,
            source_gateway=None,
        )
