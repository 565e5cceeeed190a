"""One answer to "may this plate take goods out?" from the three lists (decisions.vehicles)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from decisions.vehicles import (
    ApprovedRelease,
    AuthorisedVehicle,
    AuthorisedVehicles,
    TimeWindow,
    vehicle_authorised,
)

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday


def test_a_plate_a_lot_lists_is_authorised_whatever_its_spelling() -> None:
    verdict = vehicle_authorised("粤BD12345", AT, lot_plates=["粤B-D12345"])
    assert verdict.authorised and "lot" in verdict.reason


def test_an_approved_release_authorises_its_vehicle_for_a_day() -> None:
    release = ApprovedRelease("AB123", AT - timedelta(hours=23))
    assert vehicle_authorised("ab 123", AT, releases=[release]).authorised
    stale = ApprovedRelease("AB123", AT - timedelta(hours=25))
    late = vehicle_authorised("AB123", AT, releases=[stale])
    assert not late.authorised and "no authorised list" in late.reason


def test_the_gate_list_authorises_only_inside_its_windows() -> None:
    gate = AuthorisedVehicles(version=3, vehicles=[AuthorisedVehicle(
        plate="QQ1", windows=[TimeWindow(days=[4], start=time(8), end=time(12))])])
    assert vehicle_authorised("QQ1", AT, gate_list=gate).authorised
    evening = vehicle_authorised("QQ1", AT + timedelta(hours=8), gate_list=gate)
    assert not evening.authorised and "not authorised at" in evening.reason


def test_a_plate_on_no_list_is_not_authorised() -> None:
    verdict = vehicle_authorised("ZZ9", AT, lot_plates=["AB1"],
                                 releases=[ApprovedRelease("AB2", AT)])
    assert not verdict.authorised
