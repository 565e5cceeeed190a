"""Per-lot reconciliation in PostgreSQL: the lot panel's sources side by side, and its alerts.

The receipt's claim is the lot's pieces plus ``lot_integrity`` (unit weight, tare, pallets,
tags, tolerance). Figures: RFID from the latest ``lot_counts`` row, the load cell from the
latest ``sensor_readings`` weight of the lot, pallet labels from the ``label_read`` events of
the lot (GS1 SSCC and count), and ``lot_figures`` for the stack camera's pallet count (recorded
through the API until the camera publishes one) or any figure recorded by hand. The running
disagreement onsets live in ``lot_disagreements``, so persistence survives a restart; a finding
raises ``integrity.count_mismatch`` / ``weight_mismatch`` through ``cloud.alerts``, and a family
that agrees again resolves its alert.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from cloud import alerts
from cloud.apikeys import Principal
from cloud.integrity import rows
from cloud.registry import NotFound
from cloud.scope import lot_condition
from decisions.reconciliation import (
    ALERT_OF,
    Declaration,
    Family,
    Figure,
    LotWatch,
    MismatchFinding,
    PalletLabel,
    Reconciliation,
    Source,
    Tolerance,
    labels_figure,
)

ACTOR = "integrity"
SEVERITY = {Family.COUNT: "major", Family.WEIGHT: "critical"}
_KG = {"kg": 1.0, "g": 0.001, "t": 1000.0, "lb": 0.45359237}
_DURATIONS = ("persist_for", "stale_after")


def tolerance_from_json(value: dict[str, Any]) -> Tolerance:
    fields = {k: v for k, v in value.items() if k in Tolerance.__dataclass_fields__}
    for name in _DURATIONS:
        if name in fields:
            fields[name] = timedelta(seconds=float(fields[name]))
    return Tolerance(**fields)


def tolerance_to_json(tolerance: Tolerance) -> dict[str, Any]:
    out = asdict(tolerance)
    for name in _DURATIONS:
        out[name] = out[name].total_seconds()
    return out


async def declare(
    conn: AsyncConnection[Any], p: Principal, lot_id: str, *, unit_weight_kg: float,
    tare_kg: float, pallets: int | None, tags: int | None, declared_at: datetime,
    tolerance: dict[str, Any],
) -> None:
    await _lot_site(conn, p, lot_id)
    tolerance_from_json(tolerance)  # refuse what the decision would refuse
    await conn.execute(
        "INSERT INTO lot_integrity (lot_id, unit_weight_kg, tare_kg, pallets, tags, declared_at,"
        " tolerance) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (lot_id) DO UPDATE SET"
        " unit_weight_kg = excluded.unit_weight_kg, tare_kg = excluded.tare_kg,"
        " pallets = excluded.pallets, tags = excluded.tags, declared_at = excluded.declared_at,"
        " tolerance = excluded.tolerance",
        (lot_id, unit_weight_kg, tare_kg, pallets, tags, declared_at, json.dumps(tolerance)))
    # A new claim: running disagreements start over (decisions.reconciliation.LotWatch.redeclare).
    await conn.execute("DELETE FROM lot_disagreements WHERE lot_id = %s", (lot_id,))


async def record_figure(
    conn: AsyncConnection[Any], p: Principal, lot_id: str, figure: Figure
) -> None:
    await _lot_site(conn, p, lot_id)
    await conn.execute(
        "INSERT INTO lot_figures (lot_id, source, value, observed_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (lot_id, source) DO UPDATE SET value = excluded.value,"
        " observed_at = excluded.observed_at WHERE lot_figures.observed_at <= excluded.observed_at",
        (lot_id, str(figure.source), figure.value, figure.at))


async def _lot_site(conn: AsyncConnection[Any], p: Principal, lot_id: str) -> str:
    cond, params = lot_condition(p)
    cur = await rows.execute(
        conn, f"SELECT site_id FROM lots WHERE id = %s AND {cond}", [lot_id, *params])
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no lot {lot_id}")
    return str(row[0])


async def _watch(
    conn: AsyncConnection[Any], lot_id: str, now: datetime
) -> tuple[LotWatch, str] | None:
    # The tags claimed: as declared, else the lot's registered tag set, else one per piece.
    cur = await rows.execute(
        conn, "SELECT l.site_id, l.pieces, i.unit_weight_kg, i.tare_kg, i.pallets,"
        " coalesce(i.tags, nullif((SELECT count(*) FROM lot_tags t WHERE t.lot_id = l.id), 0)),"
        " i.declared_at, i.tolerance FROM lots l JOIN lot_integrity i ON i.lot_id = l.id"
        " WHERE l.id = %s", (lot_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    site, pieces, unit, tare, pallets, tags, declared_at, tolerance = row
    watch = LotWatch(Declaration(lot_id, pieces, unit, declared_at, pallets, tags, tare),
                     tolerance_from_json(tolerance))
    cur = await rows.execute(
        conn, "SELECT present, observed_at FROM lot_counts WHERE lot_id = %s"
        " ORDER BY observed_at DESC LIMIT 1", (lot_id,))
    if (count := await cur.fetchone()) is not None:
        watch.observe(Figure(Source.RFID, float(count[0]), count[1]))
    cur = await rows.execute(
        conn, "SELECT value, unit, observed_at FROM sensor_readings WHERE lot_id = %s"
        " AND quantity = 'weight' ORDER BY observed_at DESC LIMIT 1", (lot_id,))
    if (weight := await cur.fetchone()) is not None and weight[1] in _KG:
        watch.observe(Figure(Source.LOAD_CELL, weight[0] * _KG[weight[1]], weight[2]))
    # Pallet labels read under the lot: each SSCC's GS1 count (AI 37) once, freshest reads.
    cur = await rows.execute(conn, """
        SELECT DISTINCT ON (r.body -> 'gs1' ->> '00') r.body -> 'gs1' ->> '00',
               r.body -> 'gs1' ->> '01', r.body -> 'gs1' ->> '37', r.observed_at
        FROM raw_events r
        WHERE r.type = 'label_read' AND r.body ->> 'lot' = %s AND r.observed_at >= %s
          AND r.body -> 'gs1' ->> '00' IS NOT NULL AND r.body -> 'gs1' ->> '37' ~ '^[0-9]{1,8}$'
        ORDER BY r.body -> 'gs1' ->> '00', r.observed_at DESC
        """, (lot_id, now - watch.tolerance.stale_after))
    read = await cur.fetchall()
    if read:
        labels = [PalletLabel(sscc, gtin or "", int(count)) for sscc, gtin, count, _ in read]
        watch.observe(labels_figure(labels, max(at for *_, at in read)))
    cur = await rows.execute(
        conn, "SELECT source, value, observed_at FROM lot_figures WHERE lot_id = %s", (lot_id,))
    for source, value, at in await cur.fetchall():
        watch.observe(Figure(Source(source), value, at))
    cur = await rows.execute(
        conn, "SELECT family, since FROM lot_disagreements WHERE lot_id = %s", (lot_id,))
    watch.disagree_since = {Family(f): since for f, since in await cur.fetchall()}
    return watch, str(site)


async def reconcile_lot(
    conn: AsyncConnection[Any], lot_id: str, now: datetime
) -> tuple[Reconciliation, list[MismatchFinding]] | None:
    """Reconcile one lot now, keep its onsets, raise or resolve its alerts. None: no claim."""
    found = await _watch(conn, lot_id, now)
    if found is None:
        return None
    watch, site = found
    result, findings = watch.evaluate(now)
    await conn.execute("DELETE FROM lot_disagreements WHERE lot_id = %s", (lot_id,))
    for family, since in watch.disagree_since.items():
        await conn.execute(
            "INSERT INTO lot_disagreements (lot_id, family, since) VALUES (%s, %s, %s)",
            (lot_id, str(family), since))
    for finding in findings:
        await alerts.raise_alert(
            conn, alert_type=finding.alert_type, subject=finding.subject,
            severity=SEVERITY[finding.family], site_id=site, lot_id=lot_id,
            explanation=finding.explanation(), evidence=finding.evidence(), seen_at=now,
            actor=ACTOR,
        )
    for family in Family:
        if family not in watch.disagree_since:
            await alerts.clear_alert(
                conn, alert_type=ALERT_OF[family], subject=f"lot:{lot_id}", actor=ACTOR,
                comment=f"every fresh source agrees on the {family} again", site_id=site)
    return result, findings


async def panel(
    conn: AsyncConnection[Any], p: Principal, lot_id: str, now: datetime
) -> dict[str, Any]:
    """The lot panel's sources side by side (read only: nothing is raised or stored)."""
    await _lot_site(conn, p, lot_id)
    found = await _watch(conn, lot_id, now)
    if found is None:
        return {"lot": lot_id, "declared": None, "sources": []}
    watch, _ = found
    d = watch.declaration
    result, _ = watch.evaluate(now)
    return {
        "lot": lot_id,
        "at": now.isoformat(),
        "declared": {"pieces": d.pieces, "unit_weight_kg": d.unit_weight_kg,
                     "expected_kg": d.expected_kg, "pallets": d.pallets,
                     "tags": d.expected_tags, "at": d.declared_at.isoformat()},
        "disagreeing_since": {str(f): s.isoformat() for f, s in watch.disagree_since.items()},
        "sources": [
            {"source": str(r.source), "state": str(r.state), "expected": r.expected,
             "value": r.value, "allowed": r.allowed,
             "at": None if r.at is None else r.at.isoformat()}
            for r in result.readings
        ],
    }


async def reconcile_all(conn: AsyncConnection[Any], now: datetime) -> int:
    """The periodic pass over every lot with a claim; returns how many findings stand."""
    cur = await rows.execute(conn, "SELECT lot_id FROM lot_integrity ORDER BY lot_id")
    total = 0
    for (lot_id,) in await cur.fetchall():
        done = await reconcile_lot(conn, lot_id, now)
        total += 0 if done is None else len(done[1])
    return total
