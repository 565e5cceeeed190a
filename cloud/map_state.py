"""What the supervisor's map shows, as of a feed cursor: sites, fences, gateways, readers, lots,
trackers, vehicles and alerts, each filtered by the principal's visibility (cloud.scope).

The page loads this once, then applies live events after ``cursor`` (cloud.live), so the state
and the feed join without a gap: the cursor is taken before the state is read, and every event
the page then replays is an idempotent update.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud import alerts, live, registry, telemetry
from cloud.actor_names import name_actors
from cloud.apikeys import Principal
from cloud.receipts.lots import get_lot
from cloud.receipts.records import list_receipts
from cloud.registry import NotFound
from cloud.scope import alert_condition, lot_condition, site_condition
from decisions.alert_types import AlertType

SITE_GEOJSON = Path(__file__).resolve().parent.parent / "geofences" / "sites"
TRAIL_FIXES = 20
_SHA256_LEN = 64


def _sees_movements(p: Principal) -> bool:
    # Trackers and gate cameras watch a whole site, other pledgees' goods included.
    return p.role in ("admin", "supervisor")


async def _rows(conn: AsyncConnection, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def site_fences(conn: AsyncConnection, site_id: str) -> dict[str, Any] | None:
    """The site's newest fence version, else its GeoJSON file shipped in geofences/sites."""
    rows = await _rows(conn, "SELECT collection, version FROM geofence_sets WHERE site_id = %s "
                       "ORDER BY version DESC LIMIT 1", (site_id,))
    if rows:
        return {**rows[0]["collection"], "version": rows[0]["version"]}
    path = SITE_GEOJSON / f"{site_id}.geojson"
    if path.parent == SITE_GEOJSON and path.is_file():
        collection: dict[str, Any] = json.loads(path.read_text())
        return collection
    return None


async def lots_with_counts(
    conn: AsyncConnection, p: Principal, lot_id: str | None = None
) -> list[dict[str, Any]]:
    cond, params = lot_condition(p)
    only = ""
    if lot_id is not None:
        only, params = "AND lots.id = %s", [*params, lot_id]
    return await _rows(conn, f"""
        SELECT lots.id, lots.site_id, lots.name, lots.goods_kind, lots.pieces, lots.zone,
               lots.fence, lots.financier_id, lots.depositor,
               count(t.epc) AS expected,
               count(t.epc) FILTER (WHERE s.presence = 'present') AS present,
               count(t.epc) FILTER (WHERE s.presence = 'missing') AS missing,
               count(t.epc) FILTER (WHERE coalesce(s.presence, 'unknown') = 'unknown') AS unknown,
               max(s.presence_changed_at) AS changed_at
        FROM lots LEFT JOIN lot_tags t ON t.lot_id = lots.id LEFT JOIN tag_state s ON s.epc = t.epc
        WHERE {cond} {only} GROUP BY lots.id ORDER BY lots.id
        """, params)


async def map_state(conn: AsyncConnection, p: Principal, tile_url: str | None) -> dict[str, Any]:
    cursor = await live.head(conn)  # first: the page replays everything after it
    sites = await registry.list_sites(conn, p)
    site_ids = [s["id"] for s in sites]
    cond, params = site_condition(p, "g.site_id")
    gateways = await _rows(conn, "SELECT g.id, g.site_id, g.online, g.last_seen_at, "
                           f"g.status_changed_at FROM gateways g WHERE {cond} ORDER BY g.id",
                           params)
    readers = await _rows(conn, f"""
        SELECT s.gateway_id, s.reader, max(s.last_seen_at) AS last_seen_at,
               NOT EXISTS (SELECT 1 FROM alerts a WHERE a.alert_type = '{AlertType.READER_OFFLINE}'
                           AND a.subject = 'reader:' || s.reader AND a.state <> 'resolved'
                           AND a.source_gateway = s.gateway_id) AS online
        FROM tag_state s JOIN gateways g ON g.id = s.gateway_id
        WHERE s.reader IS NOT NULL AND {cond} GROUP BY s.gateway_id, s.reader
        ORDER BY 1, 2
        """, params)
    trackers: list[dict[str, Any]] = []
    vehicles: list[dict[str, Any]] = []
    if _sees_movements(p):
        trackers = await _rows(conn, f"""
            SELECT ts.tracker, g.site_id, ts.lon, ts.lat, ts.fix_at, ts.accuracy_m,
                   ts.battery_pct, ts.source,
                   coalesce((SELECT json_agg(json_build_array(lon, lat) ORDER BY fix_at)
                             FROM (SELECT lon, lat, fix_at FROM tracker_positions tp
                                   WHERE tp.tracker = ts.tracker
                                   ORDER BY fix_at DESC LIMIT %s) last), '[]') AS trail
            FROM tracker_state ts JOIN gateways g ON g.id = ts.gateway_id
            WHERE {cond} ORDER BY ts.tracker
            """, [TRAIL_FIXES, *params])
        vehicles = await _rows(conn, f"""
            SELECT r.gateway_id, g.site_id, r.seq, r.observed_at AS at,
                   r.body ->> 'camera' AS camera,
                   r.body ->> 'plate' AS plate, r.body ->> 'direction' AS direction,
                   (r.body ->> 'confidence_pct')::int AS confidence_pct,
                   coalesce(r.body -> 'evidence', '[]') AS evidence
            FROM raw_events r JOIN gateways g ON g.id = r.gateway_id
            WHERE r.type = 'plate_read' AND r.observed_at > now() - interval '2 hours' AND {cond}
            ORDER BY r.observed_at DESC LIMIT 50
            """, params)
    return {
        "cursor": str(cursor),
        "tile_url": tile_url,
        "role": p.role,
        "financier_id": p.financier_id,
        "sites": [{**s, "geofences": await site_fences(conn, s["id"])} for s in sites],
        "gateways": gateways,
        "readers": readers,
        "lots": await lots_with_counts(conn, p),
        "trackers": trackers,
        "vehicles": vehicles,
        "alerts": await alerts.list_alerts(conn, alert_condition(p), state="active", limit=200),
        "site_ids": site_ids,
    }


async def tracker_positions(conn: AsyncConnection, p: Principal) -> list[dict[str, Any]]:
    """Latest fix of every tracker the principal may see (what a polling client would read)."""
    if not _sees_movements(p):
        return []
    cond, params = site_condition(p, "g.site_id")
    return await _rows(conn, f"""
        SELECT ts.tracker, g.site_id, ts.lon, ts.lat, ts.fix_at, ts.accuracy_m
        FROM tracker_state ts JOIN gateways g ON g.id = ts.gateway_id
        WHERE {cond} ORDER BY ts.tracker""", params)


async def lot_panel(conn: AsyncConnection, p: Principal, lot_id: str) -> dict[str, Any]:
    """Receipts, status, tag presence over the last half hour and sensors against ranges."""
    await get_lot(conn, p, lot_id)  # visibility, and the same 404 for others' lots
    lot = (await lots_with_counts(conn, p, lot_id))[0]
    ranges = (await _rows(conn, "SELECT temperature_c_min, temperature_c_max, humidity_pct_min, "
                          "humidity_pct_max FROM lots WHERE id = %s", (lot_id,)))[0]
    end = datetime.now(UTC)
    counts = await telemetry.lot_counts(conn, p, lot_id, start=end - timedelta(minutes=30),
                                        end=end, bucket=timedelta(seconds=15))
    sensors = await _rows(conn, """
        SELECT DISTINCT ON (sensor, quantity) sensor, quantity, unit, value, observed_at
        FROM sensor_readings WHERE lot_id = %s AND observed_at > now() - interval '1 day'
        ORDER BY sensor, quantity, observed_at DESC
        """, (lot_id,))
    for reading in sensors:
        low, high = _allowed(ranges, reading["quantity"])
        reading.update(min=low, max=high,
                       ok=(low is None or reading["value"] >= low)
                       and (high is None or reading["value"] <= high))
    receipts = [r for r in await list_receipts(conn, p) if r.get("lot_id") == lot_id]
    lot_alerts = await alerts.list_alerts(
        conn, _and(alert_condition(p), ("alerts.lot_id = %s", [lot_id])), state=None, limit=20)
    return {"lot": lot, "counts": counts, "sensors": sensors, "receipts": receipts,
            "alerts": lot_alerts}


def _allowed(ranges: dict[str, Any], quantity: str) -> tuple[float | None, float | None]:
    if quantity.startswith("temperature"):
        return ranges["temperature_c_min"], ranges["temperature_c_max"]
    if quantity.startswith("humidity"):
        return ranges["humidity_pct_min"], ranges["humidity_pct_max"]
    return None, None


def _and(a: tuple[str, list[Any]], b: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    return f"({a[0]}) AND ({b[0]})", [*a[1], *b[1]]


def image_refs(evidence: Any) -> list[dict[str, Any]]:
    """Every evidence image reference (``{"sha256": ..., "kind": ...}``) inside an alert."""
    found: list[dict[str, Any]] = []
    if isinstance(evidence, dict):
        sha = evidence.get("sha256")
        if isinstance(sha, str) and len(sha) == _SHA256_LEN:
            found.append({"sha256": sha, "kind": evidence.get("kind", "image")})
        for value in evidence.values():
            found += image_refs(value)
    elif isinstance(evidence, list):
        for value in evidence:
            found += image_refs(value)
    return found


async def alert_evidence(conn: AsyncConnection, p: Principal, alert_id: int) -> dict[str, Any]:
    """The alert with its history, the lot's tag counts around it, images, crossing fixes."""
    alert = await alerts.get_alert(conn, alert_condition(p), alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    alert = await name_actors(conn, alert)
    start = alert["first_seen_at"] - timedelta(minutes=10)
    end = max(alert["last_seen_at"] + timedelta(minutes=2), start + timedelta(minutes=15))
    counts: list[dict[str, Any]] = []
    if alert["lot_id"] is not None:
        counts = await telemetry.lot_counts(conn, p, alert["lot_id"], start=start, end=end,
                                            bucket=timedelta(seconds=10))
    crossings: list[dict[str, Any]] = []
    fixes: list[dict[str, Any]] = []
    subject = alert["subject"]
    if subject.startswith("tracker:") and _sees_movements(p):
        tracker = subject.removeprefix("tracker:")
        crossings = await _rows(conn, """
            SELECT kind, fence_id, fence_kind, lots, lon, lat, accuracy_m, fix_at, run_fixes
            FROM geofence_events WHERE tracker = %s AND fix_at BETWEEN %s AND %s
            ORDER BY fix_at""", (tracker, start, end))
        fixes = await _rows(conn, """
            SELECT lon, lat, accuracy_m, fix_at FROM tracker_positions
            WHERE tracker = %s AND fix_at BETWEEN %s AND %s ORDER BY fix_at LIMIT 500""",
            (tracker, start, end))
    images = [{**ref, "url": f"/api/v1/map/images/{ref['sha256']}"}
              for ref in image_refs(alert["evidence"])]
    return {"alert": alert, "counts": counts, "crossings": crossings, "fixes": fixes,
            "images": images}


async def evidence_image(conn: AsyncConnection, p: Principal, sha256: str) -> bytes:
    cond, params = site_condition(p, "g.site_id")
    rows = await _rows(conn, "SELECT i.data FROM evidence_images i JOIN gateways g "
                       f"ON g.id = i.gateway_id WHERE i.sha256 = %s AND {cond}",
                       [sha256, *params])
    if not rows:
        raise NotFound(f"no image {sha256}")
    return bytes(rows[0]["data"])
