"""What the cloud knows now about an alert's subject, for ``decisions.alert_condition``.

The SQL that gathers the facts; the judgement itself is the pure ``still_holds``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row

from cloud import alerts
from decisions.alert_condition import ConditionNow, SensorValue, still_holds
from decisions.alert_types import AlertType

_SENSOR_QUANTITY = {AlertType.TEMPERATURE: ("temperature", " degC"),
                    AlertType.HUMIDITY: ("humidity", " %RH")}


async def _rows(conn: AsyncConnection, sql: str, params: Any) -> list[tuple[Any, ...]]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


def _after(subject: str, prefix: str) -> str | None:
    return subject[len(prefix):] if subject.startswith(prefix) else None


async def condition_now(conn: AsyncConnection, alert: dict[str, Any]) -> ConditionNow:
    """The facts that bear on ``alert`` (a row of cloud.alerts.ALERT_COLUMNS)."""
    kind, subject = alert["alert_type"], alert["subject"]
    if kind == AlertType.TAG_MISSING:
        lot = _after(subject, "lot:") or alert.get("lot_id")
        rows = await _rows(conn, "SELECT t.epc FROM lot_tags t JOIN tag_state s ON s.epc = t.epc "
                           "WHERE t.lot_id = %s AND s.presence = 'missing' ORDER BY t.epc",
                           (lot,))
        return ConditionNow(missing_epcs=tuple(r[0] for r in rows))
    if kind == AlertType.GEOFENCE_EXIT:
        tracker = _after(subject, "tracker:")
        rows = await _rows(conn, "SELECT kind, fence_id FROM geofence_events WHERE tracker = %s "
                           "AND kind <> 'geofence_dwell' ORDER BY fix_at DESC LIMIT 1",
                           (tracker,))
        outside = rows[0][1] if rows and rows[0][0] == "geofence_exit" else None
        return ConditionNow(tracker_outside=outside)
    if kind in _SENSOR_QUANTITY:
        quantity, unit = _SENSOR_QUANTITY[kind]
        evidence = alert.get("evidence") or {}
        low, high = evidence.get("low"), evidence.get("high")
        if low is None and high is None:
            return ConditionNow()
        rows = await _rows(conn, "SELECT value FROM sensor_readings WHERE sensor = %s "
                           "AND quantity = %s ORDER BY observed_at DESC LIMIT 1",
                           (_after(subject, "sensor:"), quantity))
        if not rows:
            return ConditionNow()
        return ConditionNow(sensor=SensorValue(float(rows[0][0]), low, high, unit))
    if kind == AlertType.READER_OFFLINE:
        # A reader that has read a tag since it was reported offline is back.
        rows = await _rows(conn, "SELECT max(last_seen_at) > %s FROM tag_state "
                           "WHERE reader = %s AND gateway_id = %s",
                           (alert["last_seen_at"], _after(subject, "reader:"),
                            alert.get("source_gateway")))
        return ConditionNow(reader_online=None if not rows or rows[0][0] is None
                            else bool(rows[0][0]))
    if kind == AlertType.GATEWAY_OFFLINE:
        rows = await _rows(conn, "SELECT online FROM gateways WHERE id = %s",
                           (_after(subject, "gateway:") or alert.get("source_gateway"),))
        return ConditionNow(gateway_online=bool(rows[0][0]) if rows else None)
    return ConditionNow()


async def why_still_open(conn: AsyncConnection, alert: dict[str, Any]) -> str | None:
    """The reason ``alert`` may not be resolved now, or None."""
    return still_holds(alert["alert_type"], alert["subject"], await condition_now(conn, alert))


REOPEN_ACTOR = "cloud:reopen"
RECHECK = "15 minutes"


async def reopen_standing(conn: AsyncConnection, site_id: str, *,
                          now: datetime | None = None) -> list[int]:
    """Open again the alerts a person resolved lately whose condition holds now.

    The resolve itself is refused while the condition holds; this catches what came after it
    (a race with ingest, facts that arrived late) so a theft cannot stay silenced. Run by the
    alerting stage for each site in a batch: one indexed query when nothing is to reopen, and
    a fact query per alert resolved in the last ``RECHECK`` (a resolve that raced ingest shows
    within seconds; later returns are raised by the gateway anew). Returns the new alerts' ids.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT DISTINCT ON (a.alert_type, a.subject) a.id, a.alert_type, a.subject, "
            "a.severity, a.site_id, a.lot_id, a.explanation, a.evidence, a.last_seen_at, "
            "a.source_gateway, a.resolved_by FROM alerts a "
            "JOIN api_keys k ON k.id = a.resolved_by "  # a person resolved it, not a clear
            "WHERE a.site_id = %s AND a.state = 'resolved' "
            "AND a.resolved_at > now() - %s::interval "
            "AND NOT EXISTS (SELECT 1 FROM alerts b WHERE coalesce(b.site_id, '') = %s "
            "  AND b.alert_type = a.alert_type AND b.subject = a.subject "
            "  AND (b.state <> 'resolved' OR b.first_seen_at > a.resolved_at)) "
            "ORDER BY a.alert_type, a.subject, a.resolved_at DESC LIMIT 50",
            (site_id, RECHECK, site_id))
        candidates = await cur.fetchall()
    reopened = []
    for alert in candidates:
        reason = await why_still_open(conn, alert)
        if reason is None:
            continue
        new_id, _ = await alerts.raise_alert(
            conn, alert_type=alert["alert_type"], subject=alert["subject"],
            severity=alert["severity"], site_id=alert["site_id"], lot_id=alert["lot_id"],
            explanation=f"reopened: {reason} (alert {alert['id']} was resolved)",
            evidence={**(alert["evidence"] or {}), "reopens": alert["id"]},
            seen_at=now or datetime.now(UTC), actor=REOPEN_ACTOR,
            source_gateway=alert["source_gateway"])
        reopened.append(new_id)
    return reopened
