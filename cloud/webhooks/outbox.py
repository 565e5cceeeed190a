"""The outbox side: called inside the transaction that changes an alert, so the message and
its deliveries commit (or roll back) with the change itself. Workers are woken by NOTIFY,
which PostgreSQL also delivers only on commit.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

CHANNEL = "pw_webhooks"
EVENT_TYPES = ("alert.opened", "alert.acknowledged", "alert.resolved")

_PUBLIC = ("id", "alert_type", "subject", "severity", "site_id", "lot_id", "state",
           "explanation", "evidence", "count", "first_seen_at", "last_seen_at",
           "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "rule")


def _jsonable(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


async def enqueue_alert_change(conn: AsyncConnection[Any], alert_id: int, event_type: str) -> int:
    """Write one message and a pending delivery per matching endpoint. Returns deliveries."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {', '.join('a.' + c for c in _PUBLIC)}, l.financier_id "
            "FROM alerts a LEFT JOIN lots l ON l.id = a.lot_id WHERE a.id = %s", (alert_id,))
        alert = await cur.fetchone()
        if alert is None or alert["financier_id"] is None:
            return 0  # only alerts about pledged goods go to a financier
        await cur.execute(
            """
            SELECT id FROM webhook_endpoints
            WHERE financier_id = %(f)s
              AND (cardinality(event_types) = 0 OR %(t)s = ANY(event_types))
              AND (lot_ids IS NULL OR %(lot)s = ANY(lot_ids))
              AND (receipt_numbers IS NULL OR receipt_numbers &&
                   ARRAY(SELECT number FROM receipts WHERE lot_id = %(lot)s))
            """,
            {"f": alert["financier_id"], "t": event_type, "lot": alert["lot_id"]},
        )
        endpoints = [r["id"] for r in await cur.fetchall()]
        if not endpoints:
            return 0
        now = datetime.now(UTC)
        payload = {
            "type": event_type,
            "timestamp": now.isoformat(),
            "data": {"alert": {k: _jsonable(alert[k]) for k in _PUBLIC}},
        }
        await cur.execute(
            "INSERT INTO webhook_messages (msg_id, event_type, alert_id, payload) "
            "VALUES (%s, %s, %s, %s) RETURNING seq",
            (f"msg_{uuid.uuid4().hex}", event_type, alert_id, json.dumps(payload)),
        )
        row = await cur.fetchone()
        assert row is not None
        await cur.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, message_seq, next_attempt_at) "
            "SELECT unnest(%s::text[]), %s, now()",
            (endpoints, row["seq"]),
        )
        await cur.execute(f"NOTIFY {CHANNEL}")
        return len(endpoints)
