"""What the supervisor's console finds and lists beyond the live map: search, the alert history
with filters, gateway and reader details, a tracker's track, and the series behind the CSV
exports. Every query is filtered by the principal's visibility (cloud.scope); trackers and
plates watch whole sites, so only admins and supervisors see them (as on the map).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.alerts import ALERT_COLUMNS
from cloud.apikeys import Principal
from cloud.receipts.access import receipt_scope
from cloud.receipts.lots import get_lot
from cloud.registry import NotFound, get_gateway
from cloud.scope import alert_condition, lot_condition, site_condition

SEARCH_LIMIT = 8  # per kind: a search box suggests, it does not list everything
READ_RATE_WINDOW = timedelta(minutes=5)
PLATE_HORIZON = timedelta(days=30)


def sees_movements(p: Principal) -> bool:
    # Trackers and gate cameras watch a whole site, other pledgees' goods included.
    return p.role in ("admin", "supervisor")


async def _rows(conn: AsyncConnection, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(conn: AsyncConnection, p: Principal, q: str) -> list[dict[str, Any]]:
    """Lots, receipts, tags (EPC), gateways, plates and trackers whose name contains ``q``."""
    like = _like(q.strip())
    lot_cond, lot_params = lot_condition(p)
    found: list[dict[str, Any]] = []
    found += await _rows(conn, f"""
        SELECT 'lot' AS kind, id, name AS label, site_id, id AS lot_id, NULL::timestamptz AS at
        FROM lots WHERE (id ILIKE %s OR name ILIKE %s) AND {lot_cond} ORDER BY id LIMIT %s
        """, [like, like, *lot_params, SEARCH_LIMIT])
    rcond, rparams = receipt_scope(p)
    found += await _rows(conn, f"""
        SELECT 'receipt' AS kind, r.number AS id, r.status || ' · ' || r.holder AS label,
               l.site_id, r.lot_id, NULL::timestamptz AS at
        FROM receipts r JOIN lots l ON l.id = r.lot_id
        WHERE r.number ILIKE %s AND {rcond} ORDER BY r.number LIMIT %s
        """, [like, *rparams, SEARCH_LIMIT])
    found += await _rows(conn, f"""
        SELECT 'epc' AS kind, t.epc AS id, coalesce(s.presence, 'unknown') AS label,
               lots.site_id, t.lot_id, s.last_seen_at AS at
        FROM lot_tags t JOIN lots ON lots.id = t.lot_id LEFT JOIN tag_state s ON s.epc = t.epc
        WHERE t.epc ILIKE %s AND {lot_cond} ORDER BY t.epc LIMIT %s
        """, [like, *lot_params, SEARCH_LIMIT])
    if p.role in ("admin", "supervisor"):
        gcond, gparams = site_condition(p, "g.site_id")
        found += await _rows(conn, f"""
            SELECT 'gateway' AS kind, g.id, CASE WHEN g.online THEN 'online' ELSE 'offline' END
                   AS label, g.site_id, NULL AS lot_id, g.last_seen_at AS at
            FROM gateways g WHERE g.id ILIKE %s AND {gcond} ORDER BY g.id LIMIT %s
            """, [like, *gparams, SEARCH_LIMIT])
    if sees_movements(p):
        gcond, gparams = site_condition(p, "g.site_id")
        found += await _rows(conn, f"""
            SELECT DISTINCT ON (r.body ->> 'plate') 'plate' AS kind, r.body ->> 'plate' AS id,
                   coalesce(r.body ->> 'direction', '') AS label, g.site_id, NULL AS lot_id,
                   r.observed_at AS at
            FROM raw_events r JOIN gateways g ON g.id = r.gateway_id
            WHERE r.type = 'plate_read' AND r.observed_at > now() - %s
              AND r.body ->> 'plate' ILIKE %s AND {gcond}
            ORDER BY r.body ->> 'plate', r.observed_at DESC LIMIT %s
            """, [PLATE_HORIZON, like, *gparams, SEARCH_LIMIT])
        found += await _rows(conn, f"""
            SELECT 'tracker' AS kind, ts.tracker AS id, ts.source AS label, g.site_id,
                   NULL AS lot_id, ts.fix_at AS at
            FROM tracker_state ts JOIN gateways g ON g.id = ts.gateway_id
            WHERE ts.tracker ILIKE %s AND {gcond} ORDER BY ts.tracker LIMIT %s
            """, [like, *gparams, SEARCH_LIMIT])
    return found


async def alert_history(
    conn: AsyncConnection, p: Principal, *, severity: list[str], alert_type: list[str],
    site_id: str | None, state: str | None, start: datetime | None, end: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Alerts of every state, newest first; a time range keeps those active within it."""
    cond, params = alert_condition(p)
    where = [cond]
    if severity:
        where.append("severity = ANY(%s)")
        params = [*params, severity]
    if alert_type:
        where.append("alert_type = ANY(%s)")
        params = [*params, alert_type]
    if site_id:
        where.append("site_id = %s")
        params = [*params, site_id]
    if state == "active":
        where.append("state <> 'resolved'")
    elif state:
        where.append("state = %s")
        params = [*params, state]
    if start is not None:
        # An alert still active at ``start`` overlaps the range, however old its last repeat.
        where.append("(state <> 'resolved' OR coalesce(resolved_at, last_seen_at) >= %s)")
        params = [*params, start]
    if end is not None:
        where.append("first_seen_at <= %s")
        params = [*params, end]
    return await _rows(conn, f"""
        SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)}
        ORDER BY last_seen_at DESC, id DESC LIMIT %s""", [*params, limit])


async def gateway_details(conn: AsyncConnection, p: Principal, gateway_id: str) -> dict[str, Any]:
    """Last seen, online, read rate, outbox depth and agent version of one gateway."""
    if p.role not in ("admin", "supervisor"):
        raise NotFound(f"no gateway {gateway_id}")
    gw = await get_gateway(conn, p, gateway_id)
    health = await _rows(conn, """
        SELECT observed_at, body FROM telemetry
        WHERE gateway_id = %s AND kind IN ('agent', 'agent_health')
        ORDER BY observed_at DESC LIMIT 1""", (gateway_id,))
    status = await _rows(conn, """
        SELECT body ->> 'agent_version' AS version FROM raw_events
        WHERE gateway_id = %s AND type = 'gateway_status' AND body ? 'agent_version'
        ORDER BY observed_at DESC LIMIT 1""", (gateway_id,))
    reads = await _rows(conn, """
        SELECT count(*) AS n FROM tag_observations
        WHERE gateway_id = %s AND observed_at > now() - %s""", (gateway_id, READ_RATE_WINDOW))
    readers = await _rows(conn, """
        SELECT reader, max(observed_at) AS last_seen_at, count(*) AS n
        FROM tag_observations WHERE gateway_id = %s AND observed_at > now() - %s
        GROUP BY reader ORDER BY reader""", (gateway_id, READ_RATE_WINDOW))
    body = health[0]["body"] if health else {}
    window_s = READ_RATE_WINDOW.total_seconds()
    return {
        "id": gw["id"], "site_id": gw["site_id"], "online": gw["online"],
        "last_seen_at": gw["last_seen_at"], "status_changed_at": gw["status_changed_at"],
        "version": status[0]["version"] if status else None,
        "outbox_depth": body.get("outbox_depth"), "outbox_bytes": body.get("outbox_bytes"),
        "health_at": health[0]["observed_at"] if health else None,
        "read_rate_per_s": round(reads[0]["n"] / window_s, 2),
        "readers": [{"reader": r["reader"], "last_seen_at": r["last_seen_at"],
                     "read_rate_per_s": round(r["n"] / window_s, 2)} for r in readers],
    }


async def reader_details(
    conn: AsyncConnection, p: Principal, gateway_id: str, reader: str
) -> dict[str, Any]:
    """Last read, read rate, antennas and tags in view of one reader of a gateway."""
    gw = await gateway_details(conn, p, gateway_id)
    state = await _rows(conn, """
        SELECT max(last_seen_at) AS last_seen_at, count(*) AS tags,
               array_agg(DISTINCT antenna) FILTER (WHERE antenna IS NOT NULL) AS antennas
        FROM tag_state WHERE gateway_id = %s AND reader = %s""", (gateway_id, reader))
    rate = next((r for r in gw["readers"] if r["reader"] == reader), None)
    if not state[0]["tags"] and rate is None:
        raise NotFound(f"no reader {reader} at {gateway_id}")
    return {
        "gateway_id": gateway_id, "reader": reader, "site_id": gw["site_id"],
        "last_seen_at": (rate or {}).get("last_seen_at") or state[0]["last_seen_at"],
        "read_rate_per_s": (rate or {}).get("read_rate_per_s", 0.0),
        "tags": state[0]["tags"], "antennas": sorted(state[0]["antennas"] or []),
        "gateway_version": gw["version"], "gateway_online": gw["online"],
    }


async def track(
    conn: AsyncConnection, p: Principal, tracker: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """A tracker's fixes in [start, end], oldest first (for replay)."""
    if not sees_movements(p):
        raise NotFound(f"no tracker {tracker}")
    cond, params = site_condition(p, "g.site_id")
    return await _rows(conn, f"""
        SELECT tp.fix_at, tp.lon, tp.lat, tp.accuracy_m, tp.battery_pct
        FROM tracker_positions tp JOIN gateways g ON g.id = tp.gateway_id
        WHERE tp.tracker = %s AND tp.fix_at BETWEEN %s AND %s AND {cond}
        ORDER BY tp.fix_at LIMIT 5000""", [tracker, start, end, *params])


async def lot_series(
    conn: AsyncConnection, p: Principal, lot_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The lot's tag counts and sensor readings in [start, end], one row per observation."""
    await get_lot(conn, p, lot_id)  # visibility, and the same 404 for others' lots
    return await _rows(conn, """
        SELECT observed_at, 'tags' AS series, gateway_id AS source, 'present' AS quantity,
               present::float8 AS value, 'tags' AS unit, expected, missing, unknown
        FROM lot_counts WHERE lot_id = %s AND observed_at BETWEEN %s AND %s
        UNION ALL
        SELECT observed_at, 'sensor', sensor, quantity, value, unit, NULL, NULL, NULL
        FROM sensor_readings WHERE lot_id = %s AND observed_at BETWEEN %s AND %s
        ORDER BY 1, 2, 3""", (lot_id, start, end, lot_id, start, end))


async def missing_tags(
    conn: AsyncConnection, p: Principal, alert_id: int
) -> list[dict[str, Any]]:
    """The tags an alert names as missing, each with its last read (time, reader, antenna)."""
    cond, params = alert_condition(p)
    rows = await _rows(conn, f"SELECT evidence FROM alerts WHERE id = %s AND {cond}",
                       [alert_id, *params])
    if not rows:
        raise NotFound(f"no alert {alert_id}")
    evidence = rows[0]["evidence"] or {}
    epcs = [e for e in evidence.get("missing_epcs") or [] if isinstance(e, str)]
    if not epcs:
        return []
    found = {r["epc"]: r for r in await _rows(conn, """
        SELECT epc, presence, last_seen_at, gateway_id, reader, antenna, rssi_cdbm
        FROM tag_state WHERE epc = ANY(%s)""", (epcs,))}
    return [found.get(epc) or {"epc": epc, "presence": None, "last_seen_at": None,
                               "gateway_id": None, "reader": None, "antenna": None,
                               "rssi_cdbm": None} for epc in epcs]


async def people(conn: AsyncConnection, actors: list[str]) -> dict[str, str]:
    """The names the actors' API keys were issued to (their label), by key id."""
    rows = await _rows(conn, "SELECT id, label FROM api_keys WHERE id = ANY(%s) AND label <> ''",
                       (actors,))
    return {r["id"]: r["label"] for r in rows}
