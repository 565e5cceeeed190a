"""Pledged goods that move without a release: ``theft.movement_without_release``.

A tag stops being pledged only when the pledgee approves a release that names it (the service
then marks it no longer live on its receipt). So any live tag of a pledged receipt that is
reported gone (presence ``missing``) or seen at another site is goods moving without a
release. :func:`unreleased_movements` decides that from values; :func:`check_movements` is the
adapter the alerting stage calls with the movements ingest extracted (cloud.ingest.facts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud import alerts
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType

ALERT_TYPE = AlertType.MOVEMENT_WITHOUT_RELEASE


@dataclass(frozen=True, slots=True)
class PledgedTag:
    receipt: str
    lot_id: str
    site_id: str
    pledgee: str


@dataclass(frozen=True, slots=True)
class TagMovement:
    epc: str
    kind: str  # "missing" (gone from its readers) or "seen_elsewhere" (read at another site)
    site_id: str | None  # where it was seen, for seen_elsewhere


@dataclass(frozen=True, slots=True)
class UnreleasedMovement:
    receipt: str
    lot_id: str
    site_id: str
    pledgee: str
    epcs: tuple[str, ...]
    seen_elsewhere: tuple[str, ...]  # sites the goods turned up at


def unreleased_movements(
    movements: Iterable[TagMovement], pledged: Mapping[str, PledgedTag]
) -> list[UnreleasedMovement]:
    """Group movements of still-pledged tags by receipt; tags not pledged are ignored."""
    by_receipt: dict[str, tuple[PledgedTag, set[str], set[str]]] = {}
    for move in movements:
        tag = pledged.get(move.epc)
        if tag is None:
            continue
        if move.kind == "seen_elsewhere" and move.site_id == tag.site_id:
            continue  # read at its own site: not a movement
        _, epcs, sites = by_receipt.setdefault(tag.receipt, (tag, set(), set()))
        epcs.add(move.epc)
        if move.kind == "seen_elsewhere" and move.site_id:
            sites.add(move.site_id)
    return [
        UnreleasedMovement(
            t.receipt, t.lot_id, t.site_id, t.pledgee, tuple(sorted(e)), tuple(sorted(s))
        )
        for t, e, s in (by_receipt[r] for r in sorted(by_receipt))
    ]


async def pledged_tags(conn: AsyncConnection[Any], epcs: list[str]) -> dict[str, PledgedTag]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT t.epc, r.number, r.lot_id, l.site_id, r.pledgee FROM receipt_tags t"
        " JOIN receipts r ON r.number = t.receipt_number JOIN lots l ON l.id = r.lot_id"
        " WHERE t.live AND t.epc = ANY(%s) AND r.status IN ('pledged', 'partly_released')",
        (epcs,), binary=True,  # a text array quotes each EPC by regex: 10x the CPU
    )
    return {
        row["epc"]: PledgedTag(row["number"], row["lot_id"], row["site_id"], row["pledgee"])
        for row in await cur.fetchall()
    }


async def check_movements(
    conn: AsyncConnection[Any], movements: list[TagMovement], seen_at: datetime, actor: str
) -> list[UnreleasedMovement]:
    """Raise (or repeat) one alert per receipt whose pledged goods moved without a release."""
    if not movements:
        return []
    pledged = await pledged_tags(conn, sorted({m.epc for m in movements}))
    found = unreleased_movements(movements, pledged)
    for f in found:
        common = {"count": len(f.epcs), "pledgee": f.pledgee, "receipt": f.receipt}
        text = (alert_text("movement_without_release.raise_seen",
                           seen_at=", ".join(f.seen_elsewhere), **common)
                if f.seen_elsewhere else alert_text("movement_without_release.raise", **common))
        await alerts.raise_alert(
            conn,
            alert_type=ALERT_TYPE,
            subject=f"receipt:{f.receipt}",
            severity="critical",
            site_id=f.site_id,
            lot_id=f.lot_id,
            explanation=text.english(),
            evidence={"receipt": f.receipt, "pledgee": f.pledgee, "epcs": list(f.epcs)[:200],
                      **text.evidence()},
            seen_at=seen_at,
            actor=actor,
        )
    return found
