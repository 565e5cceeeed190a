"""Pledged goods that move without a release: a fact of the lot's departure incident.

A tag stops being pledged only when the pledgee approves a release that names it (the service
then marks it no longer live on its receipt). So any live tag of a pledged receipt that is
reported gone (presence ``missing``) or seen at another site is goods moving without a
release. :func:`unreleased_movements` decides that from values; :func:`check_movements` is the
adapter the alerting stage calls with the movements ingest extracted (cloud.ingest.facts).

Such a movement is not an alert of its own (once it was ``theft.movement_without_release`` on
the receipt, beside the gateway's alerts on the lot: three alerts for one theft, one of them
counting only its last batch and never cleared). It is reported into the lot's incident
(``decisions.incident``): merged into the active one, counted over the whole incident; or it
opens the incident when it is corroborated on its own: goods read at another site, or
``CORROBORATING_TAGS`` tags of the lot gone together. One tag gone alone waits for the
gateway's decision (the lot's absence window). Its end is the incident's: every departed tag
read again, or a person resolving it once the resolve guard lets them.
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
from decisions.incident import CORROBORATING_TAGS, INCIDENT, MAX_EPCS, merge_evidence
from decisions.vehicles import RELEASE_PICKUP

ALERT_TYPE = INCIDENT  # the lot's departure incident; movements are its facts


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


async def _missing_live(conn: AsyncConnection[Any], receipt: str) -> list[str]:
    cur = await conn.execute(
        "SELECT t.epc FROM receipt_tags t JOIN tag_state s ON s.epc = t.epc "
        "WHERE t.receipt_number = %s AND t.live AND s.presence = 'missing' ORDER BY t.epc "
        "LIMIT %s", (receipt, MAX_EPCS))
    return [row[0] for row in await cur.fetchall()]


async def _untagged_release_pieces(
    conn: AsyncConnection[Any], receipt: str, at: datetime
) -> int:
    cur = await conn.execute(
        "SELECT coalesce(sum(pieces), 0) FROM release_requests WHERE receipt_number = %s "
        "AND state = 'approved' AND cardinality(tags) = 0 AND decided_at > %s",
        (receipt, at - RELEASE_PICKUP))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def check_movements(
    conn: AsyncConnection[Any], movements: list[TagMovement], seen_at: datetime, actor: str
) -> list[UnreleasedMovement]:
    """Report each receipt whose pledged goods moved without a release into its lot's
    incident (opening it when the movement is corroborated on its own)."""
    if not movements:
        return []
    pledged = await pledged_tags(conn, sorted({m.epc for m in movements}))
    found = unreleased_movements(movements, pledged)
    reported = []
    for f in found:
        subject = f"lot:{f.lot_id}"
        active = await alerts.active_alert(conn, f.site_id, ALERT_TYPE, subject)
        if active is None and not f.seen_elsewhere and len(f.epcs) < CORROBORATING_TAGS:
            continue  # one tag alone: the gateway decides after the lot's absence window
        before = (active or {}).get("evidence") or {}
        held = (before.get("receipts") or {}).get(f.receipt) or {}
        # The incident's, not the batch's: every live tag of the receipt gone so far.
        epcs = sorted({*f.epcs, *(e for e in held.get("epcs", []) if isinstance(e, str)),
                       *await _missing_live(conn, f.receipt)})
        # A release in its pickup window that names no tags takes its pieces of any of them:
        # that many gone are release movements, only the excess is the incident's.
        allowed = await _untagged_release_pieces(conn, f.receipt, seen_at)
        if allowed and len(epcs) <= allowed:
            continue
        excess = len(epcs) - allowed
        sites = sorted({*f.seen_elsewhere, *(s for s in held.get("seen_at", [])
                                             if isinstance(s, str))})
        common: dict[str, str | int] = {"count": excess, "pledgee": f.pledgee,
                                        "receipt": f.receipt}
        text = (alert_text("movement_without_release.raise_seen", seen_at=", ".join(sites),
                           **common)
                if sites else alert_text("movement_without_release.raise", **common))
        at_us = int(seen_at.timestamp() * 1e6)
        report = {
            # Which of the receipt's tags were the release's is unknown when it named none:
            # the count is the excess, the tags are listed under the receipt only.
            "incident": {"departed_epcs": [] if allowed else epcs[:MAX_EPCS],
                         "departed_count": excess,
                         "corroborated_by": ["movement_without_release"]},
            "receipts": {f.receipt: {"pledgee": f.pledgee, "epcs": epcs[:MAX_EPCS],
                                     "seen_at": sites}},
            "facts": [{"kind": "movement_without_release", "subject": f"receipt:{f.receipt}",
                       "at_us": at_us, "attrs": {"tags": len(f.epcs), "seen_at": sites}}],
            # kept for readers of the old alert's evidence
            "receipt": f.receipt, "pledgee": f.pledgee, "epcs": epcs[:MAX_EPCS],
            **text.evidence(),
        }
        await alerts.raise_alert(
            conn,
            alert_type=ALERT_TYPE,
            subject=subject,
            severity="critical",
            site_id=f.site_id,
            lot_id=f.lot_id,
            explanation=text.english(),
            evidence=merge_evidence(None, report),
            seen_at=seen_at,
            actor=actor,
        )
        reported.append(f)
    return reported
