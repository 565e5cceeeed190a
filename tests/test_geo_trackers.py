"""Trackers at the gateway: OwnTracks parsing, theft and silence decisions, and the pipeline
against a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime

import aiomqtt
import pytest
from pydantic import BaseModel

from contract import MessageType
from contract.owntracks import NotALocation, location_payload, parse_location
from decisions.trackers.station import TrackerStation
from decisions.trackers.watch import TrackedAsset
from edge.trackers.pipeline import TrackersSection
from edge.trackers.pipeline import run as run_trackers
from geofences.crossing import CrossingRules
from geofences.fences import SITES_DIR, load_site
from tests.geo_fixtures import T0_US, fix_at

RULES = CrossingRules(confirm_fixes=3, confirm_seconds=10)


def test_owntracks_location_is_parsed_and_others_are_skipped_or_refused():
    payload = location_payload(
        lat=31.35, lon=121.59, acc=12, tst=1_780_000_000, batt=80, created_at=1_780_000_005
    )
    report = parse_location("owntracks/pw/coil-1", payload)
    assert report.fix.tracker == "pw-coil-1"
    assert (report.fix.lat, report.fix.lon, report.fix.accuracy_m) == (31.35, 121.59, 12.0)
    assert report.fix.t_us == 1_780_000_000_000_000
    assert report.battery_pct == 80
    with pytest.raises(NotALocation):
        parse_location("owntracks/pw/coil-1", b'{"_type": "lwt", "tst": 1}')
    for bad in (
        b"{",
        b'{"_type": "location", "lon": 1, "tst": 1780000000}',
        b'{"_type": "location", "lat": 95, "lon": 1, "tst": 1780000000}',
    ):
        with pytest.raises(ValueError):
            parse_location("owntracks/pw/coil-1", bad)
    with pytest.raises(ValueError, match="topic"):
        parse_location("owntracks/pw", payload)


def _drive_out(fences, tracker: str):
    """From the middle of pledge zone B straight east out of the yard, a fix every 5 s."""
    zone = fences.by_id("pz-lot-b").area
    c = zone.centroid
    return [fix_at(fences, tracker, 5 * i, c.x + 4 * i, c.y, 5.0) for i in range(60)]


def _station(released=()):
    fences = load_site("demo-site")
    station = TrackerStation(
        fences,
        [TrackedAsset("coil-1", "LOT-B", 30), TrackedAsset("spare", None, 30)],
        rules=RULES,
        source="sim",
        started_us=T0_US,
    )
    station.watch.set_released(released)
    return fences, station


def test_pledged_asset_leaving_its_fence_unreleased_is_a_theft_candidate():
    fences, station = _station()
    out = []
    for fix in _drive_out(fences, "coil-1"):
        out += station.add(fix, 90, fix.t_us)
    out += station.flush(T0_US + 60_000_000)  # before the spare tracker counts as silent
    exits = [b for t, b in out if t is MessageType.GEOFENCE_EXIT]
    assert [e.fence for e in exits] == ["pz-lot-b", "yard"]
    alerts = [b for t, b in out if t is MessageType.ALERT]
    assert [(a.alert_type, a.action, a.evidence["fence"]) for a in alerts] == [
        ("theft.geofence_exit", "raise", "pz-lot-b"),
        ("theft.geofence_exit", "raise", "yard"),
    ]
    assert alerts[0].lot == "LOT-B" and alerts[0].subject == "tracker:coil-1"
    # The event carries the fix that decided it.
    assert exits[0].fix[0] == alerts[0].evidence["fix"]["t_us"]
    positions = [b for t, b in out if t is MessageType.TRACKER_POSITIONS]
    assert sum(len(p.fixes) for p in positions) == 60


def test_released_lot_leaving_is_an_event_but_no_alert():
    fences, station = _station(released=["LOT-B"])
    for fix in _drive_out(fences, "coil-1"):
        station.add(fix, None, fix.t_us)
    out = station.flush(T0_US + 60_000_000)
    assert [b.fence for t, b in out if t is MessageType.GEOFENCE_EXIT] == ["pz-lot-b", "yard"]
    assert [b for t, b in out if t is MessageType.ALERT] == []


def test_silent_tracker_raises_once_and_clears_when_heard():
    fences, station = _station()
    first = station.flush(T0_US + 60_000_000)
    assert [a for _, a in first] == []
    later = station.flush(T0_US + 100_000_000)  # > 3 x 30 s without a message
    silent = [(a.alert_type, a.subject) for _, a in later]
    assert silent == [
        ("tamper.tracker_silent", "tracker:coil-1"),
        ("tamper.tracker_silent", "tracker:spare"),
    ]
    assert station.flush(T0_US + 200_000_000) == []  # not again
    c = fences.by_id("pz-lot-b").area.centroid
    cleared = station.add(fix_at(fences, "coil-1", 200, c.x, c.y), None, T0_US + 201_000_000)
    assert [(a.action, a.subject) for _, a in cleared] == [("clear", "tracker:coil-1")]


class _Context:
    site = "demo-site"
    gateway = "gw-test"

    def __init__(self) -> None:
        self.emitted: list[tuple[MessageType, BaseModel]] = []
        self.commands: dict[str, Callable[[bytes], None]] = {}

    def emit(
        self, msg_type: MessageType, body: BaseModel, *, observed_at: datetime | None = None
    ) -> None:
        self.emitted.append((msg_type, body))

    def now_us(self) -> int:
        return T0_US + 400_000_000

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        self.commands[name] = handler


async def test_pipeline_over_real_mosquitto_decides_a_theft(mqtt_broker):
    ctx = _Context()
    section = TrackersSection(
        mqtt_url=mqtt_broker.url,
        fences=SITES_DIR / "demo-site.geojson",
        rules={"confirm_fixes": 3, "confirm_seconds": 10},
        assets=[{"tracker": "pw-coil-1", "lot": "LOT-B", "report_interval_s": 600}],
        flush_s=0.2,
    )
    task = asyncio.create_task(run_trackers(section, ctx))
    try:
        await asyncio.sleep(0.5)  # subscribed
        fences = load_site("demo-site")
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:
            await client.publish("owntracks/pw/coil-1", b"not json", qos=1)
            for fix in _drive_out(fences, "x"):
                await client.publish(
                    "owntracks/pw/coil-1",
                    location_payload(
                        lat=fix.lat,
                        lon=fix.lon,
                        acc=5,
                        tst=fix.t_us // 1_000_000,
                        created_at=fix.t_us // 1_000_000,
                    ),
                    qos=1,
                )
        for _ in range(50):
            await asyncio.sleep(0.1)
            if any(t is MessageType.ALERT for t, _ in ctx.emitted):
                break
        # The cloud pushes new fences: acknowledged with the version.
        collection = json.loads((SITES_DIR / "demo-site.geojson").read_text())
        ctx.commands["geofences"](
            json.dumps({"site": "demo-site", "version": 7, "fences": collection}).encode()
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    types = [t for t, _ in ctx.emitted]
    assert types[0] is MessageType.GEOFENCES_APPLIED
    alerts = [b for t, b in ctx.emitted if t is MessageType.ALERT]
    assert [a.evidence["fence"] for a in alerts] == ["pz-lot-b", "yard"]
    acks = [b for t, b in ctx.emitted if t is MessageType.GEOFENCES_APPLIED]
    assert [(a.version, a.state) for a in acks] == [(0, "applied"), (7, "applied")]
