"""The simulated trackers through the gateway's decisions: the driven-out coil is one theft,
the coil parked on the fence edge never crosses, the delayed batches lose nothing."""

from __future__ import annotations

from contract import MessageType
from decisions.trackers.station import TrackerStation
from decisions.trackers.watch import TrackedAsset
from firmware_sim.trackers import scenario
from geofences.crossing import CrossingRules
from geofences.fences import load_site
from tests.geo_fixtures import T0_US


def test_demo_scenario_through_the_station():
    fences = load_site("demo-site")
    station = TrackerStation(
        fences,
        [TrackedAsset("coil-1", "LOT-B", 600), TrackedAsset("coil-2", "LOT-B", 600)],
        rules=CrossingRules(),
        source="sim",
        started_us=T0_US,
    )
    out = []
    publications = scenario(fences, T0_US)
    flush_at = 5.0
    for p in publications:
        while p.publish_s > flush_at:  # the gateway flushes every 5 s
            out += station.flush(T0_US + int(flush_at * 1e6))
            flush_at += 5.0
        out += station.add(p.fix, p.battery_pct, T0_US + int(p.publish_s * 1e6))
    out += station.flush(T0_US + int(flush_at * 1e6))

    crossings = [
        (b.tracker, t.value, b.fence)
        for t, b in out
        if t in (MessageType.GEOFENCE_ENTER, MessageType.GEOFENCE_EXIT)
    ]
    assert [c for c in crossings if c[0] == "coil-2"] == []  # jitter at the edge: nothing
    coil1 = [c for c in crossings if c[0] == "coil-1"]
    assert coil1.count(("coil-1", "geofence_exit", "pz-lot-b")) == 1
    assert ("coil-1", "geofence_exit", "yard") in coil1
    alerts = [(a.alert_type, a.subject, a.action) for t, a in out if t is MessageType.ALERT]
    assert alerts.count(("theft.geofence_exit", "tracker:coil-1", "raise")) >= 1
    assert not [a for a in alerts if a[1] == "tracker:coil-2"]
    # The delayed uploader: every fix arrives, in order, none refused as out of order.
    truck = [
        f
        for t, b in out
        if t is MessageType.TRACKER_POSITIONS and b.tracker == "truck-7"
        for f in b.fixes
    ]
    assert len(truck) == sum(p.device == "truck-7" for p in publications)
    assert station.detector.counts.out_of_order == 0
