"""What the cloud does with JT/T 808 terminals: the gateway's tracker decisions (``CloudTracking``)
plus terminal registrations and alarm bits. Terminal ``13800138000`` is tracker
``jt808-13800138000``; rows are stored as gateway ``jt808:<name>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from cloud.jt808.alarms import TerminalAlarms
from cloud.jt808.session import Positions, Registered, SessionEvent
from cloud.tracking import CloudTracking
from contract import MessageType
from edge.trackers.station import Outgoing
from edge.trackers.watch import TrackedAsset
from geofences.crossing import CrossingRules, Fix
from geofences.fences import FenceSet


def tracker_of(phone: str) -> str:
    return f"jt808-{phone}"


class Jt808Tracking(CloudTracking):
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
        super().__init__(
            database_url, fences, assets, source="jt808", name=name, rules=rules, now_us=now_us
        )
        self.alarms = TerminalAlarms()

    async def on_events(self, events: list[SessionEvent], now_us: int) -> None:
        """Decide and store; raises (so nothing is acknowledged) when storing fails."""
        out: list[Outgoing] = []
        registered = [e for e in events if isinstance(e, Registered) and e.accepted]
        for event in events:
            if isinstance(event, Positions):
                tracker = tracker_of(event.phone)
                for location in event.locations:
                    if not event.backfill:  # old alarm bits are history, not a current state
                        alarms = self.alarms.on_location(tracker, location, self.lots.get(tracker))
                        out += [(MessageType.ALERT, a) for a in alarms]
                    if not location.positioned:
                        continue  # no GNSS fix: the coordinates are the last known, not news
                    fix = Fix(tracker, location.t_us, location.lon, location.lat)
                    out += self.station.add(fix, None, now_us)
        if any(isinstance(e, Positions) for e in events):
            out += self.station.flush(now_us)
        if registered:
            await self._register(registered)
        await self.commit(out)
        trackers = sorted({tracker_of(e.phone) for e in events if isinstance(e, Positions)})
        if trackers:
            conn = await self.connection()
            async with conn.transaction():
                await conn.execute(
                    "UPDATE jt808_terminals SET last_seen_at = now() WHERE tracker = ANY(%s)",
                    (trackers,),
                )

    async def _register(self, registered: list[Registered]) -> None:
        try:
            conn = await self.connection()
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
        except psycopg.Error:
            await self.close()
            raise
