"""The shared refusal counter: counts every refusal, logs one line per reason per minute."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from edge.refusals import RefusalMetrics, Refusals


def test_counts_every_refusal_and_logs_once_a_minute_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    refusals = Refusals(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="edge.refusals"):
        for _ in range(500):
            refusals.refuse("impinj_iot", "not_json", "x" * 10_000)
        refusals.refuse("impinj_iot", "bad_epc", "epcHex '0x12'")
        now[0] += 59.0
        refusals.refuse("impinj_iot", "not_json")
        now[0] += 1.0
        refusals.refuse("impinj_iot", "not_json")
    assert refusals.count("impinj_iot", "not_json") == 502
    assert refusals.count("impinj_iot", "bad_epc") == 1
    lines = [(r.reason, r.count_since_last_line) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("not_json", 1), ("bad_epc", 1), ("not_json", 501)]
    assert all(len(r.example) <= 200 for r in caplog.records)  # type: ignore[attr-defined]


def test_metrics_expose_the_counter_by_adapter_and_reason() -> None:
    refusals = Refusals()
    refusals.refuse("zebra_iot", "no_epc")
    refusals.refuse("zebra_iot", "no_epc")
    refusals.refuse("owntracks", "time_out_of_range")
    registry = CollectorRegistry()
    registry.register(RefusalMetrics(refusals))
    text = generate_latest(registry).decode()
    assert 'pw_edge_device_refused_total{adapter="zebra_iot",reason="no_epc"} 2.0' in text
    assert (
        'pw_edge_device_refused_total{adapter="owntracks",reason="time_out_of_range"} 1.0' in text
    )
