"""Stored messages -> what happened, as plain values for the alerting stage (cloud.alerting).

Pure: no lookups and no judgement. Whether a plate is authorised, whether a moved tag was
pledged, which rule fires: the stage decides those.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.alerting.release_guard import TagMovement
from cloud.alerting.stage import EdgeAlert, GatewayMovements, PlateSighting, SiteBatch
from cloud.ingest.decode import Accepted
from contract import AlertBody, PresenceChangeBody, TagReadsBody
from contract.messages import PlateReadBody
from decisions.rules import EDGE_ALERT_FACTS, Fact


def _us(item: Accepted) -> int:
    return int(item.envelope.observed_at.timestamp() * 1_000_000)


def rule_facts(items: Iterable[Accepted]) -> list[Fact]:
    """Departures, returns and the edge's alerts that rules read (plates aside)."""
    facts: list[Fact] = []
    departed: dict[str, tuple[int, list[str]]] = {}
    returned: dict[str, tuple[int, list[str]]] = {}
    for item in items:
        body = item.body
        if isinstance(body, PresenceChangeBody):
            # A whole pallet leaving is one departure of its lot, not one per tag.
            if body.state == "missing":
                at, epcs = departed.setdefault(body.lot, (_us(item), []))
                departed[body.lot] = (max(at, _us(item)), [*epcs, body.epc])
            elif body.state == "present" and body.previous == "missing":
                at, epcs = returned.setdefault(body.lot, (_us(item), []))
                returned[body.lot] = (max(at, _us(item)), [*epcs, body.epc])
        elif isinstance(body, AlertBody) and body.alert_type in EDGE_ALERT_FACTS:
            on_raise, on_clear = EDGE_ALERT_FACTS[body.alert_type]
            kind = on_raise if body.action == "raise" else on_clear
            if kind is None:
                continue
            attrs = {"edge_alert": body.alert_type}
            subject = body.subject
            if body.lot:
                attrs["lot"] = body.lot
                subject = f"lot:{body.lot}" if kind == "weight_dropped" else subject
            facts.append(Fact(kind, subject, _us(item), attrs))
    for lot, (at, epcs) in departed.items():
        facts.append(Fact("tags_departed", f"lot:{lot}", at,
                          {"lot": lot, "tags": len(epcs), "epcs": sorted(epcs)[:20]}))
    for lot, (at, epcs) in returned.items():
        facts.append(Fact("tags_returned", f"lot:{lot}", at, {"lot": lot, "tags": len(epcs)}))
    return sorted(facts, key=lambda f: f.at_us)


def movements(items: list[Accepted]) -> list[TagMovement]:
    """Tags gone missing, and tags read by some site's reader (the release guard's input)."""
    missing: set[str] = set()
    seen: dict[str, set[str]] = {}
    for item in items:
        body = item.body
        if isinstance(body, PresenceChangeBody) and body.state == "missing":
            missing.add(body.epc)
        elif isinstance(body, TagReadsBody):
            seen.setdefault(item.envelope.site, set()).update([r[0] for r in body.reads])
    return ([TagMovement(epc, "missing", None) for epc in missing]
            + [TagMovement(epc, "seen_elsewhere", site)
               for site, epcs in seen.items() for epc in epcs])


def site_batches(items: list[Accepted]) -> list[SiteBatch]:
    """One value per site for the alerting stage, in the order sites first appear."""
    by_site: dict[str, list[Accepted]] = {}
    for item in items:
        by_site.setdefault(item.envelope.site, []).append(item)
    batches = []
    for site, group in by_site.items():
        by_gateway: dict[str, list[Accepted]] = {}
        for item in group:
            by_gateway.setdefault(item.envelope.gateway, []).append(item)
        batch = SiteBatch(site, tuple(by_gateway), facts=rule_facts(group))
        for gateway, own in by_gateway.items():
            moved = movements(own)
            if moved:
                seen_at = max(i.envelope.observed_at for i in own)
                batch.movements.append(GatewayMovements(gateway, tuple(moved), seen_at))
        for item in group:
            body, env = item.body, item.envelope
            if isinstance(body, AlertBody):
                batch.edge_alerts.append(EdgeAlert(body, env.gateway, env.seq, env.observed_at))
            elif isinstance(body, PlateReadBody):
                batch.plates.append(PlateSighting(body.plate, body.camera, _us(item)))
        batches.append(batch)
    return batches
