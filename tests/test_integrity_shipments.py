"""Trade authenticity on values: each evidence item and the verdict it leads to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from decisions.shipments import (
    Direction,
    Evidence,
    FencePassage,
    Leg,
    Outcome,
    Place,
    PlateRead,
    Shipment,
    ShipmentFacts,
    TagMovement,
    TrackFix,
    Verdict,
    distance_m,
    judge,
    verdict_of,
)

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
A = Place("warehouse-a", 31.23, 121.47, 300.0, site="site-a")
B = Place("warehouse-b", 31.23, 122.10, 300.0, site="site-b")
YARD = Place("buyer-yard", 31.70, 121.47, 300.0)
EPCS = frozenset(f"E{n:04d}" for n in range(10))
LATER = T0 + timedelta(days=1)


def shipment(destination: Place = B, *, tracker: str | None = "trk-1",
             epcs: frozenset[str] = EPCS) -> Shipment:
    return Shipment("SHP-1", "site-a", Direction.OUTBOUND, "Buyer", A, destination, "沪A12345",
                    T0, T0 + timedelta(hours=3), tracker=tracker, epcs=epcs)


def at(place: Place, when: datetime) -> TrackFix:
    return TrackFix(when, place.lat, place.lon)


def by_kind(judgement_evidence: tuple[Evidence, ...]) -> dict[tuple[Leg, str], Outcome]:
    return {(e.leg, e.kind): e.outcome for e in judgement_evidence}


def test_distance_is_about_sixty_km_between_the_warehouses() -> None:
    assert 59_000 < distance_m(A.lat, A.lon, B.lat, B.lon) < 61_000


def test_nothing_observed_is_no_evidence() -> None:
    result = judge(shipment(), ShipmentFacts(), T0 + MIN)
    assert result.verdict is Verdict.NO_EVIDENCE
    assert {e.outcome for e in result.evidence} == {Outcome.ABSENT}


def test_track_plates_and_tags_at_both_ends_corroborate() -> None:
    facts = ShipmentFacts(
        fixes=[at(A, T0 + 10 * MIN), at(B, T0 + 90 * MIN)],
        plates=[PlateRead("site-a", "沪A 12345", True, T0 + 12 * MIN),
                PlateRead("site-b", "沪a12345", False, T0 + 91 * MIN)],
        tags=[TagMovement(e, "site-a", True, T0 + 12 * MIN) for e in EPCS]
        + [TagMovement(e, "site-b", False, T0 + 95 * MIN) for e in EPCS],
    )
    result = judge(shipment(), facts, LATER)
    assert result.verdict is Verdict.CORROBORATED
    assert set(by_kind(result.evidence).values()) == {Outcome.SUPPORTS}
    assert result.as_json()["verdict"] == "corroborated"


def test_fence_passages_count_as_the_track() -> None:
    facts = ShipmentFacts(passages=[FencePassage("warehouse-a", False, T0 + 10 * MIN),
                                    FencePassage("warehouse-b", True, T0 + 80 * MIN)])
    result = judge(shipment(epcs=frozenset()), facts, LATER)
    kinds = by_kind(result.evidence)
    assert kinds[(Leg.DEPARTURE, "track")] is Outcome.SUPPORTS
    assert kinds[(Leg.ARRIVAL, "track")] is Outcome.SUPPORTS


def test_an_arrival_faster_than_a_vehicle_is_a_spoofed_track() -> None:
    facts = ShipmentFacts(fixes=[at(A, T0 + 10 * MIN), at(B, T0 + 15 * MIN)])
    result = judge(shipment(epcs=frozenset()), facts, LATER)
    assert result.verdict is Verdict.CONTRADICTED
    assert by_kind(result.evidence)[(Leg.ROUTE, "track")] is Outcome.CONTRADICTS


def test_a_continuous_track_that_never_reaches_the_destination_contradicts() -> None:
    # Parked 5 km from the origin, reporting every 10 minutes well past the window.
    parked = (31.23, 121.52)
    fixes = [at(A, T0)] + [TrackFix(T0 + k * 10 * MIN, *parked) for k in range(1, 80)]
    result = judge(shipment(YARD, epcs=frozenset()), ShipmentFacts(fixes=fixes), LATER)
    assert result.verdict is Verdict.CONTRADICTED
    assert by_kind(result.evidence)[(Leg.ARRIVAL, "track")] is Outcome.CONTRADICTS


def test_a_gap_long_enough_to_visit_the_destination_is_only_absent() -> None:
    parked = (31.23, 121.52)
    fixes = [at(A, T0), TrackFix(T0 + 10 * MIN, *parked)]
    fixes += [TrackFix(T0 + timedelta(hours=5) + k * 10 * MIN, *parked) for k in range(10)]
    result = judge(shipment(YARD, epcs=frozenset()), ShipmentFacts(fixes=fixes), LATER)
    assert by_kind(result.evidence)[(Leg.ARRIVAL, "track")] is Outcome.ABSENT
    assert result.verdict is Verdict.PARTLY


def test_a_late_truck_still_on_its_way_is_not_a_phantom() -> None:
    # Tracked without a gap, not there yet 3 hours after the window: late, not contradicted.
    parked = (31.23, 121.52)
    fixes = [at(A, T0)] + [TrackFix(T0 + k * 10 * MIN, *parked) for k in range(1, 37)]
    result = judge(shipment(YARD, epcs=frozenset()), ShipmentFacts(fixes=fixes),
                   T0 + timedelta(hours=6))
    assert by_kind(result.evidence)[(Leg.ARRIVAL, "track")] is Outcome.ABSENT


def test_before_the_window_is_over_a_missing_arrival_proves_nothing() -> None:
    parked = (31.23, 121.52)
    fixes = [at(A, T0)] + [TrackFix(T0 + k * 10 * MIN, *parked) for k in range(1, 12)]
    result = judge(shipment(YARD, epcs=frozenset()), ShipmentFacts(fixes=fixes), T0 + 2 * 60 * MIN)
    assert result.verdict is Verdict.PARTLY


def test_tags_still_read_at_the_origin_after_departure_contradict() -> None:
    facts = ShipmentFacts(
        fixes=[at(A, T0 + 10 * MIN)],
        tags=[TagMovement(e, "site-a", False, T0 + timedelta(hours=4)) for e in EPCS],
    )
    result = judge(shipment(), facts, T0 + timedelta(hours=5))
    assert by_kind(result.evidence)[(Leg.DEPARTURE, "tags")] is Outcome.CONTRADICTS
    assert result.verdict is Verdict.CONTRADICTED


def test_tags_never_arriving_at_a_watched_destination_contradict_after_the_grace() -> None:
    facts = ShipmentFacts(tags=[TagMovement(e, "site-a", True, T0 + 10 * MIN) for e in EPCS],
                          readers_alive=frozenset({"site-b"}))
    early = judge(shipment(tracker=None), facts, T0 + timedelta(hours=4))
    assert early.verdict is Verdict.PARTLY
    late = judge(shipment(tracker=None), facts, LATER)
    assert late.verdict is Verdict.CONTRADICTED
    assert by_kind(late.evidence)[(Leg.ARRIVAL, "tags")] is Outcome.CONTRADICTS


def test_tags_missing_at_a_destination_whose_readers_are_dead_prove_nothing() -> None:
    facts = ShipmentFacts(tags=[TagMovement(e, "site-a", True, T0 + 10 * MIN) for e in EPCS])
    late = judge(shipment(tracker=None), facts, LATER)
    assert by_kind(late.evidence)[(Leg.ARRIVAL, "tags")] is Outcome.ABSENT
    assert late.verdict is Verdict.PARTLY


def test_a_few_tags_missed_by_the_reader_still_support() -> None:
    seen = sorted(EPCS)[:9]  # 90 %
    facts = ShipmentFacts(tags=[TagMovement(e, "site-a", True, T0 + 10 * MIN) for e in seen]
                          + [TagMovement(e, "site-b", False, T0 + 90 * MIN) for e in seen])
    result = judge(shipment(tracker=None), facts, LATER)
    assert result.verdict is Verdict.CORROBORATED


def test_another_vehicles_plate_is_not_evidence() -> None:
    facts = ShipmentFacts(plates=[PlateRead("site-a", "沪B99999", True, T0 + 5 * MIN)])
    result = judge(shipment(tracker=None, epcs=frozenset()), facts, T0 + MIN)
    assert result.verdict is Verdict.NO_EVIDENCE


def test_an_unwatched_destination_has_no_plate_or_tag_evidence() -> None:
    result = judge(shipment(YARD, tracker=None), ShipmentFacts(), T0)
    assert {e.leg for e in result.evidence} == {Leg.DEPARTURE}


def test_the_verdict_table() -> None:
    s = Outcome.SUPPORTS
    dep = Evidence(Leg.DEPARTURE, "plate", s, "")
    arr = Evidence(Leg.ARRIVAL, "plate", s, "")
    bad = Evidence(Leg.ARRIVAL, "tags", Outcome.CONTRADICTS, "")
    gap = Evidence(Leg.ARRIVAL, "track", Outcome.ABSENT, "")
    assert verdict_of([dep, arr, gap]) is Verdict.CORROBORATED
    assert verdict_of([dep, gap]) is Verdict.PARTLY
    assert verdict_of([dep, arr, bad]) is Verdict.CONTRADICTED
    assert verdict_of([gap]) is Verdict.NO_EVIDENCE
