"""The camera decisions, fed with values and a clock: passage voting and direction, blindness,
authorised exits, unreadable labels, and motion gating on rendered frames."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from decisions.vehicles import AuthorisedVehicles, judge_exit
from edge.vision.label_watch import LabelWatch
from edge.vision.motion import MotionGate, region_to_search
from edge.vision.passages import CountingLine, PassageTracker, PlateSighting
from edge.vision.tamper import CameraBlindness, FrameStats, frame_stats
from firmware_sim.camera.plates import PlateSpec
from firmware_sim.camera.streams import ScriptedPassage, gate_frames

S = 1_000_000  # microseconds per second


def sighting(x: int, y: int, text: str | None, conf: float, at_s: float) -> PlateSighting:
    return PlateSighting((x, y, 100, 30), text, conf, int(at_s * S), "cn", "cn_standard")


# --- passages -----------------------------------------------------------------------------------


def test_one_passage_per_vehicle_with_the_voted_text() -> None:
    tracker = PassageTracker(frame_size=(1280, 720), gap_us=2 * S, min_reads=2)
    reads = ["京A12345", "京A12845", "京A12345", None, "京A12345"]  # one misread, one unreadable
    ended = []
    for i, text in enumerate(reads):
        at = int(i * 0.1 * S)
        ended += tracker.observe([sighting(600, 600 - 40 * i, text, 0.9, i * 0.1)], at)
    assert ended == []  # still in view
    ended += tracker.observe([], int(1.0 * S))
    assert ended == []  # gap not over yet
    ended += tracker.observe([], int(2.5 * S))
    assert len(ended) == 1
    passage = ended[0]
    assert passage.plate == "京A12345"
    assert passage.reads == 4
    assert passage.confidence == pytest.approx(0.9 * 3 / 4)
    assert passage.first_seen_us == 0 and passage.last_seen_us == int(0.4 * S)
    assert passage.best.text == "京A12345"


def test_two_vehicles_side_by_side_are_two_passages() -> None:
    tracker = PassageTracker(frame_size=(1280, 720), min_reads=2)
    for i in range(4):
        at = i * 0.1
        tracker.observe([sighting(100, 500, "京A11111", 0.9, at),
                         sighting(900, 500, "沪B22222", 0.8, at)], int(at * S))
    passages = tracker.flush()
    assert sorted(p.plate for p in passages) == ["京A11111", "沪B22222"]


def test_the_same_plate_twice_with_a_gap_is_two_passages() -> None:
    tracker = PassageTracker(frame_size=(1280, 720), gap_us=2 * S, min_reads=2)
    ended = []
    for at in (0.0, 0.1, 0.2, 10.0, 10.1, 10.2):
        ended += tracker.observe([sighting(600, 500, "京A11111", 0.9, at)], int(at * S))
    ended += tracker.flush()
    assert [p.plate for p in ended] == ["京A11111", "京A11111"]


def test_a_single_read_is_not_a_passage_when_two_are_required() -> None:
    tracker = PassageTracker(frame_size=(1280, 720), min_reads=2)
    tracker.observe([sighting(600, 500, "京A11111", 0.9, 0)], 0)
    tracker.observe([sighting(600, 500, None, 0.9, 0.1)], int(0.1 * S))
    assert tracker.flush() == []


@pytest.mark.parametrize(("ys", "expected"), [((650, 550, 450, 350), "in"),
                                              ((350, 450, 550, 650), "out"),
                                              ((650, 640, 630, 620), None)])
def test_direction_from_crossing_the_counting_line(
    ys: tuple[int, ...], expected: str | None
) -> None:
    # A horizontal line across the middle; walking it left to right, "inside" (the gate, up in
    # the picture) is on the left.
    line = CountingLine(0.0, 0.7, 1.0, 0.7, inside="left")
    tracker = PassageTracker(frame_size=(1280, 720), min_reads=2, line=line)
    for i, y in enumerate(ys):
        tracker.observe([sighting(600, y, "京A11111", 0.9, i * 0.1)], int(i * 0.1 * S))
    [passage] = tracker.flush()
    assert passage.direction == expected


def test_settled_track_lets_the_caller_skip_ocr() -> None:
    tracker = PassageTracker(frame_size=(1280, 720))
    for i in range(3):
        assert not tracker.settled((600, 500, 100, 30), int(i * 0.1 * S))
        tracker.observe([sighting(600, 500, "京A11111", 0.9, i * 0.1)], int(i * 0.1 * S))
    assert tracker.settled((605, 495, 100, 30), int(0.3 * S))
    assert not tracker.settled((100, 100, 100, 30), int(0.3 * S))  # far away: another vehicle
    assert not tracker.settled((605, 495, 100, 30), int(1.5 * S))  # not seen lately: read again
    assert not tracker.settled((780, 500, 100, 30), int(0.3 * S))  # joins, but too far to trust


def test_a_settled_track_is_read_again_every_few_sightings() -> None:
    tracker = PassageTracker(frame_size=(1280, 720))
    at = 0.0
    for _ in range(3):
        tracker.observe([sighting(600, 500, "京A11111", 0.9, at)], int(at * S))
        at += 0.1
    skipped = 0
    while tracker.settled((600, 500, 100, 30), int(at * S)):
        tracker.observe([sighting(600, 500, None, 0.9, at)], int(at * S))  # OCR skipped
        at += 0.1
        skipped += 1
    assert skipped == 3  # the fourth sighting in a row would go unread: read it


def test_a_different_plate_in_the_same_place_starts_a_new_passage() -> None:
    tracker = PassageTracker(frame_size=(1280, 720), gap_us=2 * S, min_reads=2)
    ended = []
    for i, text in enumerate(["苏E12345", "苏E12345", "苏E12845", None]):
        ended += tracker.observe([sighting(600, 300, text, 0.9, i * 0.1)], int(i * 0.1 * S))
    for i, text in enumerate(["1234BCD", "1234BCD", "1234BCD"]):  # 1.2 s later, same spot
        at = 1.5 + i * 0.1
        ended += tracker.observe([sighting(610, 310, text, 0.9, at)], int(at * S))
    ended += tracker.flush()
    assert sorted(p.plate for p in ended) == ["1234BCD", "苏E12345"]


# --- blindness ----------------------------------------------------------------------------------


def test_blindness_raises_after_the_hold_and_clears_after_seeing_again() -> None:
    judge = CameraBlindness(hold_us=10 * S)
    seeing = FrameStats(brightness=120, detail=80, change=0.5)
    dark = FrameStats(brightness=5, detail=0.1, change=0.1)
    assert judge.feed(seeing, 0) is None
    assert judge.feed(dark, 1 * S) is None
    assert judge.feed(dark, 5 * S) is None
    raised = judge.feed(dark, 11 * S)
    assert raised is not None and raised.action == "raise" and raised.cause == "dark"
    assert raised.since_us == 1 * S
    assert judge.feed(dark, 30 * S) is None  # raised once
    assert judge.feed(seeing, 31 * S) is None
    cleared = judge.feed(seeing, 42 * S)
    assert cleared is not None and cleared.action == "clear"


def test_a_brief_occlusion_is_not_blindness() -> None:
    judge = CameraBlindness(hold_us=10 * S)
    covered = FrameStats(brightness=90, detail=0.5, change=3)
    seeing = FrameStats(brightness=120, detail=80, change=0.5)
    for t in range(0, 8):
        assert judge.feed(covered, t * S) is None
    assert judge.feed(seeing, 8 * S) is None
    assert judge.feed(covered, 9 * S) is None
    assert judge.feed(covered, 15 * S) is None  # the clock restarted at 9 s
    assert not judge.blind


def _stats_of(frames: list[np.ndarray]) -> list[FrameStats]:
    gate = MotionGate()
    out, previous = [], None
    for frame in frames:
        gate.update(frame)
        assert gate.last_grey is not None
        out.append(frame_stats(gate.last_grey, previous))
        previous = gate.last_grey
    return out


def _gate_video(n: int, passages: list[ScriptedPassage] | None = None) -> list[np.ndarray]:
    return [f.image for f in gate_frames(passages or [], total_frames=n, width=640, height=360)]


def test_rendered_camera_covered_dark_and_frozen_are_told_apart_from_a_live_scene() -> None:
    judge = CameraBlindness()
    live = _gate_video(6)
    rng = np.random.default_rng(0)
    covered = [np.clip(rng.normal(90, 2, (360, 640, 3)), 0, 255).astype(np.uint8)
               for _ in range(4)]
    dark = [np.clip(rng.normal(6, 2, (360, 640, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    frozen = [live[0]] * 4
    assert {judge.cause(s) for s in _stats_of(live)[1:]} == {None}
    assert {judge.cause(s) for s in _stats_of(covered)[1:]} == {"covered"}
    assert {judge.cause(s) for s in _stats_of(dark)[1:]} == {"dark"}
    assert {judge.cause(s) for s in _stats_of(frozen)[1:]} == {"frozen"}


# --- motion gating ------------------------------------------------------------------------------


def test_motion_gate_skips_static_frames_and_finds_the_vehicle() -> None:
    plate = PlateSpec("京A12345", "京A·12345", "cn", "cn_blue")
    script = [ScriptedPassage(plate, "in", start_frame=10, frames=10)]
    frames = list(gate_frames(script, total_frames=45, width=640, height=360))
    gate = MotionGate()
    moving = [bool(gate.update(f.image)) for f in frames]
    assert not any(moving[:10])  # noise only: static
    assert all(moving[11:20])  # the vehicle moves
    assert not any(moving[30:])  # gone, and the running average has forgotten it
    # The search region covers the plate.
    gate = MotionGate()
    for f in frames[:14]:
        boxes = gate.update(f.image)
    region = region_to_search(boxes, 640, 360, min_side=320)
    assert region is not None
    px, py, pw, ph = frames[13].plates[0].box
    rx, ry, rw, rh = region
    assert rx <= px and ry <= py and px + pw <= rx + rw and py + ph <= ry + rh


def test_region_to_search_is_at_least_min_side_and_inside_the_frame() -> None:
    assert region_to_search([], 1280, 720, 320) is None
    x, y, w, h = region_to_search([(1270, 710, 5, 5)], 1280, 720, 320)  # type: ignore[misc]
    assert (w, h) == (320, 320) and x + w <= 1280 and y + h <= 720
    # A 16:9 detector input (288x512) asks for a 16:9 region: the plate at half resolution.
    x, y, w, h = region_to_search([(600, 300, 40, 20)], 1280, 720, 1024, 576)  # type: ignore[misc]
    assert (w, h) == (1024, 576) and x <= 600 and x + w >= 640 and y <= 300 and y + h >= 320


# --- authorised vehicles ------------------------------------------------------------------------

LIST = AuthorisedVehicles.model_validate({
    "version": 3,
    "timezone": "Asia/Shanghai",
    "vehicles": [
        {"plate": "沪A·12345", "windows": [{"days": [0, 1, 2, 3, 4], "start": "08:00",
                                            "end": "18:00"}]},
        {"plate": "苏E-D12345", "windows": [{"start": "22:00", "end": "06:00"}]},
    ],
})


@pytest.mark.parametrize(
    ("plate", "utc", "authorised"),
    [
        ("沪A12345", datetime(2026, 11, 25, 2, 0, tzinfo=UTC), True),  # Wed 10:00 Shanghai
        ("沪A12345", datetime(2026, 11, 25, 12, 0, tzinfo=UTC), False),  # Wed 20:00
        ("沪A12345", datetime(2026, 11, 28, 2, 0, tzinfo=UTC), False),  # Saturday
        ("苏ED12345", datetime(2026, 11, 25, 16, 0, tzinfo=UTC), True),  # 00:00, across midnight
        ("苏ED12345", datetime(2026, 11, 25, 4, 0, tzinfo=UTC), False),  # 12:00
        ("京B99999", datetime(2026, 11, 25, 2, 0, tzinfo=UTC), False),  # not on the list
    ],
)
def test_judge_exit(plate: str, utc: datetime, authorised: bool) -> None:
    verdict = judge_exit(plate, utc, LIST)
    assert verdict.authorised is authorised
    assert plate in verdict.reason


def test_authorised_list_rejects_unknown_fields_and_zones() -> None:
    with pytest.raises(ValueError, match="extra"):
        AuthorisedVehicles.model_validate({"version": 1, "vehicles": [], "colour": "red"})
    with pytest.raises(ValueError):
        AuthorisedVehicles.model_validate({"version": 1, "timezone": "Mars/Olympus"})


# --- labels -------------------------------------------------------------------------------------


def test_label_unreadable_raises_once_after_the_limit_and_clears_on_a_read() -> None:
    watch = LabelWatch(["LOT-1", "LOT-2"], unreadable_after_us=60 * S, started_us=0)
    assert watch.report("LOT-1", True, 10 * S) is None
    assert watch.report("LOT-1", False, 20 * S) is None
    raised = watch.report("LOT-1", False, 71 * S)
    assert raised is not None and raised.action == "raise" and raised.last_read_us == 10 * S
    assert watch.report("LOT-1", False, 200 * S) is None
    cleared = watch.report("LOT-1", True, 201 * S)
    assert cleared is not None and cleared.action == "clear"
    # A label never read counts from when watching started.
    late = watch.report("LOT-2", False, 61 * S)
    assert late is not None and late.last_read_us is None
    with pytest.raises(KeyError):
        watch.report("LOT-9", True, 0)


def test_rendered_static_video_is_not_frozen() -> None:
    stats = _stats_of(_gate_video(5))
    assert all(s.change > CameraBlindness().frozen_change_below for s in stats[1:])
