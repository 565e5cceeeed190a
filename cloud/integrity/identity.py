"""Duplicate identities from stored facts: the periodic pass that feeds ``IdentityRegister``.

Sightings over the last ``window``: each EPC's binding (its lot in ``lot_tags``, that lot's
site and live receipt), tag reads of EPCs read at two or more sites (bucketed per minute, so a
reader's thousand reads a minute are one sighting), presence changes naming a lot, and pallet
labels' SSCCs (GS1 application identifier 00) read under a lot. They are fed in time order;
each duplicate raises ``integrity.duplicate_identity`` on the first binding's lot, so the
pledgee hears of it (a repeat on a later pass only counts).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from cloud import alerts
from cloud.integrity import rows
from decisions.identity import DuplicateIdentity, IdentityKind, IdentityRegister, Sighting

ACTOR = "integrity"
MAX_SIGHTINGS = 200_000


async def sightings(
    conn: AsyncConnection[Any], now: datetime, window: timedelta
) -> tuple[list[Sighting], list[Sighting]]:
    """(bindings from the lot register, sightings in time order) over the window."""
    since = now - window
    bindings: list[Sighting] = []
    cur = await rows.execute(conn, """
        WITH multi AS (
            SELECT t.epc FROM tag_observations t JOIN gateways g ON g.id = t.gateway_id
            WHERE t.observed_at BETWEEN %(since)s AND %(now)s
            GROUP BY t.epc HAVING count(DISTINCT g.site_id) > 1
        )
        SELECT t.epc, g.site_id, date_trunc('minute', t.observed_at) AS at,
               min(t.gateway_id || '/' || t.reader)
        FROM tag_observations t JOIN gateways g ON g.id = t.gateway_id
        WHERE t.observed_at BETWEEN %(since)s AND %(now)s AND t.epc IN (SELECT epc FROM multi)
        GROUP BY 1, 2, 3 ORDER BY 3 LIMIT %(limit)s
        """, {"since": since, "now": now, "limit": MAX_SIGHTINGS})
    reads = [Sighting(IdentityKind.EPC, epc, site, at, source=source)
             for epc, site, at, source in await cur.fetchall()]
    cur = await rows.execute(conn, """
        SELECT pc.epc, g.site_id, pc.lot_id, min(pc.observed_at), min(pc.gateway_id)
        FROM presence_changes pc JOIN gateways g ON g.id = pc.gateway_id
        WHERE pc.observed_at BETWEEN %(since)s AND %(now)s AND pc.state = 'present'
        GROUP BY 1, 2, 3 LIMIT %(limit)s
        """, {"since": since, "now": now, "limit": MAX_SIGHTINGS})
    presence = [Sighting(IdentityKind.EPC, epc, site, at, lot=lot, source=f"{gw} presence")
                for epc, site, lot, at, gw in await cur.fetchall()]
    cur = await rows.execute(conn, """
        SELECT r.body -> 'gs1' ->> '00', g.site_id, r.body ->> 'lot', min(r.observed_at),
               min(r.gateway_id || '/' || (r.body ->> 'camera'))
        FROM raw_events r JOIN gateways g ON g.id = r.gateway_id
        WHERE r.type = 'label_read' AND r.observed_at BETWEEN %(since)s AND %(now)s
          AND r.body -> 'gs1' ->> '00' IS NOT NULL
        GROUP BY 1, 2, 3 LIMIT %(limit)s
        """, {"since": since, "now": now, "limit": MAX_SIGHTINGS})
    labels = [Sighting(IdentityKind.SSCC, sscc, site, at, lot=lot, source=source)
              for sscc, site, lot, at, source in await cur.fetchall()]
    epcs = sorted({s.value for s in reads} | {s.value for s in presence})
    if epcs:
        # The binding each EPC has in the cloud comes first: its lot, site and live receipt.
        cur = await rows.execute(conn, """
            SELECT lt.epc, l.site_id, l.id, rt.receipt_number, l.created_at
            FROM lot_tags lt JOIN lots l ON l.id = lt.lot_id
            LEFT JOIN receipt_tags rt ON rt.epc = lt.epc AND rt.live
            WHERE lt.epc = ANY(%s)
            """, (epcs,))
        bindings = [Sighting(IdentityKind.EPC, epc, site, at, lot=lot, receipt=receipt,
                             source="lot register")
                    for epc, site, lot, receipt, at in await cur.fetchall()]
    return bindings, sorted(reads + presence + labels, key=lambda s: s.at)


async def check(
    conn: AsyncConnection[Any], now: datetime, *, window: timedelta = timedelta(hours=24),
    travel_time: timedelta = timedelta(hours=1),
) -> list[DuplicateIdentity]:
    """One pass: the duplicates among the window's sightings, each raised as an alert."""
    register = IdentityRegister(travel_time=travel_time)
    duplicates: list[DuplicateIdentity] = []
    bindings, seen = await sightings(conn, now, window)
    bound_lot: dict[tuple[IdentityKind, str], str] = {}
    for binding in bindings:
        register.bind(binding)
        if binding.lot:
            bound_lot[(binding.kind, binding.value)] = binding.lot
    for sighting in seen:
        duplicates += register.observe(sighting)
    raised: set[str] = set()
    for dup in duplicates:
        if dup.subject in raised:
            continue  # one alert per identity per pass; its evidence is the first pair found
        raised.add(dup.subject)
        # The lot the identity is registered to is the pledged goods the financier must hear of.
        lot = bound_lot.get((dup.first.kind, dup.first.value)) or dup.first.lot or dup.second.lot
        await alerts.raise_alert(
            conn, alert_type=dup.alert_type, subject=dup.subject, severity="critical",
            site_id=dup.second.site, lot_id=lot, explanation=dup.explanation(),
            evidence=dup.evidence(), seen_at=now, actor=ACTOR,
        )
    return duplicates
