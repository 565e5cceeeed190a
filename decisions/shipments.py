"""Trade authenticity: did a declared shipment really travel, as the sensors saw it?

Theory of operation. A shipment (inbound to or outbound from a site) names a counterparty, an
origin and a destination place, the vehicle's plate and tracker, the tags it carries and the
window it is expected in. :func:`judge` holds it against what was observed, given as values:
the tracker's fixes (or fence passages the gateway already decided), the gates' plate reads and
the tags leaving and arriving. Each check is one :class:`Evidence` item that *supports*,
*contradicts* or is *absent*:

- the tracker inside the origin, then inside the destination, in a time a vehicle can make
  (``max_speed_kmh``): arriving faster is a spoofed track; tracked without a gap until past the
  window, its slack and grace, and never at the destination, is a phantom delivery. A tracker
  that is simply not heard from (a GPS gap) is *absent*, never a contradiction;
- the plate read leaving the origin's gate and entering the destination's;
- the tags leaving the origin site and arriving at the destination site; tags still read at the
  origin after the vehicle left, or never arriving at a watched destination whose readers are
  proven reading once the window and its grace have passed, contradict.

Verdict: any contradiction makes it ``contradicted``; otherwise ``corroborated`` when both the
departure and the arrival are supported, ``partly`` when only some evidence supports it, and
``no_evidence`` when nothing does. It is a function of the facts and ``now``; no clock inside.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from decisions.alert_types import AlertType
from decisions.plate_format import normalise

ALERT_TYPE = AlertType.SHIPMENT_CONTRADICTED
EARTH_RADIUS_M = 6_371_008.8


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Verdict(StrEnum):
    CORROBORATED = "corroborated"
    PARTLY = "partly"
    CONTRADICTED = "contradicted"
    NO_EVIDENCE = "no_evidence"


class Outcome(StrEnum):
    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    ABSENT = "absent"


class Leg(StrEnum):
    DEPARTURE = "departure"
    ARRIVAL = "arrival"
    ROUTE = "route"


@dataclass(frozen=True, slots=True)
class Place:
    """An origin or destination: a circle around a point; ``site`` when Pledgewatch watches it."""

    name: str
    lat: float
    lon: float
    radius_m: float = 300.0
    site: str | None = None

    def contains(self, lat: float, lon: float) -> bool:
        return distance_m(self.lat, self.lon, lat, lon) <= self.radius_m


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class Shipment:
    id: str
    site: str
    direction: Direction
    counterparty: str
    origin: Place
    destination: Place
    plate: str
    window_start: datetime
    window_end: datetime
    tracker: str | None = None
    epcs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TrackFix:
    at: datetime
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class FencePassage:
    """A fence crossing already decided by a gateway or the cloud's tracker stage."""

    place: str
    entered: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class PlateRead:
    site: str
    plate: str
    outbound: bool | None  # leaving the site; None: a gate camera that cannot tell
    at: datetime
    camera: str = ""


@dataclass(frozen=True, slots=True)
class TagMovement:
    """A tag's presence change at a site: ``left`` (departed), or read there (``left=False``)."""

    epc: str
    site: str
    left: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Evidence:
    leg: Leg
    kind: str
    outcome: Outcome
    detail: str
    at: datetime | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "leg": str(self.leg),
            "kind": self.kind,
            "outcome": str(self.outcome),
            "detail": self.detail,
            "at": None if self.at is None else self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    shipment: str
    verdict: Verdict
    evidence: tuple[Evidence, ...]
    at: datetime

    def explanation(self) -> str:
        lines = [f"shipment {self.shipment}: {self.verdict}"]
        lines += [f"{e.leg} {e.kind}: {e.outcome} ({e.detail})" for e in self.evidence]
        return "; ".join(lines)

    def as_json(self) -> dict[str, object]:
        return {
            "shipment": self.shipment,
            "verdict": str(self.verdict),
            "at": self.at.isoformat(),
            "evidence": [e.as_json() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class Plausibility:
    """What a real vehicle can do, and how much slack the declared window gets."""

    max_speed_kmh: float = 110.0
    slack: timedelta = timedelta(hours=2)  # early departure or late arrival still plausible
    grace: timedelta = timedelta(hours=6)  # after the window, before absence contradicts
    tag_share: float = 0.9  # share of the shipment's tags that must be seen leaving/arriving


@dataclass(slots=True)
class ShipmentFacts:
    fixes: Sequence[TrackFix] = ()
    passages: Sequence[FencePassage] = ()
    plates: Sequence[PlateRead] = ()
    tags: Sequence[TagMovement] = ()
    # Sites whose readers were proven reading after the window (any tag): only there can tags
    # that never arrived contradict; a dead reader proves nothing (docs/rfid.md, presence).
    readers_alive: frozenset[str] = frozenset()


def _track_evidence(
    s: Shipment, facts: ShipmentFacts, now: datetime, rules: Plausibility
) -> list[Evidence]:
    lo, hi = s.window_start - rules.slack, s.window_end + rules.slack
    fixes = sorted((f for f in facts.fixes if lo <= f.at), key=lambda f: f.at)
    left_at: datetime | None = None  # last time inside the origin before the arrival
    arrived_at: datetime | None = None
    for fix in fixes:
        if arrived_at is None and s.origin.contains(fix.lat, fix.lon) and fix.at <= hi:
            left_at = fix.at
        elif left_at is not None and fix.at <= hi + rules.grace and s.destination.contains(
            fix.lat, fix.lon
        ):
            arrived_at = fix.at
            break
    for p in sorted(facts.passages, key=lambda p: p.at):
        if not lo <= p.at <= hi + rules.grace:
            continue
        if p.place == s.origin.name and arrived_at is None:
            left_at = p.at if left_at is None else max(left_at, p.at)
        elif p.place == s.destination.name and p.entered and left_at is not None:
            arrived_at = p.at if arrived_at is None else min(arrived_at, p.at)
    out: list[Evidence] = []
    tracker = s.tracker or "tracker"
    if left_at is None:
        out.append(Evidence(Leg.DEPARTURE, "track", Outcome.ABSENT,
                            f"{tracker} not seen at {s.origin.name}"))
    else:
        out.append(Evidence(Leg.DEPARTURE, "track", Outcome.SUPPORTS,
                            f"{tracker} at {s.origin.name}", left_at))
    if arrived_at is not None and left_at is not None:
        hours = max((arrived_at - left_at).total_seconds(), 1.0) / 3600
        km = (distance_m(s.origin.lat, s.origin.lon, s.destination.lat, s.destination.lon)
              - s.origin.radius_m - s.destination.radius_m) / 1000
        if km / hours > rules.max_speed_kmh:
            out.append(Evidence(Leg.ROUTE, "track", Outcome.CONTRADICTS,
                                f"{km:.0f} km in {hours * 60:.0f} min is faster than a vehicle",
                                arrived_at))
        else:
            out.append(Evidence(Leg.ARRIVAL, "track", Outcome.SUPPORTS,
                                f"{tracker} at {s.destination.name}", arrived_at))
        return out
    # Not seen arriving. A phantom delivery is proven only by a track that excludes a visit:
    # fixes past the latest plausible arrival (the window, its slack and the grace a late
    # truck gets), and no pair of consecutive fixes far enough apart in time to have reached
    # the destination and come back unseen. A GPS gap proves nothing either way.
    latest = hi + rules.grace
    if left_at is not None and now > latest:
        track = [f for f in fixes if f.at >= left_at]
        after = next((i for i, f in enumerate(track) if f.at > latest), None)
        if after is not None and not any(
            _could_visit(track[i], track[i + 1], s.destination, rules.max_speed_kmh)
            for i in range(after)
        ):
            out.append(Evidence(Leg.ARRIVAL, "track", Outcome.CONTRADICTS,
                                f"{tracker} tracked without a gap until "
                                f"{track[after].at.isoformat()}, never at {s.destination.name}",
                                track[after].at))
            return out
    out.append(Evidence(Leg.ARRIVAL, "track", Outcome.ABSENT,
                        f"{tracker} not seen at {s.destination.name}"))
    return out


def _could_visit(a: TrackFix, b: TrackFix, place: Place, max_speed_kmh: float) -> bool:
    """Whether a vehicle could have been inside ``place`` between two fixes, unseen."""
    reach = (
        max(0.0, distance_m(a.lat, a.lon, place.lat, place.lon) - place.radius_m)
        + max(0.0, distance_m(place.lat, place.lon, b.lat, b.lon) - place.radius_m)
    )
    return reach <= max_speed_kmh / 3.6 * (b.at - a.at).total_seconds()


def _plate_evidence(s: Shipment, facts: ShipmentFacts, rules: Plausibility) -> list[Evidence]:
    lo, hi = s.window_start - rules.slack, s.window_end + rules.slack + rules.grace
    plate = normalise(s.plate)
    reads = [r for r in facts.plates if lo <= r.at <= hi and normalise(r.plate) == plate]
    out: list[Evidence] = []
    for leg, place, outbound in (
        (Leg.DEPARTURE, s.origin, True), (Leg.ARRIVAL, s.destination, False)
    ):
        if place.site is None:
            continue  # the counterparty's gate has no camera of ours
        seen = [r for r in reads
                if r.site == place.site and r.outbound in (outbound, None)]
        if seen:
            out.append(Evidence(leg, "plate", Outcome.SUPPORTS,
                                f"{plate} read at {place.site}'s gate", seen[0].at))
        else:
            out.append(Evidence(leg, "plate", Outcome.ABSENT,
                                f"{plate} not read at {place.site}'s gate"))
    return out


def _tag_evidence(
    s: Shipment, facts: ShipmentFacts, now: datetime, rules: Plausibility, departed: datetime | None
) -> list[Evidence]:
    if not s.epcs:
        return []
    lo, hi = s.window_start - rules.slack, s.window_end + rules.slack
    need = max(1, math.ceil(len(s.epcs) * rules.tag_share))
    out: list[Evidence] = []
    if s.origin.site is not None:
        left = {t.epc for t in facts.tags
                if t.site == s.origin.site and t.left and t.epc in s.epcs and lo <= t.at <= hi}
        after = departed or s.window_end
        still = {t.epc for t in facts.tags if t.site == s.origin.site and not t.left
                 and t.epc in s.epcs and t.at > after + rules.slack}
        if len(still) >= need:
            out.append(Evidence(Leg.DEPARTURE, "tags", Outcome.CONTRADICTS,
                                f"{len(still)} of {len(s.epcs)} tags still read at "
                                f"{s.origin.site} after the departure"))
        elif len(left) >= need:
            out.append(Evidence(Leg.DEPARTURE, "tags", Outcome.SUPPORTS,
                                f"{len(left)} of {len(s.epcs)} tags left {s.origin.site}"))
        else:
            out.append(Evidence(Leg.DEPARTURE, "tags", Outcome.ABSENT,
                                f"{len(left)} of {len(s.epcs)} tags seen leaving {s.origin.site}"))
    if s.destination.site is not None:
        arrived = {t.epc for t in facts.tags if t.site == s.destination.site and not t.left
                   and t.epc in s.epcs and lo <= t.at}
        if len(arrived) >= need:
            out.append(Evidence(Leg.ARRIVAL, "tags", Outcome.SUPPORTS,
                                f"{len(arrived)} of {len(s.epcs)} tags arrived at "
                                f"{s.destination.site}"))
        elif now > hi + rules.grace and s.destination.site in facts.readers_alive:
            out.append(Evidence(Leg.ARRIVAL, "tags", Outcome.CONTRADICTS,
                                f"only {len(arrived)} of {len(s.epcs)} tags arrived at "
                                f"{s.destination.site}, the window is over"))
        elif now > hi + rules.grace:
            out.append(Evidence(Leg.ARRIVAL, "tags", Outcome.ABSENT,
                                f"{len(arrived)} of {len(s.epcs)} tags arrived; readers at "
                                f"{s.destination.site} not proven reading since"))
        else:
            out.append(Evidence(Leg.ARRIVAL, "tags", Outcome.ABSENT,
                                f"{len(arrived)} of {len(s.epcs)} tags arrived so far"))
    return out


def judge(
    shipment: Shipment,
    facts: ShipmentFacts,
    now: datetime,
    rules: Plausibility | None = None,
) -> Judgement:
    rules = rules or Plausibility()
    evidence = _track_evidence(shipment, facts, now, rules) if shipment.tracker else []
    departed = next((e.at for e in evidence
                     if e.leg is Leg.DEPARTURE and e.outcome is Outcome.SUPPORTS), None)
    evidence += _plate_evidence(shipment, facts, rules)
    evidence += _tag_evidence(shipment, facts, now, rules, departed)
    return Judgement(shipment.id, verdict_of(evidence), tuple(evidence), now)


def verdict_of(evidence: Iterable[Evidence]) -> Verdict:
    items = list(evidence)
    if any(e.outcome is Outcome.CONTRADICTS for e in items):
        return Verdict.CONTRADICTED
    supported = {e.leg for e in items if e.outcome is Outcome.SUPPORTS}
    if not supported:
        return Verdict.NO_EVIDENCE
    if {Leg.DEPARTURE, Leg.ARRIVAL} <= supported:
        return Verdict.CORROBORATED
    return Verdict.PARTLY
