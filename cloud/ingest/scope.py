"""A gateway acts only on its own site: which objects a message names, and which of them
belong to another site.

Lots, tags (EPCs) and trackers are the objects with an owner site. :func:`references` is pure
(body in, names out); :func:`foreign_references` asks the database once per batch, only for
the names that belong to a site other than the sender's (normally none), so the check costs
one indexed query per batch, not one per read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from cloud.ingest.decode import Accepted, Rejected
from contract import MessageType

# Alert subjects that name an owned object ("lot:LOT-7", "epc:3034...", "tracker:T1").
_SUBJECT_KINDS = {"lot": "lot", "epc": "epc", "tag": "epc", "tracker": "tracker"}


@dataclass(frozen=True, slots=True)
class References:
    lots: frozenset[str] = field(default_factory=frozenset)
    epcs: frozenset[str] = field(default_factory=frozenset)
    trackers: frozenset[str] = field(default_factory=frozenset)

    def named(self) -> Iterable[tuple[str, str]]:
        yield from (("lot", n) for n in self.lots)
        yield from (("epc", n) for n in self.epcs)
        yield from (("tracker", n) for n in self.trackers)


def references(msg_type: str, body: Any) -> References:
    """The lots, EPCs and trackers a message body refers to."""
    lots: set[str] = set()
    epcs: set[str] = set()
    trackers: set[str] = set()
    match msg_type:
        case MessageType.TAG_READS:
            epcs.update(r[0] for r in body.reads)
        case MessageType.PRESENCE_CHANGE:
            lots.add(body.lot)
            epcs.add(body.epc)
        case MessageType.LOT_COUNT:
            lots.add(body.lot)
        case MessageType.ALERT:
            if body.lot is not None:
                lots.add(body.lot)
            kind, _, name = body.subject.partition(":")
            target = {"lot": lots, "epc": epcs, "tracker": trackers}.get(
                _SUBJECT_KINDS.get(kind, ""))
            if target is not None and name:
                target.add(name)
        case MessageType.LABEL_READ | MessageType.SENSOR_READINGS:
            if body.lot is not None:
                lots.add(body.lot)
        case MessageType.TAG_ZONE:
            epcs.add(body.epc)
            if body.lot is not None:
                lots.add(body.lot)
        case MessageType.UNEXPECTED_TAGS:
            epcs.update(t.epc for t in body.new)
        case MessageType.TRACKER_POSITIONS:
            trackers.add(body.tracker)
        case MessageType.GEOFENCE_ENTER | MessageType.GEOFENCE_EXIT | MessageType.GEOFENCE_DWELL:
            trackers.add(body.tracker)
            lots.update(body.lots)
    return References(frozenset(lots), frozenset(epcs), frozenset(trackers))


_FOREIGN_SQL = """
SELECT 'lot', u.name, u.site, l.site_id
FROM unnest(%(lot_names)s::text[], %(lot_sites)s::text[]) AS u(name, site)
JOIN lots l ON l.id = u.name WHERE l.site_id <> u.site
UNION ALL
SELECT 'epc', u.name, u.site, l.site_id
FROM unnest(%(epc_names)s::text[], %(epc_sites)s::text[]) AS u(name, site)
JOIN lot_tags t ON t.epc = u.name JOIN lots l ON l.id = t.lot_id WHERE l.site_id <> u.site
UNION ALL
SELECT 'tracker', u.name, u.site, g.site_id
FROM unnest(%(tracker_names)s::text[], %(tracker_sites)s::text[]) AS u(name, site)
JOIN tracker_state s ON s.tracker = u.name JOIN gateways g ON g.id = s.gateway_id
WHERE g.site_id <> u.site
"""


async def foreign_references(
    conn: AsyncConnection, asked: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str]:
    """For (kind, name, sender site) triples: those owned by another site -> the owner."""
    if not asked:
        return {}
    params: dict[str, list[str]] = {}
    for kind in ("lot", "epc", "tracker"):
        pairs = [(name, site) for k, name, site in asked if k == kind]
        params[f"{kind}_names"] = [n for n, _ in pairs]
        params[f"{kind}_sites"] = [s for _, s in pairs]
    cur = await conn.execute(_FOREIGN_SQL, params, binary=True)
    return {(kind, name, site): owner for kind, name, site, owner in await cur.fetchall()}


async def confine_to_sites(
    conn: AsyncConnection, accepted: list[Accepted]
) -> tuple[list[Accepted], list[Rejected]]:
    """Split messages into those that name only their own site's objects and the rest
    (dead-lettered with the first foreign object as the reason)."""
    refs = [references(a.envelope.type, a.body) for a in accepted]
    asked = {(kind, name, a.envelope.site)
             for a, r in zip(accepted, refs, strict=True) for kind, name in r.named()}
    foreign = await foreign_references(conn, asked)
    if not foreign:
        return accepted, []
    kept: list[Accepted] = []
    refused: list[Rejected] = []
    for a, r in zip(accepted, refs, strict=True):
        site = a.envelope.site
        hit = next(((k, n) for k, n in r.named() if (k, n, site) in foreign), None)
        if hit is None:
            kept.append(a)
            continue
        kind, name = hit
        refused.append(Rejected(
            a.topic, a.raw,
            f"site: {kind} {name!r} belongs to site {foreign[(kind, name, site)]!r}, "
            f"not to the sender's site {site!r}",
            a.envelope.gateway, verified=a.envelope))
    return kept, refused
