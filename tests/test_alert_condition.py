"""Whether an alert's condition still holds: values in, the supervisor's reason out."""

from __future__ import annotations

from decisions.alert_condition import ConditionNow, SensorValue, still_holds
from decisions.alert_types import AlertType


def test_missing_tags_block_the_resolve_and_are_named() -> None:
    reason = still_holds(AlertType.TAG_MISSING, "lot:LOT-A",
                         ConditionNow(missing_epcs=tuple(f"E{i}" for i in range(7))))
    assert reason is not None
    assert "7 tag(s) of lot:LOT-A are still missing" in reason and "E0" in reason
    assert "2 more" in reason
    assert still_holds(AlertType.TAG_MISSING, "lot:LOT-A", ConditionNow()) is None


def test_a_tracker_outside_its_fence_blocks_until_it_is_back() -> None:
    outside = ConditionNow(tracker_outside="yard")
    assert "still outside fence yard" in (
        still_holds(AlertType.GEOFENCE_EXIT, "tracker:T1", outside) or "")
    assert still_holds(AlertType.GEOFENCE_EXIT, "tracker:T1", ConditionNow()) is None


def test_temperature_out_of_range_blocks_and_back_in_range_clears() -> None:
    hot = ConditionNow(sensor=SensorValue(9.5, 2.0, 8.0, " degC"))
    reason = still_holds(AlertType.TEMPERATURE, "sensor:cold-1", hot)
    assert reason == "sensor:cold-1 still reads 9.5 degC, outside [2, 8] degC"
    ok = ConditionNow(sensor=SensorValue(5.0, 2.0, 8.0, " degC"))
    assert still_holds(AlertType.TEMPERATURE, "sensor:cold-1", ok) is None
    low_only = ConditionNow(sensor=SensorValue(-1.0, 0.0, None))
    assert "[0, inf]" in (still_holds(AlertType.HUMIDITY, "sensor:h", low_only) or "")


def test_offline_reader_and_gateway_block_while_offline() -> None:
    assert still_holds(AlertType.READER_OFFLINE, "reader:r1",
                       ConditionNow(reader_online=False)) == "reader:r1 is still offline"
    assert still_holds(AlertType.READER_OFFLINE, "reader:r1",
                       ConditionNow(reader_online=True)) is None
    assert still_holds(AlertType.GATEWAY_OFFLINE, "gateway:gw",
                       ConditionNow(gateway_online=False)) is not None


def test_what_is_not_known_never_blocks() -> None:
    # An alert nobody could close would be worse than one closed on the supervisor's word.
    for kind in (AlertType.READER_OFFLINE, AlertType.TEMPERATURE, AlertType.SHOCK,
                 AlertType.COUNT_MISMATCH, "site.custom_rule"):
        assert still_holds(kind, "x", ConditionNow()) is None
