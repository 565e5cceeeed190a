"""Sensor threshold decisions: short excursions produce nothing, long ones exactly one alert,
hysteresis stops flapping; doors against a schedule, seals, load cells and releases."""

from __future__ import annotations

import pytest

from edge.sensors.decisions import (
    DoorMonitor,
    RangeMonitor,
    RangeRule,
    SealMonitor,
    WeightWatch,
)
from geofences.schedule import parse_schedule

S = 1_000_000
T0 = 1_780_000_000 * S  # 2026-05-28 20:26:40 UTC, a Thursday


def _cold_chain() -> RangeMonitor:
    rule = RangeRule("damage.temperature", low=2.0, high=8.0, hysteresis=0.5, min_duration_s=600)
    return RangeMonitor(rule, subject="sensor:cold-1", lot="LOT-A")


def _feed(monitor, values, step_s=60):
    return [a for i, v in enumerate(values) if (a := monitor.feed(v, T0 + i * step_s * S))]


def test_excursion_shorter_than_allowed_duration_produces_nothing():
    # 9 minutes at 9.5 C (readings every minute), then back: under the 10-minute allowance.
    alerts = _feed(_cold_chain(), [5.0] * 5 + [9.5] * 9 + [6.0] * 5)
    assert alerts == []


def test_excursion_longer_than_allowed_duration_produces_exactly_one_alert():
    alerts = _feed(_cold_chain(), [5.0] * 5 + [9.5] * 30 + [6.0] * 5)
    assert [a.action for a in alerts] == ["raise", "clear"]
    raised = alerts[0]
    assert raised.alert_type == "damage.temperature" and raised.lot == "LOT-A"
    assert raised.evidence["excursion_started_us"] == T0 + 5 * 60 * S
    assert raised.evidence["decided_at_us"] == T0 + 15 * 60 * S  # 10 minutes later


def test_hysteresis_stops_flapping_at_the_limit():
    values = [5.0] * 3 + [9.0] * 15 + [7.9, 8.1, 7.8, 8.2, 7.9, 8.05] * 5 + [7.0]
    alerts = _feed(_cold_chain(), values)
    assert [a.action for a in alerts] == ["raise", "clear"]  # clears only at 7.0 <= 8 - 0.5


def test_low_side_and_peak():
    alerts = _feed(_cold_chain(), [5.0, 1.5, 0.5, 1.0] + [1.0] * 10)
    assert alerts[0].evidence["peak"] == 0.5


def test_shock_is_immediate_and_once_per_episode():
    rule = RangeRule("damage.shock", high=4.0, hysteresis=1.0, severity="major", unit=" g")
    monitor = RangeMonitor(rule, subject="sensor:shock-1")
    alerts = _feed(monitor, [0.2, 6.5, 5.0, 3.5, 7.0, 0.3, 0.2, 5.5], step_s=1)
    assert [a.action for a in alerts] == ["raise", "clear", "raise"]


def test_out_of_order_and_non_finite_readings_are_ignored():
    monitor = _cold_chain()
    assert monitor.feed(5.0, T0 + 100 * S) is None
    assert monitor.feed(50.0, T0 + 50 * S) is None
    assert monitor.feed(float("nan"), T0 + 200 * S) is None
    assert monitor.state == "normal"


def test_rule_validation():
    with pytest.raises(ValueError, match="needs low, high"):
        RangeRule("damage.humidity")
    with pytest.raises(ValueError, match="below"):
        RangeRule("damage.humidity", low=80, high=20)


def test_door_open_outside_schedule():
    # Thursday 20:26 UTC is Friday 04:26 in Shanghai: outside 07:00-19:00.
    door = DoorMonitor(
        parse_schedule({"timezone": "Asia/Shanghai", "open": ["mon-sat 07:00-19:00"]}),
        subject="sensor:door-1",
    )
    assert door.feed(True, T0).action == "raise"
    assert door.feed(True, T0 + 10 * S) is None
    assert door.feed(False, T0 + 20 * S).action == "clear"
    daytime = T0 + 6 * 3600 * S  # 10:26 Shanghai
    assert door.feed(True, daytime) is None


def test_seal_broken_raises_once_and_clears_when_resealed():
    seal = SealMonitor(subject="sensor:seal-7", lot="LOT-B")
    assert seal.feed(False, T0) is None
    raised = seal.feed(True, T0 + S)
    assert (raised.alert_type, raised.action, raised.lot) == ("theft.seal_broken", "raise", "LOT-B")
    assert seal.feed(True, T0 + 2 * S) is None
    assert seal.feed(False, T0 + 3 * S).action == "clear"


def test_weight_drop_without_release_is_a_theft_candidate():
    watch = WeightWatch(
        subject="sensor:scale-1", lot="LOT-A", tolerance_kg=50, min_duration_s=60, hysteresis_kg=10
    )
    readings = [20_000.0] * 5 + [19_990.0] * 3 + [19_200.0] * 10
    alerts = [
        a for i, kg in enumerate(readings) if (a := watch.feed(kg, T0 + i * 10 * S, released=False))
    ]
    assert [a.alert_type for a in alerts] == ["theft.weight_drop"]
    assert alerts[0].evidence["low"] == 19_950.0


def test_weight_drop_during_an_approved_release_becomes_the_new_expectation():
    watch = WeightWatch(
        subject="sensor:scale-1",
        lot="LOT-A",
        tolerance_kg=50,
        min_duration_s=60,
        expected_kg=20_000,
    )
    alerts = []
    for i, kg in enumerate([20_000.0] * 3 + [15_000.0] * 10):
        alerts += [a for a in [watch.feed(kg, T0 + i * 10 * S, released=True)] if a]
    assert alerts == []
    assert watch.expected_kg == 15_000.0
    later = [watch.feed(14_000.0, T0 + (200 + i * 10) * S, released=False) for i in range(10)]
    assert [a.alert_type for a in later if a] == ["theft.weight_drop"]


def test_simulated_sensor_scenario_gives_exactly_the_scripted_alerts():
    from edge.sensors.mqtt_json import parse_sensor_message
    from edge.sensors.pipeline import DeviceSection, SensorStation
    from firmware_sim.sensors import payload, scenario

    station = SensorStation(
        [
            DeviceSection(
                id="cold-1",
                lot="LOT-A",
                temperature={"low": 2, "high": 8, "hysteresis": 0.5, "min_duration_s": 600},
            ),
            DeviceSection(id="shock-1", lot="LOT-A", shock={"high": 4, "hysteresis": 1}),
            DeviceSection(
                id="door-1",
                door_schedule={"timezone": "Asia/Shanghai", "open": ["mon-sun 07:00-08:00"]},
            ),
            DeviceSection(id="seal-7", lot="LOT-B", seal=True),
        ]
    )
    alerts = []
    for message in scenario():
        for reading in parse_sensor_message(f"sensors/{message.sensor}", payload(message, T0 / S)):
            alerts += [(b.alert_type, b.action) for _, b in station.add(reading)]
    # In scenario order: door at minute 30, knock at 45, the 15-minute excursion from minute
    # 60 (the 4-minute one at 20 gives nothing), the seal cut at 90.
    assert alerts == [
        ("theft.door_open_outside_hours", "raise"),
        ("theft.door_open_outside_hours", "clear"),
        ("damage.shock", "raise"),
        ("damage.shock", "clear"),
        ("damage.temperature", "raise"),
        ("damage.temperature", "clear"),
        ("theft.seal_broken", "raise"),
    ]
