"""The ingest's lanes, fed values and a clock: events apart from bulk, acknowledgements in order."""

from __future__ import annotations

import pytest

from cloud.ingest.lanes import Lanes, Taken


def lanes(limit: int = 10) -> Lanes[str]:
    return Lanes(limit=limit, window_s=0.050, burst_gap_s=0.005)


def names(batch: list[Taken[str]] | float | None) -> list[str]:
    assert isinstance(batch, list), f"expected a batch, got {batch!r}"
    return [t.message for t in batch]


def test_an_event_does_not_wait_for_the_bulk_that_came_first() -> None:
    q = lanes()
    for i in range(5):
        q.arrive(f"reads{i}", event=False, at=0.000 + i / 1000)
    q.arrive("departure", event=True, at=0.010)
    # Within its burst gap the event waits for the rest of its pallet, not for the bulk.
    assert q.next_events(0.012) == pytest.approx(0.015)
    assert names(q.next_events(0.015)) == ["departure"]
    assert q.next_events(0.015) is None
    # The bulk goes once its window (from its first message) is over, without the event.
    assert q.next_bulk(0.049) == pytest.approx(0.050)
    assert names(q.next_bulk(0.050)) == [f"reads{i}" for i in range(5)]
    assert q.next_bulk(0.050) is None


def test_a_burst_of_events_is_one_batch_and_bulk_never_joins_it() -> None:
    q = lanes()
    q.arrive("tag A missing", event=True, at=0.000)
    q.arrive("reads", event=False, at=0.001)
    q.arrive("tag B missing", event=True, at=0.003)
    assert q.next_events(0.006) == pytest.approx(0.008)  # the gap counts from the last event
    assert names(q.next_events(0.008)) == ["tag A missing", "tag B missing"]
    assert names(q.next_bulk(0.052)) == ["reads"]


def test_a_stream_of_events_still_closes_at_the_window() -> None:
    q = lanes(limit=1000)
    at = 0.0
    while at < 0.049:
        q.arrive(f"e{at:.3f}", event=True, at=at)
        at += 0.002
    assert q.next_events(0.049) == pytest.approx(0.050)
    assert len(names(q.next_events(0.050))) == 25


def test_bulk_waits_for_its_window_unless_full() -> None:
    q = lanes(limit=3)
    q.arrive("r0", event=False, at=0.0)
    assert q.next_bulk(0.010) == pytest.approx(0.050)
    q.arrive("r1", event=False, at=0.011)
    q.arrive("r2", event=False, at=0.012)
    q.arrive("r3", event=False, at=0.013)
    assert names(q.next_bulk(0.013)) == ["r0", "r1", "r2"]
    assert q.next_bulk(0.013) == pytest.approx(0.063)  # r3's own window
    assert len(q) == 1


def test_acknowledgements_follow_arrival_order_whatever_committed_first() -> None:
    q = lanes()
    q.arrive("reads0", event=False, at=0.000)
    q.arrive("reads1", event=False, at=0.001)
    q.arrive("departure", event=True, at=0.002)
    q.arrive("reads2", event=False, at=0.003)
    events = q.next_events(0.010)
    assert names(events) == ["departure"]
    assert isinstance(events, list)
    # Stored first, but reads0 and reads1 came before it: nothing may be acknowledged yet.
    assert q.committed(events) == []
    assert q.unacknowledged == 1
    bulk = q.next_bulk(0.060)
    assert isinstance(bulk, list)
    assert q.committed(bulk) == ["reads0", "reads1", "departure", "reads2"]
    assert q.unacknowledged == 0


def test_a_batch_not_committed_holds_back_later_acknowledgements() -> None:
    q = lanes(limit=1)
    for i in range(3):
        q.arrive(f"r{i}", event=False, at=0.0)
    first, second, third = (q.next_bulk(1.0) for _ in range(3))
    assert isinstance(first, list) and isinstance(second, list) and isinstance(third, list)
    assert q.committed(second) == []
    assert q.committed(third) == []
    assert q.committed(first) == ["r0", "r1", "r2"]
    assert q.committed(first) == []  # committing twice acknowledges nothing twice


def test_an_event_batch_stops_at_the_limit() -> None:
    q = lanes(limit=2)
    for i in range(3):
        q.arrive(f"e{i}", event=True, at=0.0)
    assert names(q.next_events(0.0)) == ["e0", "e1"]  # full: no need to wait for the gap
    assert q.next_events(0.0) == pytest.approx(0.005)


def test_a_batch_holds_at_least_one_message() -> None:
    with pytest.raises(ValueError):
        Lanes(limit=0, window_s=0.05, burst_gap_s=0.005)
