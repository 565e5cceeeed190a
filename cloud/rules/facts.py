"""Ingested messages -> rule facts. Pure: lookups (authorised plates) come in as values."""

from __future__ import annotations

from collections.abc import Iterable

from cloud.ingest.decode import Accepted
from contract import AlertBody, PresenceChangeBody
from contract.messages import PlateReadBody
from decisions.rules import EDGE_ALERT_FACTS, Fact


def _us(item: Accepted) -> int:
    return int(item.envelope.observed_at.timestamp() * 1_000_000)


def facts_from(items: Iterable[Accepted], authorised_plates: set[str]) -> list[Fact]:
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
        elif isinstance(body, PlateReadBody):
            plate_kind = ("vehicle_authorised" if body.plate in authorised_plates
                          else "vehicle_unauthorised")
            facts.append(Fact(plate_kind, f"vehicle:{body.plate}", _us(item),
                              {"plate": body.plate, "camera": body.camera}))
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
