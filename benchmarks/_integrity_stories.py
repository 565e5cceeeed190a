"""The six integrity stories of issue 17, as values fed to the decision objects.

The simulation issue's raw-signal scenario format does not exist yet, so each story is written
here at the level of the facts the decisions take (figures, sightings, fixes, plate reads, tag
movements) with the clock it runs on. Each returns a :class:`StoryOutcome`: what a user expects
(an alert type, a verdict, or nothing) and what the decisions said. The tests
(tests/test_integrity_stories.py) and ``python -m benchmarks integrity`` both run them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from decisions.alert_types import AlertType
from decisions.identity import DuplicateIdentity, IdentityKind, IdentityRegister, Sighting
from decisions.reconciliation import (
    Declaration,
    Figure,
    LotWatch,
    MismatchFinding,
    PalletLabel,
    Source,
    Tolerance,
    labels_figure,
)
from decisions.shipments import (
    Direction,
    Judgement,
    Place,
    PlateRead,
    Shipment,
    ShipmentFacts,
    TagMovement,
    TrackFix,
    Verdict,
    judge,
)

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# Two warehouses about 60 km apart and a counterparty's yard (not watched by Pledgewatch).
WAREHOUSE_A = Place("warehouse-a", 31.2300, 121.4700, 300.0, site="site-a")
WAREHOUSE_B = Place("warehouse-b", 31.2300, 122.1000, 300.0, site="site-b")
BUYER_YARD = Place("buyer-yard", 31.7000, 121.4700, 300.0)
ELSEWHERE = (30.9000, 121.0000)


@dataclass(frozen=True, slots=True)
class StoryOutcome:
    name: str
    fraud: bool  # whether the story is a fraud the decisions must catch
    expected: str  # an alert type, a verdict, or "nothing"
    alerts: tuple[str, ...]  # alert types the decisions raised
    verdict: str | None = None
    explanation: str = ""

    @property
    def as_expected(self) -> bool:
        if self.expected in {v.value for v in Verdict}:
            return self.verdict == self.expected
        if not self.fraud:
            return not self.false_alarm
        return self.expected in self.alerts

    @property
    def false_alarm(self) -> bool:
        """A genuine story called a fraud: any alert, or a contradicted shipment."""
        if self.fraud:
            return False
        return bool(self.alerts) or self.verdict == Verdict.CONTRADICTED


def _declaration(lot: str = "LOT-1") -> Declaration:
    # 100 cartons of 25 kg on 4 pallets, one tag per carton, 40 kg of pallets.
    return Declaration(lot, pieces=100, unit_weight_kg=25.0, declared_at=T0, pallets=4,
                       tare_kg=40.0)


def _labels(at: datetime) -> Figure:
    return labels_figure(
        [PalletLabel(f"00369{n:013d}", "09506000134352", 25) for n in range(4)], at
    )


def _run_watch(watch: LotWatch, figures: list[Figure], checks: list[datetime]) -> list[
    MismatchFinding
]:
    findings: list[MismatchFinding] = []
    pending = sorted(figures, key=lambda f: f.at)
    for now in checks:
        while pending and pending[0].at <= now:
            watch.observe(pending.pop(0))
        findings += watch.evaluate(now)[1]
    return findings


def weight_swap_with_all_tags_present() -> StoryOutcome:
    """Kingold: the tags and labels are all there, the goods are not (lighter goods swapped in)."""
    watch = LotWatch(_declaration(), Tolerance())
    figures: list[Figure] = []
    for k in range(0, 24 * 12):  # every 5 minutes for a day
        at = T0 + k * 5 * MINUTE
        swapped = k >= 12 * 6  # from 14:00 the weight is 30 % down
        figures += [
            Figure(Source.RFID, 100, at),
            Figure(Source.CAMERA, 4, at),
            Figure(Source.LOAD_CELL, 2540.0 * (0.7 if swapped else 1.0) + (k % 3), at),
        ]
        if k % 12 == 0:
            figures.append(_labels(at))
    checks = [T0 + k * 5 * MINUTE for k in range(24 * 12)]
    findings = _run_watch(watch, figures, checks)
    return StoryOutcome(
        "weight swap with all tags present", True, AlertType.WEIGHT_MISMATCH,
        tuple(sorted({str(f.alert_type) for f in findings})),
        explanation=findings[0].explanation() if findings else "",
    )


def slow_leak_within_sensor_drift() -> StoryOutcome:
    """The load cell creeps down 0.03 % a day for 30 days: within its drift, no alarm."""
    watch = LotWatch(_declaration(), Tolerance())
    figures: list[Figure] = []
    checks: list[datetime] = []
    for hour in range(30 * 24):
        at = T0 + timedelta(hours=hour)
        figures += [
            Figure(Source.RFID, 100, at),
            Figure(Source.CAMERA, 4, at),
            Figure(Source.LOAD_CELL, 2540.0 * (1 - 0.0003 * hour / 24) + math.sin(hour), at),
        ]
        if hour % 6 == 0:
            figures.append(_labels(at))
        checks.append(at)
    findings = _run_watch(watch, figures, checks)
    return StoryOutcome("slow leak within sensor drift", False, "nothing",
                        tuple(sorted({str(f.alert_type) for f in findings})))


def _sightings_of_lot(site: str, lot: str, receipt: str, at: datetime) -> list[Sighting]:
    out = [Sighting(IdentityKind.RECEIPT, receipt, site, at, lot=lot, receipt=receipt,
                    source="receipt issued")]
    out += [Sighting(IdentityKind.SSCC, f"00369{n:013d}", site, at + n * MINUTE, lot=lot,
                     receipt=receipt, source=f"{site}/label-cam") for n in range(4)]
    out += [Sighting(IdentityKind.EPC, f"E280{n:020X}", site, at + MINUTE, lot=lot,
                     receipt=receipt, source=f"{site}/reader-1") for n in range(100)]
    return out


def _run_register(register: IdentityRegister, sightings: list[Sighting]) -> list[
    DuplicateIdentity
]:
    found: list[DuplicateIdentity] = []
    for sighting in sorted(sightings, key=lambda s: s.at):
        found += register.observe(sighting)
    return found


def relabelled_and_repledged_at_another_site() -> StoryOutcome:
    """Qingdao: the same pallets' labels and tags turn up at another site under a new receipt."""
    register = IdentityRegister()
    sightings = _sightings_of_lot("site-a", "LOT-1", "WR-2026-0001", T0)
    # Three days later at site B: new lot, new receipt, the same SSCCs and EPCs (relabelled
    # pallets carry the old labels' numbers; the tags were moved with them), while LOT-1 stays
    # pledged at A. No release of LOT-1 ever happened.
    sightings += _sightings_of_lot("site-b", "LOT-9", "WR-2026-0777", T0 + timedelta(days=3))
    found = _run_register(register, sightings)
    return StoryOutcome(
        "lot relabelled and re-pledged at another site", True, AlertType.DUPLICATE_IDENTITY,
        tuple(sorted({str(d.alert_type) for d in found})),
        explanation=found[0].explanation() if found else "",
    )


def epc_cloned_to_a_second_site() -> StoryOutcome:
    """One EPC read every few minutes at A and, at the same time, at B (a cloned tag)."""
    register = IdentityRegister()
    epc = "E2801160600002054C2A1B33"
    sightings = [Sighting(IdentityKind.EPC, epc, "site-a", T0 + k * 3 * MINUTE, lot="LOT-1",
                          source="site-a/reader-1") for k in range(40)]
    sightings += [Sighting(IdentityKind.EPC, epc, "site-b", T0 + 31 * MINUTE + k * 4 * MINUTE,
                           source="site-b/reader-2") for k in range(10)]
    found = _run_register(register, sightings)
    return StoryOutcome(
        "an EPC cloned to a second site", True, AlertType.DUPLICATE_IDENTITY,
        tuple(sorted({str(d.alert_type) for d in found})),
        explanation=found[0].explanation() if found else "",
    )


def _shipment(destination: Place, epcs: frozenset[str] = frozenset()) -> Shipment:
    return Shipment(
        "SHP-1", "site-a", Direction.OUTBOUND, "Buyer Metals Ltd", WAREHOUSE_A, destination,
        "沪A12345", T0 + timedelta(hours=1), T0 + timedelta(hours=4), tracker="trk-7", epcs=epcs,
    )


def _drive(start: tuple[float, float], end: tuple[float, float], t0: datetime, minutes: int,
           every: int = 2) -> list[TrackFix]:
    steps = max(1, minutes // every)
    return [
        TrackFix(t0 + k * every * MINUTE,
                 start[0] + (end[0] - start[0]) * k / steps,
                 start[1] + (end[1] - start[1]) * k / steps)
        for k in range(steps + 1)
    ]


def _departure(epcs: frozenset[str]) -> tuple[list[PlateRead], list[TagMovement]]:
    left = T0 + timedelta(hours=1, minutes=10)
    plates = [PlateRead("site-a", "沪A 12345", True, left, camera="site-a/gate")]
    tags = [TagMovement(e, "site-a", True, left + MINUTE) for e in sorted(epcs)]
    return plates, tags


EPCS = frozenset(f"E280{n:020X}" for n in range(20))
A = (WAREHOUSE_A.lat, WAREHOUSE_A.lon)


def phantom_delivery() -> StoryOutcome:
    """The paperwork says the goods went to the buyer; the truck drove elsewhere and back."""
    shipment = _shipment(BUYER_YARD, EPCS)
    start = T0 + timedelta(hours=1)
    fixes = [TrackFix(start + k * MINUTE, *A) for k in range(10)]
    fixes += _drive(A, ELSEWHERE, start + 10 * MINUTE, 120)
    fixes += _drive(ELSEWHERE, ELSEWHERE, start + 130 * MINUTE, 420)  # parked, reporting
    fixes += _drive(ELSEWHERE, A, start + 550 * MINUTE, 120)
    plates, tags = _departure(EPCS)
    result = judge(shipment, ShipmentFacts(fixes=fixes, plates=plates, tags=tags),
                   T0 + timedelta(days=1))
    return _shipment_outcome("phantom delivery (truck never reaches the destination)", True,
                             Verdict.CONTRADICTED, result)


def genuine_delivery_with_gps_gaps() -> StoryOutcome:
    """A real delivery to the buyer; the tracker loses GPS from the ring road to the way back."""
    shipment = _shipment(BUYER_YARD, EPCS)
    start = T0 + timedelta(hours=1)
    buyer = (BUYER_YARD.lat, BUYER_YARD.lon)
    fixes = [TrackFix(start + k * MINUTE, *A) for k in range(10)]
    fixes += _drive(A, buyer, start + 10 * MINUTE, 80)[:15]  # the first half hour, then nothing
    fixes += _drive(buyer, A, start + 5 * timedelta(hours=1), 80)[10:]  # back in range late
    plates, tags = _departure(EPCS)
    result = judge(shipment, ShipmentFacts(fixes=fixes, plates=plates, tags=tags),
                   T0 + timedelta(days=1))
    return _shipment_outcome("genuine delivery with GPS gaps", False, "not contradicted", result)


def genuine_transfer_between_watched_sites() -> StoryOutcome:
    """A control: a full track, both gates' plate reads and the tags arriving at B."""
    shipment = _shipment(WAREHOUSE_B, EPCS)
    start = T0 + timedelta(hours=1)
    b = (WAREHOUSE_B.lat, WAREHOUSE_B.lon)
    fixes = [TrackFix(start + k * MINUTE, *A) for k in range(10)]
    fixes += _drive(A, b, start + 10 * MINUTE, 70)
    fixes += [TrackFix(start + 82 * MINUTE + k * MINUTE, *b) for k in range(30)]
    plates, tags = _departure(EPCS)
    arrive = start + 82 * MINUTE
    plates.append(PlateRead("site-b", "沪A12345", False, arrive, camera="site-b/gate"))
    tags += [TagMovement(e, "site-b", False, arrive + 5 * MINUTE) for e in sorted(EPCS)]
    result = judge(shipment, ShipmentFacts(fixes=fixes, plates=plates, tags=tags),
                   T0 + timedelta(days=1))
    return _shipment_outcome("genuine transfer between watched sites", False,
                             Verdict.CORROBORATED, result)


def _shipment_outcome(name: str, fraud: bool, expected: str, result: Judgement) -> StoryOutcome:
    alerts = (str(AlertType.SHIPMENT_CONTRADICTED),) if result.verdict is Verdict.CONTRADICTED \
        else ()
    return StoryOutcome(name, fraud, expected, alerts, str(result.verdict), result.explanation())


STORIES: tuple[Callable[[], StoryOutcome], ...] = (
    weight_swap_with_all_tags_present,
    relabelled_and_repledged_at_another_site,
    epc_cloned_to_a_second_site,
    phantom_delivery,
    genuine_delivery_with_gps_gaps,
    slow_leak_within_sensor_drift,
    genuine_transfer_between_watched_sites,
)
