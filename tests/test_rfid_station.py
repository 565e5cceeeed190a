"""The RFID station on values: reads in, messages out, with no reader, clock or broker."""

from __future__ import annotations

from contract import MessageType, TagObservation
from edge.rfid.presence import LotDefinition
from edge.rfid.reader import ReaderCycle, ReaderHealth
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.station import RfidStation
from edge.rfid.zones import ZoneDefinition

T0 = 1_800_000_000_000_000
EPCS = [f"E2801170000002{i:010X}" for i in range(4)]


def _station(batch_max_reads: int = 500, *, telemetry: bool = True) -> RfidStation:
    return RfidStation(
        [LotDefinition(lot_id="LOT-A", epcs=frozenset(EPCS), absence_window_s=5.0,
                       readers=frozenset({"dock-1"}))],
        [ZoneDefinition("bay-1", frozenset({1}), None, None),
         ZoneDefinition("door-1", frozenset({2}), None, None)],
        T0,
        # 6 cycles of proof: a tag read 9 times in 10 per cycle is missed by all with p <= 1e-6
        policy=SmoothingPolicy(min_window_s=1.0, max_window_s=5.0, cycle_read_probability=0.9),
        batch_max_reads=batch_max_reads, zone_margin_cdbm=300, zone_confirm_reads=2,
        zone_stale_s=10.0, telemetry=telemetry,
    )


def _round(
    at_us: int, epcs: list[str], antenna: int = 1, rssi_cdbm: int = -5000
) -> list[TagObservation]:
    return [TagObservation(e, antenna, rssi_cdbm, at_us, "dock-1") for e in epcs]


def test_reads_become_batches_presence_and_what_the_alerting_stage_sees() -> None:
    station = _station()
    out = station.on_observations(_round(T0, EPCS))
    present = [b for t, b, _ in out.messages if t is MessageType.PRESENCE_CHANGE]
    assert {b.epc for b in present} == set(EPCS) and {b.state for b in present} == {"present"}
    assert out.observed == [out.observed[0]] and len(out.observed[0]) == 4  # one batch, seen once
    assert not [t for t, _, _ in out.messages if t is MessageType.TAG_READS]  # waits for flush
    [(kind, reads, at)] = station.flush().messages
    assert kind is MessageType.TAG_READS and len(reads.reads) == 4  # type: ignore[attr-defined]
    assert at is not None and at.timestamp() * 1e6 == T0
    assert station.flush().messages == []


def test_a_full_batch_goes_at_once() -> None:
    station = _station(batch_max_reads=3)
    out = station.on_observations(_round(T0, EPCS))
    assert [t for t, _, _ in out.messages].count(MessageType.TAG_READS) == 1


def _cycle(station: RfidStation, at_us: int) -> None:
    station.on_cycle(ReaderCycle("dock-1", (0,), at_us))


def test_a_silent_tag_goes_missing_but_a_dead_reader_makes_tags_unknown() -> None:
    station = _station()
    for i in range(12):  # a steady read rate teaches the departure window
        station.on_observations(_round(T0 + i * 500_000, EPCS))
        _cycle(station, T0 + i * 500_000)
    last = T0 + 11 * 500_000
    for i in range(1, 30):  # the reader keeps reading three of four tags, every round counted
        station.on_observations(_round(last + i * 500_000, EPCS[1:]))
        _cycle(station, last + i * 500_000)
    out = station.tick(last + 30 * 500_000)
    gone = [b for t, b, _ in out.messages if t is MessageType.PRESENCE_CHANGE]
    assert [(b.epc, b.state) for b in gone] == [(EPCS[0], "missing")]

    offline = station.on_health(ReaderHealth("dock-1", False, "keepalive lost", last + 16_000_000))
    changed = {(b.epc, b.state) for t, b, _ in offline.messages
               if t is MessageType.PRESENCE_CHANGE}
    # the three present become unknown; the one proven gone stays missing
    assert changed == {(e, "unknown") for e in EPCS[1:]}
    assert offline.observed[-1].online is False  # type: ignore[union-attr]


def test_the_same_silence_without_read_cycles_is_unknown_not_missing() -> None:
    station = _station()
    for i in range(12):
        station.on_observations(_round(T0 + i * 500_000, EPCS))
        _cycle(station, T0 + i * 500_000)
    last = T0 + 11 * 500_000
    # The reader's power is cut: no read, no cycle, and the adapter has not noticed yet.
    out = station.tick(last + 30 * 500_000)
    changed = [(b.epc, b.state) for t, b, _ in out.messages if t is MessageType.PRESENCE_CHANGE]
    assert sorted(changed) == sorted((e, "unknown") for e in EPCS)


def test_a_move_between_zones_is_reported_once_confirmed() -> None:
    station = _station()
    station.on_observations(_round(T0, EPCS[:1], antenna=1))
    station.on_observations(_round(T0 + 100_000, EPCS[:1], antenna=1))
    moves = []
    for i in range(2, 6):
        # The pallet at the door: heard louder there than in its bay.
        out = station.on_observations(
            _round(T0 + i * 100_000, EPCS[:1], antenna=2, rssi_cdbm=-4000)
        )
        moves += [b for t, b, _ in out.messages if t is MessageType.TAG_ZONE]
    assert [(m.zone, m.lot) for m in moves][-1] == ("door-1", "LOT-A")
    assert len([m for m in moves if m.zone == "door-1"]) == 1


def test_counts_report_each_lot_and_tags_in_no_lot() -> None:
    station = _station()
    station.on_observations(_round(T0, [*EPCS, "300833B2DDD9014000000099"]))
    kinds = [t for t, _, _ in station.counts().messages]
    assert kinds == [MessageType.LOT_COUNT, MessageType.UNEXPECTED_TAGS]
    again = station.counts().messages[1][1]
    assert again.new == [] and again.total_tags == 1  # type: ignore[attr-defined]


def test_without_telemetry_the_same_decisions_and_no_reads_or_zones() -> None:
    # The world's runner asks for no tag_reads/tag_zone: what presence decides, and what the
    # alerting stage sees, stay those of a station that sends them.
    stations = [_station(batch_max_reads=3), _station(batch_max_reads=3, telemetry=False)]
    said: list[list[tuple[str, object]]] = [[], []]
    for i, station in enumerate(stations):
        t = T0
        for k in range(40):  # two tags leave after 10 reports, one moves to the door antenna
            epcs = EPCS if k < 10 else EPCS[:2]
            rows = [(e, 2 if k >= 20 and e == EPCS[0] else 1, -5000, t, t + 400_000, 3)
                    for e in epcs]
            outs = [station.on_report("dock-1", rows), station.tick(t + 500_000),
                    station.flush()]
            station.on_cycles("dock-1", (0,), [t + 250_000, t + 500_000])
            for out in outs:
                said[i] += [(str(kind), body.model_dump()) for kind, body, _ in out.messages]
                said[i] += [("observed", repr(o)) for o in out.observed]
            t += 500_000
    kinds = [{k for k, _ in s} for s in said]
    assert {str(MessageType.TAG_READS), str(MessageType.TAG_ZONE)} <= kinds[0]
    assert not kinds[1] & {str(MessageType.TAG_READS), str(MessageType.TAG_ZONE)}
    decided = [[x for x in s if x[0] not in {str(MessageType.TAG_READS),
                                              str(MessageType.TAG_ZONE)}] for s in said]
    assert any(x[0] == str(MessageType.PRESENCE_CHANGE) and x[1]["state"] == "missing"
               for x in decided[0]), "the stream must see departures"
    assert decided[0] == decided[1]
