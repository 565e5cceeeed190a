"""A gateway acts only on its own site: which objects a message names, and which of them
belong to another site.

Lots, tags (EPCs) and trackers are the objects with an owner site. :func:`references` is pure
(body in, names out); :func:`foreign_references` asks the database once per batch, only for
the names that belong to a site other than the sender's (normally none), so the check costs
one indexed query per batch, not one per read.
"""

from __future__ import annotations

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


def references(msg_type: str, body: Any) -> References:
    """The lots, EPCs and trackers a message body refers to."""
    lots: set[str] = set()
    epcs: set[str] = set()
    trackers: set[str] = set()
    match msg_type:
        case MessageType.TAG_READS:
            return References(epcs=frozenset([r[0] for r in body.reads]))
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


_KINDS = ("lot", "epc", "tracker")


async def foreign_references(
    conn: AsyncConnection, asked: dict[tuple[str, str], set[str]]
) -> dict[tuple[str, str], dict[str, str]]:
    """For names asked per (kind, sender site): those owned by another site -> the owner.

    Names are grouped per (kind, site) as sets, so a batch of 500-read messages costs set
    unions at C speed, not a Python tuple per read.
    """
    if not asked:
        return {}
    params: dict[str, list[str]] = {}
    for kind in _KINDS:
        names: list[str] = []
        sites: list[str] = []
        for (k, site), wanted in asked.items():
            if k == kind:
                names.extend(wanted)
                sites.extend([site] * len(wanted))
        params[f"{kind}_names"], params[f"{kind}_sites"] = names, sites
    cur = await conn.execute(_FOREIGN_SQL, params, binary=True)
    foreign: dict[tuple[str, str], dict[str, str]] = {}
    for kind, name, site, owner in await cur.fetchall():
        foreign.setdefault((kind, site), {})[name] = owner
    return foreign


def _groups(r: References) -> tuple[tuple[str, frozenset[str]], ...]:
    return (("lot", r.lots), ("epc", r.epcs), ("tracker", r.trackers))


async def confine_to_sites(
    conn: AsyncConnection, accepted: list[Accepted]
) -> tuple[list[Accepted], list[Rejected]]:
    """Split messages into those that name only their own site's objects and the rest
    (dead-lettered with the first foreign object as the reason)."""
    refs = [references(a.envelope.type, a.body) for a in accepted]
    asked: dict[tuple[str, str], set[str]] = {}
    for a, r in zip(accepted, refs, strict=True):
        for kind, names in _groups(r):
            if names:
                asked.setdefault((kind, a.envelope.site), set()).update(names)
    foreign = await foreign_references(conn, asked)
    if not foreign:
        return accepted, []
    kept: list[Accepted] = []
    refused: list[Rejected] = []
    for a, r in zip(accepted, refs, strict=True):
        site = a.envelope.site
        hit = None
        for kind, names in _groups(r):
            owners = foreign.get((kind, site))
            if owners and (clash := names & owners.keys()):
                name = min(clash)
                hit = (kind, name, owners[name])
                break
        if hit is None:
            kept.append(a)
            continue
        kind, name, owner = hit
        refused.append(Rejected(
            a.topic, a.raw,
            f"site: {kind} {name!r} belongs to site {owner!r}, "
            f"not to the sender's site {site!r}",
            a.envelope.gateway, verified=a.envelope))
    return kept, refused
