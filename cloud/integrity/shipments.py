"""Shipments in PostgreSQL: declared, judged against stored sensor facts, verdicts delivered.

Judging reads the facts the decision needs (the tracker's positions, the gates' plate reads,
the shipment's tags' presence changes at the sites involved) in three indexed queries, calls
:func:`decisions.shipments.judge`, and when the verdict changes: stores it, appends a
``shipment.judged`` entry to the evidence ledger in the same transaction, and for
``contradicted`` raises an ``integrity.shipment_contradicted`` alert (``cloud.alerts``), whose
webhook reaches the financier of the shipment's lot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud import alerts
from cloud.apikeys import Principal
from cloud.integrity import rows
from cloud.receipts import ledger
from cloud.registry import NotFound
from cloud.scope import lot_condition, managed_site_condition, site_condition
from decisions.alert_text import alert_text
from decisions.shipments import (
    ALERT_TYPE,
    Direction,
    Judgement,
    Place,
    PlateRead,
    Plausibility,
    Shipment,
    ShipmentFacts,
    TagMovement,
    TrackFix,
    Verdict,
    judge,
)

LEDGER_KIND = "shipment.judged"
ACTOR = "integrity"
MAX_FIXES = 20_000  # one shipment's track; a tracker reporting every second for 5 hours
# How long after the window the track is read: enough to prove a phantom (fixes past the
# latest plausible arrival), bounded so an old shipment's judgement stays cheap.
TRACK_TAIL = timedelta(hours=12)

COLUMNS = (
    "id, site_id, lot_id, direction, counterparty, origin, destination, plate, tracker, epcs, "
    "window_start, window_end, created_at, created_by, verdict, verdict_at, evidence, ledger_index"
)


@dataclass(frozen=True, slots=True)
class NewShipment:
    id: str
    site_id: str
    direction: Direction
    counterparty: str
    origin: Place
    destination: Place
    plate: str
    window_start: datetime
    window_end: datetime
    tracker: str | None = None
    lot_id: str | None = None
    epcs: tuple[str, ...] = ()


def _place_json(place: Place) -> str:
    return json.dumps({"name": place.name, "lat": place.lat, "lon": place.lon,
                       "radius_m": place.radius_m, "site": place.site})


def _place(value: dict[str, Any]) -> Place:
    return Place(value["name"], float(value["lat"]), float(value["lon"]),
                 float(value.get("radius_m", 300.0)), value.get("site"))


def _visible(p: Principal) -> tuple[str, list[Any]]:
    # A financier sees the shipments of the lots pledged to them; others by site.
    if p.role == "financier":
        cond, params = lot_condition(p, "l")
        return f"s.lot_id IN (SELECT l.id FROM lots l WHERE {cond})", params
    return site_condition(p, "s.site_id")


async def create(conn: AsyncConnection[Any], p: Principal, new: NewShipment) -> dict[str, Any]:
    cond, params = managed_site_condition(p, "id")
    cur = await rows.execute(
        conn, f"SELECT 1 FROM sites WHERE id = %s AND {cond}", [new.site_id, *params])
    if await cur.fetchone() is None:
        raise NotFound(f"no site {new.site_id}")
    if new.lot_id is not None:
        cur = await rows.execute(
            conn, "SELECT 1 FROM lots WHERE id = %s AND site_id = %s", (new.lot_id, new.site_id))
        if await cur.fetchone() is None:
            raise NotFound(f"no lot {new.lot_id} at site {new.site_id}")
    await conn.execute(
        "INSERT INTO shipments (id, site_id, lot_id, direction, counterparty, origin, destination,"
        " plate, tracker, epcs, window_start, window_end, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (new.id, new.site_id, new.lot_id, str(new.direction), new.counterparty,
         _place_json(new.origin), _place_json(new.destination), new.plate, new.tracker,
         list(new.epcs), new.window_start, new.window_end, p.key_id),
    )
    shipment = await get(conn, p, new.id)
    assert shipment is not None
    return shipment


async def get(conn: AsyncConnection[Any], p: Principal, shipment_id: str) -> dict[str, Any] | None:
    cond, params = _visible(p)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {', '.join('s.' + c.strip() for c in COLUMNS.split(','))}"
            f" FROM shipments s WHERE s.id = %s AND {cond}", [shipment_id, *params])
        return await cur.fetchone()


async def list_shipments(
    conn: AsyncConnection[Any], p: Principal, *, verdict: str | None = None,
    lot_id: str | None = None, limit: int = 200,
) -> list[dict[str, Any]]:
    cond, params = _visible(p)
    where = [cond]
    if verdict is not None:
        where.append("s.verdict = %s")
        params = [*params, verdict]
    if lot_id is not None:
        where.append("s.lot_id = %s")
        params = [*params, lot_id]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {', '.join('s.' + c.strip() for c in COLUMNS.split(','))} FROM shipments s"
            f" WHERE {' AND '.join(where)} ORDER BY s.window_start DESC, s.id LIMIT %s",
            [*params, limit])
        return await cur.fetchall()


def _shipment(row: dict[str, Any]) -> Shipment:
    return Shipment(
        row["id"], row["site_id"], Direction(row["direction"]), row["counterparty"],
        _place(row["origin"]), _place(row["destination"]), row["plate"], row["window_start"],
        row["window_end"], tracker=row["tracker"], epcs=frozenset(row["epcs"]),
    )


async def gather_facts(
    conn: AsyncConnection[Any], s: Shipment, now: datetime, rules: Plausibility
) -> ShipmentFacts:
    lo = s.window_start - rules.slack
    hi = min(now, s.window_end + rules.slack + rules.grace + TRACK_TAIL)
    sites = [site for site in (s.origin.site, s.destination.site) if site]
    fixes: list[TrackFix] = []
    if s.tracker:
        cur = await rows.execute(
            conn, "SELECT fix_at, lat, lon FROM tracker_positions"
            " WHERE tracker = %s AND fix_at BETWEEN %s AND %s ORDER BY fix_at LIMIT %s",
            (s.tracker, lo, hi, MAX_FIXES))
        fixes = [TrackFix(at, lat, lon) for at, lat, lon in await cur.fetchall()]
    plates: list[PlateRead] = []
    tags: list[TagMovement] = []
    if sites:
        cur = await rows.execute(
            conn, "SELECT r.observed_at, g.site_id, r.body ->> 'plate', r.body ->> 'direction',"
            " r.body ->> 'camera' FROM raw_events r JOIN gateways g ON g.id = r.gateway_id"
            " WHERE r.type = 'plate_read' AND r.observed_at BETWEEN %s AND %s"
            " AND g.site_id = ANY(%s)", (lo, hi, sites))
        plates = [
            PlateRead(site, plate or "", None if d is None else d == "out", at, camera or "")
            for at, site, plate, d, camera in await cur.fetchall()
        ]
    if sites and s.epcs:
        cur = await rows.execute(
            conn, "SELECT pc.epc, g.site_id, pc.state, pc.observed_at FROM presence_changes pc"
            " JOIN gateways g ON g.id = pc.gateway_id"
            " WHERE pc.epc = ANY(%s) AND pc.observed_at BETWEEN %s AND %s"
            " AND g.site_id = ANY(%s)", (sorted(s.epcs), lo, hi, sites))
        tags = [TagMovement(epc, site, state == "missing", at)
                for epc, site, state, at in await cur.fetchall() if state != "unknown"]
    alive: set[str] = set()
    if s.destination.site and s.epcs:
        # Proven reading after the window: any tag read at the destination site since.
        cur = await rows.execute(
            conn, "SELECT EXISTS (SELECT 1 FROM tag_observations t JOIN gateways g"
            " ON g.id = t.gateway_id WHERE g.site_id = %s AND t.observed_at > %s"
            " AND t.observed_at <= %s)", (s.destination.site, s.window_end + rules.slack, now))
        row = await cur.fetchone()
        if row is not None and row[0]:
            alive.add(s.destination.site)
    return ShipmentFacts(fixes=fixes, plates=plates, tags=tags, readers_alive=frozenset(alive))


async def judge_and_record(
    conn: AsyncConnection[Any], shipment_id: str, now: datetime,
    rules: Plausibility | None = None,
) -> tuple[Judgement, bool]:
    """Judge one shipment now; store, log and deliver a changed verdict. (judgement, changed)"""
    rules = rules or Plausibility()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM shipments WHERE id = %s FOR UPDATE",
                          (shipment_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no shipment {shipment_id}")
    shipment = _shipment(row)
    result = judge(shipment, await gather_facts(conn, shipment, now, rules), now, rules)
    evidence = [e.as_json() for e in result.evidence]
    if row["verdict"] == result.verdict and row["evidence"] == evidence:
        return result, False
    body = {
        "shipment": shipment.id,
        "site": shipment.site,
        "direction": str(shipment.direction),
        "counterparty": shipment.counterparty,
        "origin": shipment.origin.name,
        "destination": shipment.destination.name,
        "plate": shipment.plate,
        "verdict": str(result.verdict),
        "evidence": evidence,
    }
    index = await ledger.append(
        conn, ledger.make_entry(LEDGER_KIND, now, body, lot=row["lot_id"], actor=ACTOR))
    await conn.execute(
        "UPDATE shipments SET verdict = %s, verdict_at = %s, evidence = %s, ledger_index = %s"
        " WHERE id = %s",
        (str(result.verdict), now, json.dumps(evidence), index, shipment.id))
    await conn.execute(
        "INSERT INTO shipment_verdicts (shipment_id, verdict, judged_at, evidence, ledger_index)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (shipment.id, str(result.verdict), now, json.dumps(evidence), index))
    if result.verdict is Verdict.CONTRADICTED:
        await alerts.raise_alert(
            conn, alert_type=ALERT_TYPE, subject=f"shipment:{shipment.id}", severity="critical",
            site_id=shipment.site, lot_id=row["lot_id"], explanation=result.explanation(),
            evidence={**body, "ledger_index": index, **alert_text(
                "shipment_contradicted.raise", shipment=shipment.id,
                findings=len(result.evidence)).evidence()},
            seen_at=now, actor=ACTOR,
        )
    return result, True


async def judge_open(conn: AsyncConnection[Any], now: datetime, limit: int = 1000) -> int:
    """The periodic pass: judge shipments whose window has begun and whose verdict can change."""
    cur = await rows.execute(
        conn, "SELECT id FROM shipments WHERE verdict IS DISTINCT FROM 'contradicted'"
        " AND window_start <= %s AND window_end >= %s ORDER BY window_end LIMIT %s",
        (now, now - Plausibility().grace - TRACK_TAIL, limit))
    changed = 0
    for (shipment_id,) in await cur.fetchall():
        changed += (await judge_and_record(conn, shipment_id, now))[1]
    return changed
