"""What the cloud does with JT/T 808 terminals: the gateway's tracker decisions (``CloudTracking``)
plus terminal registrations and alarm bits, for the provisioned terminals of one site.
Terminal ``13800138000`` is tracker ``jt808-13800138000``; rows are stored as gateway
``jt808:<name>``.

All sessions of a server share one decision state (the site's tracker station) and one
database connection, used by one session at a time (``_lock``): a failure while one session
stores is seen by that session only (its terminal is left unanswered and resends), and the
connection is reopened by the next user. Strings reach this module already validated by the
codec (no NUL, GBK, bounded). Should stored data still be refused by PostgreSQL (a data or
integrity error: the data is at fault, not the database), the decisions are stored one by
one and only those refused are set aside in ``dead_letters`` with the reason, rather than
retried forever: one bad message cannot block every later session.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

import psycopg

from cloud.ingest.store import DEAD_LETTER_COLUMNS, dead_letter_row
from cloud.jt808.alarms import TerminalAlarms
from cloud.jt808.provisioning import tracker_of
from cloud.jt808.session import Positions, ProvisionedTerminal, Registered, SessionEvent
from cloud.tracking import CloudTracking
from contract import MessageType
from decisions.outgoing import Outgoing
from decisions.trackers.watch import TrackedAsset
from geofences.crossing import CrossingRules, Fix
from geofences.fences import FenceSet

__all__ = ["Jt808Tracking", "tracker_of"]

log = logging.getLogger(__name__)
DEAD_LETTER_TOPIC = "jt808"


class Jt808Tracking(CloudTracking):
    def __init__(
        self,
        database_url: str,
        fences: FenceSet,
        terminals: Sequence[ProvisionedTerminal],
        *,
        name: str = "cloud",
        rules: CrossingRules | None = None,
        now_us: int,
    ) -> None:
        foreign = sorted(t.phone for t in terminals if t.site != fences.site)
        if foreign:
            raise ValueError(f"terminals {foreign} are not provisioned for site {fences.site}")
        assets = [TrackedAsset(tracker_of(t.phone), t.lot, t.report_interval_s) for t in terminals]
        super().__init__(
            database_url, fences, assets, source="jt808", name=name, rules=rules, now_us=now_us
        )
        self._terminal_ids = {t.phone: t.terminal_id for t in terminals}
        self.alarms = TerminalAlarms()
        self._lock = asyncio.Lock()

    async def on_events(self, events: list[SessionEvent], now_us: int) -> None:
        """Decide and store; raises (so nothing is acknowledged) when storing fails."""
        async with self._lock:
            await self._on_events(events, now_us)

    async def check_silence(self, now_us: int) -> None:
        async with self._lock:
            await super().check_silence(now_us)

    async def commit(self, out: list[Outgoing]) -> None:
        try:
            await super().commit(out)
        except (psycopg.DataError, psycopg.IntegrityError) as err:
            log.warning("jt808 batch refused by the database; storing one by one", exc_info=err)
            await self._commit_one_by_one()

    async def _commit_one_by_one(self) -> None:
        """Store each decided message in its own transaction; those the database refuses go
        to ``dead_letters`` with the reason. A connection failure keeps the rest for later."""
        pending, self._unstored = self._unstored, []
        try:
            conn = await self.connection()
            while pending:
                try:
                    async with conn.transaction():
                        await self.store(conn, pending[:1])
                except (psycopg.DataError, psycopg.IntegrityError) as err:
                    async with conn.transaction():
                        await self._dead_letter(conn, pending[0], err)
                    log.error(
                        "jt808 decision refused by the database; set aside in dead_letters",
                        extra={"error": str(err), "type": pending[0][0].value},
                    )
                pending = pending[1:]
        except psycopg.Error:
            self._unstored = pending + self._unstored
            await self.close()
            raise

    async def _dead_letter(
        self, conn: psycopg.AsyncConnection, item: Outgoing, err: Exception
    ) -> None:
        msg_type, body = item
        raw = json.dumps({"type": msg_type.value, "body": body.model_dump(mode="json")}).encode()
        await conn.execute(
            f"INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
            dead_letter_row(DEAD_LETTER_TOPIC, self.gateway_id,
                            f"refused by the database: {err}"[:500], raw),
        )

    async def _on_events(self, events: list[SessionEvent], now_us: int) -> None:
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
            try:
                conn = await self.connection()
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE jt808_terminals SET last_seen_at = now() "
                        "WHERE tracker = ANY(%s) AND site_id = %s",
                        (trackers, self.site),
                    )
            except psycopg.Error:
                await self.close()
                raise

    async def _register(self, registered: list[Registered]) -> None:
        """Record what the terminal says about itself, on its own provisioned row only."""
        try:
            conn = await self.connection()
            async with conn.transaction():
                for event in registered:
                    await conn.execute(
                        """
                        UPDATE jt808_terminals SET plate = %s, manufacturer = %s, model = %s,
                            registered_at = now(), last_seen_at = now()
                        WHERE phone = %s AND site_id = %s AND terminal_id = %s
                        """,
                        (
                            event.registration.plate,
                            event.registration.manufacturer,
                            event.registration.model,
                            event.phone,
                            self.site,
                            event.registration.terminal_id,
                        ),
                    )
        except psycopg.Error:
            await self.close()
            raise
