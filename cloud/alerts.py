"""Alerts: one active alert per (site, type, subject); every step recorded with who and when.

The SQL lives here; the alerting stage (cloud.alerting), the API and the trackers call these
functions. Every change a financier should hear about (opened, acknowledged, resolved) writes
its webhook message and deliveries here, in the same transaction (the outbox the delivery
worker in cloud.webhooks reads; it is woken by NOTIFY, which PostgreSQL delivers only on
commit). A repeat only counts, so an alert raised by the edge and by the cloud's rules (or
redelivered) is one alert and one notification. An alert opened under a snooze of its
(type, subject) or a maintenance window of its site is stored, with the reason in
``suppressed_by``, and notifies no one.

A lot's departure incident (``decisions.incident``: ``theft.unreleased_departure`` on
``lot:<id>``) is reported by several sources; each report is merged into what the alert holds
(``merge_evidence``: the tags and facts of the whole incident), and a report that raises the
count of departed tags is an escalation: one ``alert.updated`` webhook, not one per fact.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row

from decisions.incident import (
    FOLD_BEFORE_S,
    FOLDED_TYPES,
    INCIDENT,
    departed_count,
    escalated,
    merge_evidence,
)

# The webhook outbox: the delivery worker LISTENs on CHANNEL; these are the events it sends.
CHANNEL = "pw_webhooks"
EVENT_TYPES = ("alert.opened", "alert.updated", "alert.acknowledged", "alert.resolved")

ALERT_COLUMNS = (
    "id, alert_type, subject, severity, site_id, lot_id, state, explanation, evidence, count, "
    "first_seen_at, last_seen_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by, "
    "source_gateway, source_seq, suppressed_by, rule"
)


async def _one(conn: AsyncConnection, sql: str, params: Any) -> tuple[Any, ...] | None:
    # Callers' connections differ (the API's pool hands out dict rows); these read by position.
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


class AlertTransitionError(ValueError):
    """The requested lifecycle step is not allowed from the alert's current state."""


async def raise_alert(
    conn: AsyncConnection,
    *,
    alert_type: str,
    subject: str,
    severity: str,
    site_id: str | None,
    lot_id: str | None,
    explanation: str,
    evidence: dict[str, Any],
    seen_at: datetime,
    actor: str,
    source_gateway: str | None = None,
    source_seq: int | None = None,
    rule: str | None = None,
) -> tuple[int, bool]:
    """Open an alert, or count a repeat of the active one. Returns (alert id, opened now).

    A lot's departure incident that opens or grows takes in the site's door, plate and weight
    alerts of the moments before (``decisions.incident.FOLDED_TYPES``): they become its facts.
    """
    before: dict[str, Any] | None = None
    if alert_type == INCIDENT:
        active = await active_alert(conn, site_id, alert_type, subject, lock=True)
        if active is not None:
            before = active["evidence"] or {}
            if departed_count(evidence) < departed_count(before):
                # A report about fewer tags than the incident already counts (one batch, one
                # source) keeps the incident's sentence, which counts them all.
                explanation = active["explanation"]
            evidence = merge_evidence(before, evidence)
    row = await _one(
        conn,
        """
        INSERT INTO alerts (alert_type, subject, severity, site_id, lot_id, explanation, evidence,
                            first_seen_at, last_seen_at, source_gateway, source_seq, rule)
        VALUES (%s, %s, %s, %s, (SELECT id FROM lots WHERE id = %s), %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (coalesce(site_id, ''), alert_type, subject) WHERE state <> 'resolved'
        DO UPDATE SET
            count = alerts.count + 1,
            last_seen_at = greatest(alerts.last_seen_at, excluded.last_seen_at),
            severity = excluded.severity,
            explanation = excluded.explanation,
            evidence = excluded.evidence,
            source_gateway = excluded.source_gateway,
            source_seq = excluded.source_seq
        RETURNING id, (xmax = 0) AS opened
        """,
        (alert_type, subject, severity, site_id, lot_id, explanation, json.dumps(evidence),
         seen_at, seen_at, source_gateway, source_seq, rule),
    )
    assert row is not None
    alert_id, opened = row
    suppressed = None
    if opened:
        suppressed = await _suppression(conn, alert_type, subject, site_id, seen_at)
        if suppressed is not None:
            await conn.execute("UPDATE alerts SET suppressed_by = %s WHERE id = %s",
                               (suppressed, alert_id))
    await _history(conn, alert_id, "opened" if opened else "repeated", actor,
                   f"suppressed: {suppressed}" if suppressed else "", evidence=evidence)
    if alert_type == INCIDENT and (opened or escalated(before, evidence)):
        await _fold_standing(conn, alert_id, site_id, seen_at)
    if opened and suppressed is None:
        await enqueue_alert_change(conn, alert_id, "alert.opened")
    elif not opened and escalated(before, evidence):
        await _history(conn, alert_id, "escalated", actor,
                       f"{departed_count(before)} -> {departed_count(evidence)} tags departed")
        if await _suppressed_by(conn, alert_id) is None:
            await enqueue_alert_change(conn, alert_id, "alert.updated")
    return alert_id, opened


async def active_alert(
    conn: AsyncConnection, site_id: str | None, alert_type: str, subject: str, *,
    lock: bool = False,
) -> dict[str, Any] | None:
    """The active alert of (site, type, subject), if any."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE coalesce(site_id, '') = coalesce(%s, '') "
            "AND alert_type = %s AND subject = %s AND state <> 'resolved'"
            + (" FOR UPDATE" if lock else ""), (site_id, alert_type, subject))
        return await cur.fetchone()


def _fact(alert_type: str, subject: str, explanation: str, at: datetime) -> dict[str, Any]:
    return {"kind": alert_type, "subject": subject, "at_us": int(at.timestamp() * 1e6),
            "attrs": {"explanation": explanation[:300]}}


async def _fold_standing(
    conn: AsyncConnection, incident_id: int, site_id: str | None, at: datetime
) -> None:
    """Door, plate and weight alerts of the site that stood alone in the FOLD_BEFORE_S before
    the incident opened or grew become its facts: resolved as part of it. The resolve is sent
    only where the alert's opening was (the incident's own webhook carries them anyway)."""
    if site_id is None:
        return
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = %s "
            "WHERE site_id = %s AND alert_type = ANY(%s) AND state <> 'resolved' "
            "AND last_seen_at >= %s "
            # another lot's weight drop is that lot's, not this incident's
            "AND (lot_id IS NULL OR lot_id = (SELECT lot_id FROM alerts WHERE id = %s)) "
            "RETURNING id, alert_type, subject, explanation, last_seen_at, "
            # whether its opening went out: a financier hears the end only of what it saw open
            "EXISTS (SELECT 1 FROM webhook_messages m WHERE m.alert_id = alerts.id "
            "AND m.event_type = 'alert.opened') AS announced",
            (f"incident:{incident_id}", site_id, sorted(FOLDED_TYPES),
             at - timedelta(seconds=FOLD_BEFORE_S), incident_id))
        folded = await cur.fetchall()
    if not folded:
        return
    row = await _one(conn, "SELECT evidence FROM alerts WHERE id = %s FOR UPDATE",
                     (incident_id,))
    assert row is not None
    evidence = merge_evidence(row[0] or {}, {
        "facts": [_fact(f["alert_type"], f["subject"], f["explanation"], f["last_seen_at"])
                  for f in folded],
        "incident": {"corroborated_by": sorted({f["alert_type"] for f in folded})}})
    await conn.execute("UPDATE alerts SET evidence = %s WHERE id = %s",
                       (json.dumps(evidence), incident_id))
    for f in folded:
        await _history(conn, f["id"], "resolved", f"incident:{incident_id}",
                       f"part of departure incident {incident_id}")
        # Not by suppression alone: an alert that opened before its lot was pledged, or
        # before the financier had an endpoint, was never sent opened, and a lone "resolved"
        # would tell of an alert the financier never saw (a suppressed one was never sent).
        if f["announced"]:
            await enqueue_alert_change(conn, f["id"], "alert.resolved")


async def _suppressed_by(conn: AsyncConnection, alert_id: int) -> str | None:
    row = await _one(conn, "SELECT suppressed_by FROM alerts WHERE id = %s", (alert_id,))
    return None if row is None else row[0]


async def _suppression(
    conn: AsyncConnection, alert_type: str, subject: str, site_id: str | None, at: datetime
) -> str | None:
    """Why a newly opened alert stays quiet: a snooze of its (type, subject), or maintenance."""
    row = await _one(
        conn,
        "SELECT 'snoozed until ' || to_char(until AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' by ' || actor FROM alert_snoozes "
        "WHERE site_id = coalesce(%s, '') AND alert_type = %s AND subject = %s AND until > %s "
        "UNION ALL "
        "SELECT 'maintenance window ' || id || ': ' || reason FROM maintenance_windows "
        "WHERE site_id = %s AND starts_at <= %s AND ends_at > %s "
        "AND (alert_types IS NULL OR %s = ANY(alert_types)) LIMIT 1",
        (site_id, alert_type, subject, at, site_id, at, at, alert_type))
    return None if row is None else str(row[0])


async def snooze(
    conn: AsyncConnection, alert_id: int, until: datetime, actor: str, comment: str
) -> dict[str, Any] | None:
    """Keep the alert's (site, type, subject) quiet until ``until``: re-openings are stored,
    not sent."""
    row = await _one(conn, "SELECT alert_type, subject, coalesce(site_id, '') FROM alerts "
                     "WHERE id = %s", (alert_id,))
    if row is None:
        return None
    await conn.execute(
        "INSERT INTO alert_snoozes (alert_type, subject, site_id, until, actor, comment) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (site_id, alert_type, subject) DO UPDATE "
        "SET until = excluded.until, actor = excluded.actor, comment = excluded.comment, "
        "created_at = now()", (row[0], row[1], row[2], until, actor, comment))
    await _history(conn, alert_id, "snoozed", actor, f"until {until.isoformat()}: {comment}")
    async with conn.cursor(row_factory=dict_row) as dcur:
        await dcur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))
        alert = await dcur.fetchone()
    assert alert is not None
    alert["snoozed_until"] = until
    return alert


async def clear_alert(
    conn: AsyncConnection, *, alert_type: str, subject: str, actor: str, comment: str,
    site_id: str | None = None,
) -> int | None:
    """Resolve the active alert because its condition cleared (e.g. all tags read again).

    ``site_id`` confines the clearing to that site's alert (a gateway only ever clears its own
    site's); None is for cloud-side callers whose subjects are already unique.
    """
    row = await _one(
        conn,
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = %s "
        "WHERE alert_type = %s AND subject = %s AND state <> 'resolved' "
        "AND (%s::text IS NULL OR site_id = %s::text) "
        "RETURNING id, suppressed_by",
        (actor, alert_type, subject, site_id, site_id),
    )
    if row is None:
        return None
    await _history(conn, row[0], "resolved", actor, comment)
    if row[1] is None:
        await enqueue_alert_change(conn, row[0], "alert.resolved")
    return int(row[0])


async def transition(
    conn: AsyncConnection, alert_id: int, action: str, actor: str, comment: str
) -> dict[str, Any] | None:
    """Acknowledge or resolve through the API. None if there is no such alert."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s FOR UPDATE",
                          (alert_id,))
        alert = await cur.fetchone()
        if alert is None:
            return None
        state = alert["state"]
        if action == "acknowledge":
            if state != "open":
                raise AlertTransitionError(f"alert {alert_id} is {state}; only open alerts "
                                           "can be acknowledged")
            sql = ("UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(), "
                   "acknowledged_by = %s WHERE id = %s")
        elif action == "resolve":
            if state == "resolved":
                raise AlertTransitionError(f"alert {alert_id} is already resolved")
            sql = ("UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = %s "
                   "WHERE id = %s")
        else:
            raise AlertTransitionError(f"unknown action {action!r}")
        await cur.execute(sql, (actor, alert_id))
        await _history(conn, alert_id, f"{action}d", actor, comment)
        if alert["suppressed_by"] is None:
            await enqueue_alert_change(conn, alert_id, f"alert.{action}d")
        await cur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))
        return await cur.fetchone()


async def _history(
    conn: AsyncConnection, alert_id: int, action: str, actor: str, comment: str = "",
    *, evidence: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO alert_history (alert_id, action, actor, comment, evidence) "
        "VALUES (%s, %s, %s, %s, %s)",
        (alert_id, action, actor, comment, json.dumps(evidence or {})),
    )


_SEVERITY_ORDER = (
    "CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END"
)


async def list_alerts(
    conn: AsyncConnection, condition: tuple[str, list[Any]], *, state: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest and most severe first; ``condition`` is the caller's visibility (cloud.scope)."""
    cond, params = condition
    where = [cond]
    if state == "active":
        where.append("state <> 'resolved'")
    elif state is not None:
        where.append("state = %s")
        params = [*params, state]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "
            f"ORDER BY (state = 'resolved'), {_SEVERITY_ORDER}, last_seen_at DESC LIMIT %s",
            [*params, limit],
        )
        return await cur.fetchall()


async def get_alert(
    conn: AsyncConnection, condition: tuple[str, list[Any]], alert_id: int
) -> dict[str, Any] | None:
    cond, params = condition
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s AND {cond}", [alert_id, *params]
        )
        alert = await cur.fetchone()
        if alert is None:
            return None
        await cur.execute(
            "SELECT at, action, actor, comment, evidence FROM alert_history "
            "WHERE alert_id = %s ORDER BY at, id", (alert_id,))
        alert["history"] = await cur.fetchall()
        return alert


_PUBLIC = ("id", "alert_type", "subject", "severity", "site_id", "lot_id", "state",
           "explanation", "evidence", "count", "first_seen_at", "last_seen_at",
           "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "rule")


def _jsonable(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


async def enqueue_alert_change(conn: AsyncConnection[Any], alert_id: int, event_type: str) -> int:
    """Write one message and a pending delivery per matching endpoint. Returns deliveries.

    Two statements (the alert with its matching endpoints; the message, its deliveries and
    the wake-up): this runs inside ingest's batch transaction, where each round trip is
    latency every alert of the batch waits for.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {', '.join('a.' + c for c in _PUBLIC)}, l.financier_id, ARRAY("
            "  SELECT e.id FROM webhook_endpoints e WHERE e.financier_id = l.financier_id"
            "  AND (cardinality(e.event_types) = 0 OR %(t)s = ANY(e.event_types))"
            "  AND (e.lot_ids IS NULL OR a.lot_id = ANY(e.lot_ids))"
            "  AND (e.receipt_numbers IS NULL OR e.receipt_numbers &&"
            "       ARRAY(SELECT number FROM receipts WHERE lot_id = a.lot_id))"
            ") AS endpoints FROM alerts a LEFT JOIN lots l ON l.id = a.lot_id WHERE a.id = %(a)s",
            {"a": alert_id, "t": event_type})
        alert = await cur.fetchone()
        # Only alerts about pledged goods go to a financier.
        if alert is None or alert["financier_id"] is None or not alert["endpoints"]:
            return 0
        endpoints: list[str] = alert["endpoints"]
        now = datetime.now(UTC)
        payload = {
            "type": event_type,
            "timestamp": now.isoformat(),
            "data": {"alert": {k: _jsonable(alert[k]) for k in _PUBLIC}},
        }
        await cur.execute(
            "WITH m AS (INSERT INTO webhook_messages (msg_id, event_type, alert_id, payload) "
            "VALUES (%s, %s, %s, %s) RETURNING seq), "
            "d AS (INSERT INTO webhook_deliveries (endpoint_id, message_seq, next_attempt_at) "
            "SELECT unnest(%s::text[]), m.seq, now() FROM m) "
            "SELECT pg_notify(%s, '')",
            (f"msg_{uuid.uuid4().hex}", event_type, alert_id, json.dumps(payload), endpoints,
             CHANNEL),
        )
        return len(endpoints)
