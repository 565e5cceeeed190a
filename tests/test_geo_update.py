"""Fence updates from the cloud: versioned, refused with a reason, and state carried over."""

from __future__ import annotations

import copy
import json

from geofences.crossing import CrossingDetector, CrossingRules, carry_over
from geofences.fences import parse_feature_collection
from geofences.update import decide_update, encode_update
from tests.geo_fixtures import fix_at, square_site


def _payload(version: int, collection: dict, site: str = "test-site") -> bytes:
    return json.dumps({"site": site, "version": version, "fences": collection}).encode()


def test_newer_version_applies_same_is_unchanged_older_is_refused():
    collection = square_site()
    applied = decide_update(_payload(3, collection), site="test-site", running_version=2)
    assert applied.state == "applied" and applied.fences is not None
    assert applied.fences.version == 3
    same = decide_update(_payload(3, collection), site="test-site", running_version=3)
    assert same.state == "unchanged"
    older = decide_update(_payload(1, collection), site="test-site", running_version=3)
    assert older.state == "refused" and "older" in (older.reason or "")


def test_a_bad_fence_or_the_wrong_site_is_refused_with_the_reason():
    collection = square_site()
    broken = copy.deepcopy(collection)
    ring = broken["features"][0]["geometry"]["coordinates"][0]
    ring[1], ring[2] = ring[2], ring[1]  # a bow tie
    refused = decide_update(_payload(2, broken), site="test-site", running_version=1)
    assert refused.state == "refused"
    assert "'zone'" in (refused.reason or "")
    elsewhere = decide_update(_payload(2, collection, "other"), site="test-site", running_version=1)
    assert elsewhere.state == "refused" and "other" in (elsewhere.reason or "")
    assert decide_update(b"{", site="test-site", running_version=1).state == "refused"


def test_round_trip_of_the_pushed_collection():
    fences = parse_feature_collection(square_site(), version=4)
    decision = decide_update(encode_update(fences), site="test-site", running_version=None)
    assert decision.state == "applied" and decision.fences is not None
    assert decision.fences.by_id("zone").area.equals_exact(fences.by_id("zone").area, 1e-6)


def test_state_survives_a_fence_update():
    rules = CrossingRules(confirm_seconds=0)
    v1 = parse_feature_collection(square_site(), version=1)
    detector = CrossingDetector(v1, rules)
    detector.feed([fix_at(v1, "T1", t, 0, 0) for t in range(5)])
    extra = {
        "type": "Feature",
        "properties": {"id": "far", "kind": "yard", "radius_m": 40},
        "geometry": {"type": "Point", "coordinates": [121.7, 31.4]},
    }
    v2 = parse_feature_collection(square_site([extra]), version=2)
    detector = carry_over(detector, v2)
    assert detector.state_of("T1", "zone") == "inside"
    _minx, miny, maxx, maxy = v2.by_id("zone").area.bounds
    leaving = [fix_at(v2, "T1", 10 + t, maxx - 30 + 10 * t, (miny + maxy) / 2) for t in range(20)]
    crossings = detector.feed(leaving)
    assert [(c.kind, c.fence_id) for c in crossings] == [("geofence_exit", "zone")]
