"""Trackers that reach the cloud directly (JT/T 808 terminals, OwnTracks on the cloud broker):
the gateway's tracker decisions for one site, stored like a gateway's output.

A ``TrackerStation`` (crossing detector, theft and silence rules) decides; positions, geofence
events and alerts are written in one transaction, under gateway id ``<source>:<name>`` so rows
show where they came from. ``store`` raises when the database fails, so the caller can leave
the device unanswered (it will send again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
from psycopg import AsyncConnection

from cloud.alerts import clear_alert, raise_alert
from cloud.ingest.geo_writers import store_geofence_events, store_positions
from contract import AlertBody, MessageType
from contract.messages import GeofenceEventBody, TrackerPositionsBody
from decisions.outgoing import Outgoing
from decisions.trackers.station import TrackerStation
from decisions.trackers.watch import TrackedAsset
from geofences.crossing import CrossingRules
from geofences.fences import FenceSet

log = logging.getLogger(__name__)


class CloudTracking:
    def __init__(
        self,
        database_url: str,
        fences: FenceSet,
        assets: Sequence[TrackedAsset],
        *,
        source: str,
        name: str = "cloud",
        rules: CrossingRules | None = None,
        now_us: int,
    ) -> None:
        self._database_url = database_url
        self.gateway_id = f"{source}:{name}"
        self.site = fences.site
        self.lots = {a.tracker: a.lot for a in assets}
        self.station = TrackerStation(
            fences, assets, rules=rules or CrossingRules(), source=source, started_us=now_us
        )
        self._conn: AsyncConnection | None = None
        # Decided but not yet stored (the database failed): stored first next time, because
        # the station has already consumed the fixes that produced them.
        self._unstored: list[Outgoing] = []

    async def connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._database_url)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def station_output(self, out: list[Outgoing]) -> None:
        """Keep messages decided outside a flush (stored with the next commit)."""
        self._unstored += out

    async def commit(self, out: list[Outgoing]) -> None:
        """Store in one transaction; a failed connection is dropped and the error raised (what
        was decided is kept and stored with the next commit)."""
        self._unstored += out
        if not self._unstored:
            return
        try:
            conn = await self.connection()
            async with conn.transaction():
                await self.store(conn, self._unstored)
        except psycopg.Error:
            await self.close()
            raise
        self._unstored = []

    async def check_silence(self, now_us: int) -> None:
        await self.commit(self.station.flush(now_us))

    async def store(self, conn: AsyncConnection, out: list[Outgoing]) -> None:
        positions = [b for t, b in out if isinstance(b, TrackerPositionsBody)]
        events = [(None, t.value, b) for t, b in out if isinstance(b, GeofenceEventBody)]
        if positions:
            await store_positions(conn, self.gateway_id, positions)
        if events:
            await store_geofence_events(conn, self.gateway_id, events)
        for msg_type, body in out:
            if msg_type is MessageType.ALERT and isinstance(body, AlertBody):
                await self._alert(conn, body)

    async def _alert(self, conn: AsyncConnection, body: AlertBody) -> None:
        actor = self.gateway_id
        if body.action == "clear":
            await clear_alert(
                conn,
                alert_type=body.alert_type,
                subject=body.subject,
                actor=actor,
                comment=body.explanation,
                site_id=self.site,  # only this site's alert, never another's of the same subject
            )
            return
        cur = await conn.execute("SELECT id FROM sites WHERE id = %s", (self.site,))
        row = await cur.fetchone()
        await raise_alert(
            conn,
            alert_type=body.alert_type,
            subject=body.subject,
            severity=body.severity,
            site_id=None if row is None else row[0],  # fences may name a site not registered
            lot_id=body.lot,
            explanation=body.explanation,
            evidence=body.evidence,
            seen_at=datetime.now(UTC),
            actor=actor,
        )
