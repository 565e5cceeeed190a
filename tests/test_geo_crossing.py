"""The crossing detector: jitter does not flap, real crossings are decided once, bad fixes are
rejected and counted, and batches give the same answers as single fixes."""

from __future__ import annotations

import numpy as np
import pytest

from geofences.crossing import CrossingDetector, CrossingRules, GeofenceCrossing
from geofences.fences import load_site, parse_feature_collection
from tests.geo_fixtures import T0_US, fix_at, square_site


@pytest.fixture
def square():
    return parse_feature_collection(square_site())


def _east_edge(fences, fence_id="zone"):
    _minx, miny, maxx, maxy = fences.by_id(fence_id).area.bounds
    return maxx, (miny + maxy) / 2


def test_jitter_at_the_boundary_produces_no_crossing(square):
    """A tracker parked on the fence edge with 5-30 m of correlated GPS noise for ~3 hours."""
    detector = CrossingDetector(square)
    edge_x, mid_y = _east_edge(square)
    rng = np.random.default_rng(7)
    crossings: list[GeofenceCrossing] = []
    ex = ey = 0.0
    for i in range(2000):
        sigma = 4.0 + 16.0 * (0.5 + 0.5 * np.sin(i / 150))  # per-axis error 4..20 m, drifting
        # AR(1) noise: consecutive fixes are correlated the way a parked receiver's are.
        ex = 0.8 * ex + 0.6 * rng.normal(0, sigma)
        ey = 0.8 * ey + 0.6 * rng.normal(0, sigma)
        acc = round(1.5 * sigma)  # the 68 % radius a phone or OwnTracks reports
        crossings += detector.feed(
            [fix_at(square, "T-parked", i * 5, edge_x + ex, mid_y + ey, acc)]
        )
    assert crossings == []
    assert detector.counts.accepted == 2000


def test_a_real_exit_produces_exactly_one_exit_decided_by_the_confirming_fix(square):
    detector = CrossingDetector(square, CrossingRules(confirm_fixes=3, confirm_seconds=0))
    edge_x, mid_y = _east_edge(square)
    fixes = [fix_at(square, "T-truck", t, edge_x - 80 + 8 * t, mid_y, 5.0) for t in range(0, 40)]
    crossings = []
    for fix in fixes:
        crossings += detector.feed([fix])
    assert [(c.kind, c.fence_id, c.lots) for c in crossings] == [
        ("geofence_exit", "zone", ("LOT-1",))
    ]
    # Outside by more than 2 x 5 m from x = edge + 10 m, i.e. t >= 12; three fixes confirm it.
    first_outside = next(f for f in fixes if f.t_us >= T0_US + 12_000_000 - 1)
    assert crossings[0].run_started_us > T0_US + 11_000_000
    assert crossings[0].fix.t_us == crossings[0].run_started_us + 2_000_000
    assert crossings[0].run_fixes == 3
    assert first_outside.t_us <= crossings[0].fix.t_us
    assert detector.state_of("T-truck", "zone") == "outside"


def test_entering_then_exiting_gives_one_of_each(square):
    detector = CrossingDetector(square, CrossingRules(confirm_seconds=2))
    edge_x, mid_y = _east_edge(square)
    path = [edge_x + 100 - 8 * t for t in range(30)] + [edge_x - 140 + 8 * t for t in range(40)]
    crossings = detector.feed([fix_at(square, "T1", t, x, mid_y) for t, x in enumerate(path)])
    assert [c.kind for c in crossings] == ["geofence_enter", "geofence_exit"]


def test_first_fixes_establish_state_without_an_event(square):
    detector = CrossingDetector(square)
    crossings = detector.feed([fix_at(square, "T1", t, 0, 0) for t in range(10)])
    assert crossings == []
    assert detector.state_of("T1", "zone") == "inside"
    assert detector.state_of("T-unknown", "zone") == "unknown"


def test_out_of_order_and_duplicate_fixes_do_not_produce_crossings(square):
    detector = CrossingDetector(square)
    edge_x, mid_y = _east_edge(square)
    live = [fix_at(square, "T1", 100 + t, 0, 0) for t in range(10)]
    stale = [fix_at(square, "T1", t, edge_x + 500, mid_y) for t in range(10)]  # before the live
    assert detector.feed(live) == []
    assert detector.feed(stale) == []
    assert detector.feed(live[-3:]) == []
    # Re-sent fixes: the last one is a duplicate; the two before it are older than the last.
    assert detector.counts.duplicate == 1
    assert detector.counts.out_of_order == 12
    assert detector.state_of("T1", "zone") == "inside"


def test_fixes_within_one_batch_are_taken_in_fix_time_order(square):
    detector = CrossingDetector(square, CrossingRules(confirm_seconds=2))
    edge_x, mid_y = _east_edge(square)
    fixes = [fix_at(square, "T1", t, edge_x - 50 + 10 * t, mid_y) for t in range(20)]
    shuffled = [fixes[i] for i in np.random.default_rng(3).permutation(len(fixes))]
    crossings = detector.feed(shuffled)
    assert [c.kind for c in crossings] == ["geofence_exit"]
    assert detector.counts.out_of_order == 0


def test_impossible_speed_and_bad_accuracy_are_rejected_and_counted(square):
    detector = CrossingDetector(square, CrossingRules(confirm_fixes=1))
    edge_x, mid_y = _east_edge(square)
    assert detector.feed([fix_at(square, "T1", 0, 0, 0)]) == []
    # 5 km in one second, then an accuracy of 300 m: neither may move the tracker out.
    assert detector.feed([fix_at(square, "T1", 1, 5_000, 0)]) == []
    assert detector.feed([fix_at(square, "T1", 2, edge_x + 200, mid_y, acc=300)]) == []
    assert detector.counts.impossible_speed == 1
    assert detector.counts.bad_accuracy == 1
    assert detector.state_of("T1", "zone") == "inside"


def test_a_wrong_anchor_is_replaced_after_repeated_speed_rejections(square):
    detector = CrossingDetector(square, CrossingRules(confirm_fixes=1))
    detector.feed([fix_at(square, "T1", 0, 50_000, 0)])  # a wild first fix
    for t in range(1, 6):
        detector.feed([fix_at(square, "T1", t, 0, 0)])
    assert detector.counts.impossible_speed == 2
    assert detector.last_fix_us("T1") == T0_US + 5_000_000


def test_confirmation_by_seconds(square):
    detector = CrossingDetector(square, CrossingRules(confirm_fixes=1, confirm_seconds=30))
    edge_x, mid_y = _east_edge(square)
    detector.feed([fix_at(square, "T1", 0, 0, 0)])
    out = [fix_at(square, "T1", t, edge_x + 50, mid_y) for t in range(10, 60, 5)]
    crossings = detector.feed(out)
    assert len(crossings) == 1
    assert crossings[0].fix.t_us - crossings[0].run_started_us == 30_000_000


def test_dwell_is_reported_once_per_stay(square):
    detector = CrossingDetector(square, CrossingRules(dwell_seconds=60))
    edge_x, mid_y = _east_edge(square)
    approach = [fix_at(square, "T1", t, edge_x + 60 - 10 * t, mid_y) for t in range(12)]
    stay = [fix_at(square, "T1", 12 + 10 * t, 0, 0) for t in range(30)]
    crossings = detector.feed(approach + stay)
    assert [c.kind for c in crossings] == ["geofence_enter", "geofence_dwell"]
    dwell = crossings[1]
    assert dwell.fix.t_us - dwell.run_started_us >= 60_000_000


def test_a_fence_outside_its_schedule_holds_state():
    closed_gate = {
        "type": "Feature",
        "properties": {
            "id": "night-gate",
            "kind": "gate",
            "schedule": {"timezone": "UTC", "open": ["mon-sun 00:00-00:01"]},
        },
        "geometry": {"type": "Point", "coordinates": [121.5, 31.3]},
    }
    closed_gate["properties"]["radius_m"] = 30
    fences = parse_feature_collection(square_site([closed_gate]))
    detector = CrossingDetector(fences, CrossingRules(confirm_fixes=1))
    gx, gy = fences.projection.to_xy(121.5, 31.3)
    crossings = detector.feed(
        [fix_at(fences, "T1", t, gx + 200 - 20 * t, gy) for t in range(0, 12)]
    )
    assert crossings == []


def test_batches_and_single_fixes_decide_the_same(square):
    """The vectorised path and the one-fix-at-a-time path are the same state machine."""
    rng = np.random.default_rng(11)
    edge_x, mid_y = _east_edge(square)
    fixes = []
    for tracker in range(30):
        x = edge_x + rng.uniform(-150, 150)
        for t in range(60):
            x += rng.normal(0, 12)
            fixes.append(fix_at(square, f"T{tracker}", t * 4, x, mid_y + rng.normal(0, 5), 5.0))
    one_by_one = CrossingDetector(square)
    single = [c for f in fixes for c in one_by_one.feed([f])]
    # Consecutive time windows, each shuffled: within a batch, fix time decides the order.
    by_time = sorted(fixes, key=lambda f: f.t_us)
    batched = CrossingDetector(square)
    chunked = []
    for part in np.array_split(np.arange(len(by_time)), 7):
        chunked += batched.feed([by_time[i] for i in rng.permutation(part)])

    def key(c):
        return (c.tracker, c.fix.t_us, c.kind, c.fence_id, c.run_started_us, c.run_fixes)

    assert len(single) >= 5, "the random walks should cross the edge several times"
    assert sorted(map(key, chunked)) == sorted(map(key, single))
    assert sorted(map(key, CrossingDetector(square).feed(fixes))) == sorted(map(key, single))
    assert batched.counts == one_by_one.counts


def test_demo_site_truck_driving_out_of_pledge_zone_b():
    fences = load_site("demo-site")
    detector = CrossingDetector(fences)
    zone = fences.by_id("pz-lot-b").area
    cx, cy = zone.centroid.x, zone.centroid.y
    gate = fences.by_id("gate-south").area.centroid
    steps = 60
    path = [
        (cx + (gate.x - cx) * i / steps, cy + (gate.y - cy) * i / steps) for i in range(steps + 1)
    ]
    path += [(gate.x, gate.y - 6 * i) for i in range(1, 30)]
    crossings = detector.feed(
        [fix_at(fences, "T-coil", 4 * i, x, y, 3.0) for i, (x, y) in enumerate(path)]
    )
    kinds = [(c.kind, c.fence_id) for c in crossings]
    assert kinds.count(("geofence_exit", "pz-lot-b")) == 1
    assert ("geofence_exit", "yard") in kinds
    assert ("geofence_enter", "access-road") in kinds
