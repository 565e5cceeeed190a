"""The second plate-proposal stage on real dash-cam frames (Romanian plates, read by eye:
"B 96 SXV" and "B-191 KRY" in one night frame, "B 58 DTK" in a day frame). The detector
trained on renderings alone read nothing there; the shipped one, fine-tuned on real
photographs, reads them, and the proposal stage must read them without it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from decisions.plate_candidates import ProposalBudget
from edge.vision.capture import decode_image
from edge.vision.detector import PlateDetector
from edge.vision.evaluate import REAL_DATA
from edge.vision.gate import GateWatch
from edge.vision.ocr import TextReader
from edge.vision.proposals import PlateProposer
from edge.vision.recognizer import PlateRecognizer

_FRAMES = {
    "images/robertlucian_ro/train_nightride_type3_001.mp4_t_110.jpg": {"B96SXV", "B191KRY"},
    "images/robertlucian_ro/valid_dayride_type1_003.mp4_t_320.jpg": {"B58DTK"},
}


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader()


def _labelled() -> dict[str, list[list[float]]]:
    labels = REAL_DATA / "labels.jsonl"
    if not labels.exists():  # the photographs live beside the repo, not in it
        pytest.skip(f"{labels} is not on this machine")
    rows = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()]
    return {r["file"]: r["boxes"] for r in rows if r["file"] in _FRAMES}


def test_the_detector_and_the_proposals_each_read_the_real_plates(reader: TextReader) -> None:
    boxes = _labelled()
    recognizer = PlateRecognizer(PlateDetector(), reader, region="eu")
    # What the stage reads, not how fast: the frame budget is CPU time, which a loaded machine
    # stretches (the gate test below holds the budget).
    proposer = PlateProposer(reader, region="eu", budget_ms=1000)
    for name, plates in _FRAMES.items():
        image = decode_image(REAL_DATA / name)
        assert {r.plate.text for r in recognizer.read(image)} == plates  # the detector
        proposed = proposer.propose(image)
        assert {p.plate.text for p in proposed} == plates
        for p in proposed:  # each read sits on a labelled plate
            cx, cy = p.box[0] + p.box[2] / 2, p.box[1] + p.box[3] / 2
            assert any(x <= cx <= x + w and y <= cy <= y + h for x, y, w, h in boxes[name])


def test_the_gate_makes_passages_from_proposals_within_its_budget(reader: TextReader) -> None:
    _labelled()
    name = "images/robertlucian_ro/valid_dayride_type1_003.mp4_t_320.jpg"
    image = decode_image(REAL_DATA / name)
    # A detector that reports nothing (no score reaches 1.01): the proposals alone must do.
    recognizer = PlateRecognizer(PlateDetector(score_threshold=1.01), reader, region="eu")
    watch = GateWatch(recognizer, frame_size=(image.shape[1], image.shape[0]), min_reads=1,
                      proposer=PlateProposer(reader, region="eu", budget_ms=1000),  # as above
                      proposal_budget=ProposalBudget(every_us=200_000))
    empty = np.full_like(image, 90)
    watch.process(empty, 0)
    ran = []
    # The car appears and moves a little each frame, 25 frames a second for 0.4 s.
    for i in range(1, 11):
        frame = np.roll(image, 3 * i, axis=1)
        outcome = watch.process(frame, i * 40_000)
        ran.append(outcome.proposal_ms > 0)
    passages = watch.finish()
    assert [p.plate for p in passages] == ["B58DTK"]
    assert 1 <= sum(ran) <= 3  # at most once per 200 ms of picture time


def test_a_frame_that_has_spent_its_budget_does_not_run_the_text_detector(
        reader: TextReader, monkeypatch: pytest.MonkeyPatch) -> None:
    # With no time left no candidate could be read: the text detector's 50-60 ms bought nothing.
    proposer = PlateProposer(reader, region="eu", budget_ms=115)
    looked: list[int] = []
    find_lines = reader.find_lines

    def counted(image: np.ndarray, *, max_side: int) -> list[tuple[int, int, int, int]]:
        looked.append(max_side)
        return find_lines(image, max_side=max_side)

    monkeypatch.setattr(reader, "find_lines", counted)
    frame = np.full((720, 1280, 3), 200, np.uint8)
    assert proposer.propose(frame, spent_ms=115) == []
    assert looked == []
    proposer.propose(frame, spent_ms=20)
    assert looked == [640]
