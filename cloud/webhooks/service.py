"""Endpoints, secrets, the delivery log and replays: the SQL behind the webhooks API.

A financier manages only their own endpoints; an admin manages any (naming the financier).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.alerts import CHANNEL, EVENT_TYPES
from cloud.apikeys import Principal
from cloud.scope import endpoint_condition
from cloud.webhooks import signing, ssrf

ENDPOINT_COLUMNS = ("id, financier_id, url, event_types, lot_ids, receipt_numbers, enabled, "
                    "disabled_reason, disabled_at, failing_since, created_at")


class WebhookError(ValueError):
    """The request cannot be done as asked (a bad URL, an unknown event type)."""


class NotFound(LookupError):
    pass


def _check(url: str | None, event_types: list[str] | None) -> None:
    if url is not None:
        try:
            ssrf.parse_url(url)
        except ssrf.BlockedTarget as err:
            raise WebhookError(str(err)) from None
    for t in event_types or []:
        if t not in EVENT_TYPES:
            raise WebhookError(f"unknown event type {t!r} (known: {', '.join(EVENT_TYPES)})")


async def create_endpoint(
    conn: AsyncConnection[Any], p: Principal, *, url: str, event_types: list[str],
    lot_ids: list[str] | None, receipt_numbers: list[str] | None, financier_id: str | None,
) -> dict[str, Any]:
    """Returns the endpoint and its first secret (shown this once)."""
    _check(url, event_types)
    owner = p.financier_id if p.role == "financier" else financier_id
    if owner is None:
        raise WebhookError("an admin must name the financier the endpoint belongs to")
    endpoint_id = f"ep_{uuid.uuid4().hex[:16]}"
    secret = signing.new_secret()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO webhook_endpoints (id, financier_id, url, event_types, lot_ids, "
            f"receipt_numbers) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {ENDPOINT_COLUMNS}",
            (endpoint_id, owner, url, event_types, lot_ids, receipt_numbers))
        endpoint = await cur.fetchone()
        await cur.execute("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (%s, %s)",
                          (endpoint_id, secret))
    assert endpoint is not None
    return {**endpoint, "secret": secret}


async def list_endpoints(conn: AsyncConnection[Any], p: Principal) -> list[dict[str, Any]]:
    cond, params = endpoint_condition(p)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE {cond} "
                          "ORDER BY created_at", params)
        return await cur.fetchall()


async def get_endpoint(conn: AsyncConnection[Any], p: Principal, endpoint_id: str
                       ) -> dict[str, Any]:
    cond, params = endpoint_condition(p)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints "
                          f"WHERE id = %s AND {cond}", [endpoint_id, *params])
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return row


async def update_endpoint(
    conn: AsyncConnection[Any], p: Principal, endpoint_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change URL/filters, or enable (clears the failure clock) / disable by hand."""
    await get_endpoint(conn, p, endpoint_id)
    _check(changes.get("url"), changes.get("event_types"))
    sets, params = [], []
    for column in ("url", "event_types", "lot_ids", "receipt_numbers"):
        if column in changes:
            sets.append(f"{column} = %s")
            params.append(changes[column])
    if changes.get("enabled") is True:
        sets.append("enabled = true, disabled_reason = NULL, disabled_at = NULL, "
                    "failing_since = NULL")
    elif changes.get("enabled") is False:
        sets.append("enabled = false, disabled_reason = 'disabled by ' || %s, disabled_at = now()")
        params.append(p.key_id)
    if sets:
        await conn.execute(f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE id = %s",
                           [*params, endpoint_id])
        await conn.execute(f"NOTIFY {CHANNEL}")
    return await get_endpoint(conn, p, endpoint_id)


async def rotate_secret(
    conn: AsyncConnection[Any], p: Principal, endpoint_id: str, overlap: timedelta,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new secret signs from now on; the old ones keep signing too until ``overlap`` ends."""
    await get_endpoint(conn, p, endpoint_id)
    now = now or datetime.now(UTC)
    secret = signing.new_secret()
    await conn.execute(
        "UPDATE webhook_secrets SET expires_at = %s WHERE endpoint_id = %s "
        "AND (expires_at IS NULL OR expires_at > %s)", (now + overlap, endpoint_id, now + overlap))
    await conn.execute("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (%s, %s)",
                       (endpoint_id, secret))
    return {"endpoint_id": endpoint_id, "secret": secret,
            "previous_secrets_expire_at": now + overlap}


async def list_deliveries(
    conn: AsyncConnection[Any], p: Principal, endpoint_id: str, state: str | None, limit: int
) -> list[dict[str, Any]]:
    await get_endpoint(conn, p, endpoint_id)
    where, params = ["d.endpoint_id = %s"], [endpoint_id]
    if state:
        where.append("d.state = %s")
        params.append(state)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.id, d.endpoint_id, d.state, d.attempts, d.next_attempt_at, d.last_status, "
            "d.last_error, d.delivered_at, d.created_at, m.msg_id, m.seq AS message_seq, "
            "m.event_type, m.alert_id FROM webhook_deliveries d "
            "JOIN webhook_messages m ON m.seq = d.message_seq "
            f"WHERE {' AND '.join(where)} ORDER BY m.seq DESC, d.id DESC LIMIT %s",
            [*params, limit])
        return await cur.fetchall()


async def get_delivery(conn: AsyncConnection[Any], p: Principal, delivery_id: int
                       ) -> dict[str, Any]:
    cond, params = endpoint_condition(p, "e")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.*, m.msg_id, m.event_type, m.payload FROM webhook_deliveries d "
            "JOIN webhook_messages m ON m.seq = d.message_seq "
            "JOIN webhook_endpoints e ON e.id = d.endpoint_id "
            f"WHERE d.id = %s AND {cond}", [delivery_id, *params])
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        await cur.execute("SELECT at, status, error, duration_ms FROM webhook_attempts "
                          "WHERE delivery_id = %s ORDER BY at, id", (delivery_id,))
        row["attempts_log"] = await cur.fetchall()
    return row


async def replay(conn: AsyncConnection[Any], p: Principal, delivery_id: int) -> dict[str, Any]:
    """Send the same message (same webhook-id) again: a new delivery row, due now."""
    old = await get_delivery(conn, p, delivery_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, message_seq, next_attempt_at) "
            "VALUES (%s, %s, now()) RETURNING id", (old["endpoint_id"], old["message_seq"]))
        row = await cur.fetchone()
        await cur.execute(f"NOTIFY {CHANNEL}")
    assert row is not None
    return await get_delivery(conn, p, row["id"])
