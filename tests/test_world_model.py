"""The simulated world: its format refuses what it cannot be, and its raw signals are what a
warehouse would send, deterministically per seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from firmware_sim.world import Story, World
from firmware_sim.world.signals import (
    DoorContact,
    ReaderKeepalive,
    ReaderPower,
    ReadReport,
    TagRead,
    expand_report,
)

US = 1_000_000


def world(**over: object) -> World:
    spec: dict[str, object] = {
        "start": "2026-11-27T22:00:00", "duration_s": 600,
        "readers": [{"name": "r1", "rounds_per_s": 4, "report_interval_s": 1,
                     "antennas": [{"port": 1, "zone": "bay1"}, {"port": 2, "zone": "bay3"}]}],
        "lots": [{"name": "A", "pieces": 20, "at": ["r1/1"]}],
    }
    spec.update(over)
    return World.model_validate(spec)


def reports(w: World, seed: int = 1) -> list[ReadReport]:
    return [s for s in w.signals(seed) if isinstance(s, ReadReport)]


def key(sig: object) -> object:
    return sig.key() if isinstance(sig, ReadReport) else sig


def test_same_seed_same_stream_other_seed_other_reads() -> None:
    w = world(interference=[{"at_s": 60, "for_s": 120, "read_probability": 0.45}],
              moves=[{"at_s": 100, "lot": "A", "pieces": 5, "path": ["r1/2"]}])
    a = [key(s) for s in w.signals(7)]
    assert a == [key(s) for s in w.signals(7)]
    assert a != [key(s) for s in w.signals(8)]
    times = [s.t_us for s in w.signals(7)]
    assert times == sorted(times)


def test_chunking_keeps_every_period_whole() -> None:
    # Chunks cut periods and stretches elsewhere (so the draws differ), but each report still
    # covers its whole period's rounds, once, and the moved tags arrive at the same time.
    w = world(duration_s=3000, moves=[
        {"at_s": 995, "lot": "A", "pieces": 5, "path": ["r1/2"], "gap_s": 10}],
        lots=[{"name": "A", "pieces": 20, "at": ["r1/1"], "read_probability": 1.0}])

    whole = [(r.t_us, r.rounds, sorted(r.antenna.tolist())) for r in w.signals(3, chunk_s=5000)
             if isinstance(r, ReadReport)]
    for chunk_s in (1000, 777):
        assert [(r.t_us, r.rounds, sorted(r.antenna.tolist()))
                for r in w.signals(3, chunk_s=chunk_s) if isinstance(r, ReadReport)] == whole


def test_start_is_local_time_in_the_site_zone() -> None:
    w = world(timezone="Asia/Shanghai")
    assert w.epoch_us == 1_795_788_000 * US  # 22:00 in Shanghai is 14:00 UTC


def test_each_report_holds_its_periods_rounds_and_each_tag_once() -> None:
    rs = reports(world())
    assert [r.rounds for r in rs[1:5]] == [4, 4, 4, 4]
    for r in rs:
        assert len(set(r.tag.tolist())) == len(r)
        assert np.all(r.count >= 1) and np.all(r.count <= r.rounds)
        assert np.all(r.last_us <= r.t_us) and np.all(r.last_us > r.since_us)


def test_read_probability_sets_the_share_of_tags_missed_per_period() -> None:
    # 20 tags, 1 round per report: a tag is in a report with probability p.
    for p in (0.85, 0.45):
        w = world(duration_s=2000, readers=[{
            "name": "r1", "rounds_per_s": 1, "report_interval_s": 1,
            "antennas": [{"port": 1, "zone": "bay1"}]}],
            lots=[{"name": "A", "pieces": 20, "at": ["r1/1"], "read_probability": p}])
        seen = sum(len(r) for r in reports(w)) / (20 * 2000)
        assert abs(seen - p) < 0.02


def test_a_report_row_sums_up_its_tag_s_rounds_as_reads_one_by_one_would() -> None:
    # 4 rounds per report, p = 0.45: whether a tag is in the report, its count, and the
    # rounds of its first and last read are those of 4 independent rounds.
    p, q, n = 0.45, 0.55, 4
    w = world(duration_s=2000, lots=[{"name": "A", "pieces": 20, "at": ["r1/1"],
                                      "read_probability": p}])
    rows = [(r.rounds, r.since_us, r.count, r.first_us, r.last_us) for r in reports(w)]
    rows = [x for x in rows if x[0] == n]
    seen = sum(len(c) for _, _, c, _, _ in rows) / (20 * len(rows))
    count = np.concatenate([c for *_, c, _, _ in rows])
    dt = US // 4
    first = np.concatenate([(f - since - dt) // dt for _, since, _, f, _ in rows])
    last = np.concatenate([(x - since - dt) // dt for _, since, _, _, x in rows])
    assert abs(seen - (1 - q ** n)) < 0.01
    assert abs(count.mean() - n * p / (1 - q ** n)) < 0.02
    assert abs((first == 0).mean() - p / (1 - q ** n)) < 0.01  # read in the first round
    assert abs((last == n - 1).mean() - p / (1 - q ** n)) < 0.01  # ... in the last
    assert np.all(first <= last) and np.all(last - first + 1 >= count)
    assert np.all((count == 1) == (first == last))


def test_a_moved_pallet_is_unread_in_transit_then_read_at_its_new_antenna() -> None:
    w = world(moves=[{"at_s": 100, "lot": "A", "pieces": 5, "path": ["r1/2"], "gap_s": 8,
                      "dwell_s": 0}], lots=[{"name": "A", "pieces": 20, "at": ["r1/1"],
                                             "read_probability": 1.0}])
    epoch = w.epoch_us
    moved = set(range(5))
    for r in reports(w):
        at = set(zip(r.tag.tolist(), r.antenna.tolist(), strict=True))
        if epoch + 101 * US <= r.t_us < epoch + 108 * US:  # rounds in (100, 108)
            assert not {t for t, _ in at} & moved
        if r.t_us >= epoch + 110 * US:
            assert {(t, 2) for t in moved} <= at


def test_departures_leave_for_good_lowest_pieces_first() -> None:
    w = world(departures=[{"at_s": 100, "lot": "A", "pieces": 8, "incident": "t"}],
              lots=[{"name": "A", "pieces": 20, "at": ["r1/1"], "read_probability": 1.0}])
    late = [r for r in reports(w) if r.t_us > w.epoch_us + 101 * US]
    assert all(set(r.tag.tolist()) == set(range(8, 20)) for r in late)


def test_a_reader_without_power_sends_nothing_and_a_cut_cable_hides_it() -> None:
    for event in ("power", "network"):
        off, on = ("off", "on") if event == "power" else ("down", "up")
        w = world(readers=[{"name": "r1", "antennas": [{"port": 1, "zone": "z"}],
                            "events": [{"at_s": 100, event: off}, {"at_s": 200, event: on}]}])
        sigs = list(w.signals(1))
        heard = [s.t_us for s in sigs if isinstance(s, ReadReport | ReaderKeepalive)]
        assert not [t for t in heard if w.at_us(100) <= t < w.at_us(200)]
        assert [t for t in heard if t > w.at_us(200)]
        assert [s.on for s in sigs if isinstance(s, ReaderPower)] == [False, True]


def test_keepalives_fill_quiet_periods_only() -> None:
    w = world(readers=[{"name": "r1", "report_interval_s": 30, "keepalive_s": 5,
                        "antennas": [{"port": 1, "zone": "z"}]}])
    sigs = list(w.signals(1))
    kinds = [type(s) for s in sigs if s.t_us <= w.at_us(60)]
    assert kinds.count(ReaderKeepalive) >= 8
    busy = world(readers=[{"name": "r1", "report_interval_s": 1, "keepalive_s": 5,
                           "antennas": [{"port": 1, "zone": "z"}]}])
    assert not [s for s in busy.signals(1) if isinstance(s, ReaderKeepalive)]


def test_expand_report_gives_reads_in_time_order_then_the_round() -> None:
    r = reports(world())[10]
    reads = expand_report(r)
    assert all(isinstance(x, TagRead) for x in reads[:-1])
    assert [x.t_us for x in reads] == sorted(x.t_us for x in reads)
    assert {x.epc for x in reads[:-1]} == {s.epc for s in r.tags}


def test_doors_sensors_and_gps_come_out_on_the_clock() -> None:
    w = world(doors=[{"at_s": 30, "door": "dock-1", "open_s": 60}],
              sensors=[{"name": "f1", "value": 4, "noise": 0, "period_s": 60,
                        "excursions": [{"at_s": 120, "for_s": 120, "value": 11}]}],
              fences="demo-site",
              trackers=[{"name": "c1", "period_s": 60, "noise_m": 0,
                         "waypoints": [{"at_s": 0, "lat": 31.0, "lon": 121.0}]}])
    sigs = list(w.signals(1))
    doors = [(s.t_us - w.epoch_us) // US for s in sigs if isinstance(s, DoorContact)]
    assert doors == [30, 90]
    temps = [s.value for s in sigs if type(s).__name__ == "SensorSample"]
    assert temps[:6] == [4, 4, 11, 11, 4, 4]
    fixes = [s for s in sigs if type(s).__name__ == "GpsFix"]
    assert len(fixes) == 11 and all(f.lat == 31.0 for f in fixes)


@pytest.mark.parametrize(("change", "words"), [
    ({"colour": "red"}, "colour"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"start": "2026-11-27T22:00:00+01:00"}, "without an offset"),
    ({"lots": [{"name": "A", "pieces": 2, "at": ["r9/1"]}]}, "no antenna 'r9/1'"),
    ({"departures": [{"at_s": 1, "lot": "Z", "pieces": 1}]}, "no lot 'Z'"),
    ({"lots": [{"name": "A", "pieces": 100000, "at": ["r1/1"]}]}, "pieces"),
    ({"duration_s": -5}, "duration_s"),
    ({"readers": [{"name": "r1", "antennas": [{"port": 1, "zone": "a"},
                                              {"port": 1, "zone": "b"}]}]}, "unique"),
    ({"trackers": [{"name": "c", "waypoints": [{"at_s": 0, "lat": 1, "lon": 1}]}]}, "fences"),
    ({"readers": [{"name": "r1", "antennas": [{"port": 1, "zone": "a"}],
                   "events": [{"at_s": 1, "power": "off", "network": "down"}]}]}, "exactly one"),
])
def test_the_format_refuses_what_the_world_cannot_be(change: dict[str, object],
                                                      words: str) -> None:
    with pytest.raises(ValidationError) as err:
        world(**change)
    assert words in str(err.value)


def test_a_story_refuses_an_expectation_about_an_incident_that_never_happens() -> None:
    site = json.loads(world().model_dump_json())
    with pytest.raises(ValidationError, match="incident 'ghost'"):
        Story.model_validate({"name": "s", "sites": [site], "must": [
            {"alert_type": "theft.*", "incident": "ghost", "within_s": 60}]})
    with pytest.raises(ValidationError, match="must or must not"):
        Story.model_validate({"name": "s", "sites": [site]})


def test_nothing_happens_after_the_world_ends() -> None:
    w = world(doors=[{"at_s": 590, "door": "dock-1", "open_s": 60},
                     {"at_s": 900, "door": "dock-1"}],
              vehicles=[{"at_s": 1000, "plate": "ZZ99999"}])
    sigs = list(w.signals(1))
    assert max(s.t_us for s in sigs) <= w.at_us(600)
    assert [s.open for s in sigs if isinstance(s, DoorContact)] == [True]
