"""Each adapter against messages as vendors publish them and other implementations test them.

The examples live in tests/data/*.json, each with its source named next to it, and the value the
adapter must produce: a read/fix, nothing (an event that is not a read), or a refusal by reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contract import TagObservation
from contract.owntracks import LocationRefused, NotALocation, parse_location
from edge.refusals import DeviceInputRefused
from edge.rfid import impinj, zebra

DATA = Path(__file__).parent / "data"


def _examples(name: str) -> list[dict[str, Any]]:
    examples = json.loads((DATA / name).read_text())
    assert all(e["source"] for e in examples)
    return examples


def _read(expected: dict[str, Any], reader: str) -> TagObservation:
    return TagObservation(
        expected["epc"],
        expected["antenna"],
        expected["rssi_cdbm"],
        expected["observed_at_us"],
        reader,
    )


@pytest.mark.parametrize("example", _examples("impinj_events.json"), ids=lambda e: e["source"][:50])
def test_impinj_vendor_messages(example: dict[str, Any]) -> None:
    line = json.dumps(example["message"]).encode()
    expected = example["expected"]
    if expected is not None and "refused" in expected:
        with pytest.raises(DeviceInputRefused) as refused:
            impinj.parse_event(line, "r700")
        assert refused.value.reason == expected["refused"]
        return
    got = impinj.parse_event(line, "r700")
    assert got == (None if expected is None else _read(expected, "r700"))


@pytest.mark.parametrize("example", _examples("zebra_events.json"), ids=lambda e: e["source"][:50])
def test_zebra_vendor_messages(example: dict[str, Any]) -> None:
    parsed = zebra.parse_message(json.dumps(example["message"]).encode(), "fx")
    expected = example["expected"]
    if expected is None:  # a heartbeat: no read, no refusal
        assert (parsed.observations, parsed.refused, parsed.heartbeats) == ([], [], 1)
    elif "refused" in expected:
        assert parsed.observations == []
        assert [e.reason for e in parsed.refused] == [expected["refused"]]
    else:
        assert parsed.refused == []
        assert parsed.observations == [_read(expected, "fx")]


@pytest.mark.parametrize(
    "example", _examples("owntracks_messages.json"), ids=lambda e: e["source"][:50]
)
def test_owntracks_vendor_messages(example: dict[str, Any]) -> None:
    payload = json.dumps(example["message"]).encode()
    expected = example["expected"]
    if "refused" in expected:
        with pytest.raises(LocationRefused) as refused:
            parse_location(example["topic"], payload)
        assert refused.value.reason == expected["refused"]
        return
    if "not_a_location" in expected:
        with pytest.raises(NotALocation, match=expected["not_a_location"]):
            parse_location(example["topic"], payload)
        return
    report = parse_location(example["topic"], payload)
    fix = report.fix
    assert (fix.tracker, fix.t_us, fix.lat, fix.lon, fix.accuracy_m) == (
        expected["tracker"],
        expected["t_us"],
        expected["lat"],
        expected["lon"],
        expected["accuracy_m"],
    )
    assert report.battery_pct == expected["battery_pct"]


@pytest.mark.parametrize("huge", [1e303, -1e303, 1.7976931348623157e308])
def test_a_finite_time_too_large_for_microseconds_is_refused_not_a_crash(huge: float) -> None:
    # Found by the sensor fuzzer: ts * 1e6 overflows to infinity and round() raised.
    from edge.sensors.mqtt_json import SensorMessageRefused, parse_sensor_message

    with pytest.raises(SensorMessageRefused) as sensor:
        parse_sensor_message("sensors/t-1", json.dumps({"ts": huge, "temperature": 4.0}).encode())
    assert sensor.value.reason == "time_out_of_range"
    location = {"_type": "location", "lat": 30.0, "lon": 120.0, "tst": huge}
    with pytest.raises(LocationRefused) as fix:
        parse_location("owntracks/u/d", json.dumps(location).encode())
    assert fix.value.reason == "time_out_of_range"
