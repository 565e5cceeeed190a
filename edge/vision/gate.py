"""A gate camera, frame by frame: motion gate, blindness check, plate reads, passages.

``GateWatch.process(image, at_us)`` is the whole per-frame decision for one camera; it never
reads a camera or a clock, so tests and the benchmark drive it with rendered frames and the
pipeline drives it with captured ones. Per frame:

1. the motion gate compares a 160-pixel grey copy with the recent past; a static frame stops
   here (about a millisecond);
2. the same copy feeds the blindness check (dark, covered, frozen);
3. around the motion, the plate detector runs; each plate is read by OCR unless its track has
   already settled on a text (three agreeing reads), which keeps OCR off most frames (the
   still pictures' second look around the box, ``PlateRecognizer.read_detection``, is not used
   here: on the rendered gate of the release story it read AB12345 as B12345 in one frame of
   three, with 0.002 more confidence, and the story raised a theft alert);
3a. where the detector found nothing in the motion, the second proposal stage (a text detector,
   ``edge.vision.proposals``) may look instead, at most once per ``ProposalBudget`` period;
4. sightings go to the passage tracker, which answers with the passages that ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from decisions.plate_candidates import ProposalBudget, plate_cut_by_frame_side
from edge.vision.motion import MotionGate, region_to_search
from edge.vision.passages import CountingLine, Passage, PassageTracker, PlateSighting
from edge.vision.proposals import PlateProposer
from edge.vision.recognizer import PlateRecognizer
from edge.vision.tamper import BlindnessChange, CameraBlindness, frame_stats

FRAME_EVIDENCE_WIDTH = 640


@dataclass(frozen=True, slots=True)
class SightingEvidence:
    crop: np.ndarray  # BGR plate crop
    frame: np.ndarray  # BGR frame, downscaled to FRAME_EVIDENCE_WIDTH


@dataclass
class GateOutcome:
    moved: bool = False
    plates_read: int = 0
    detect_ms: float = 0.0
    proposal_ms: float = 0.0  # the second proposal stage, when it ran on this frame
    ocr_ms: list[float] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    blindness: BlindnessChange | None = None


class GateWatch:
    def __init__(
        self,
        recognizer: PlateRecognizer,
        *,
        frame_size: tuple[int, int],
        line: CountingLine | None = None,
        gap_us: int = 2_000_000,
        min_reads: int = 2,
        blind_hold_us: int = 10_000_000,
        motion: MotionGate | None = None,
        proposer: PlateProposer | None = None,
        proposal_budget: ProposalBudget | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.proposer = proposer
        self.proposal_budget = proposal_budget or ProposalBudget()
        self.motion = motion or MotionGate()
        self.blindness = CameraBlindness(hold_us=blind_hold_us)
        self.tracker = PassageTracker(frame_size=frame_size, gap_us=gap_us, min_reads=min_reads,
                                      line=line)
        self._previous_grey: np.ndarray | None = None

    def process(self, image: np.ndarray, at_us: int) -> GateOutcome:
        outcome = GateOutcome()
        boxes = self.motion.update(image)
        grey = self.motion.last_grey
        assert grey is not None
        outcome.blindness = self.blindness.feed(frame_stats(grey, self._previous_grey), at_us)
        self._previous_grey = grey
        sightings: list[PlateSighting] = []
        if boxes and not self.blindness.blind:
            outcome.moved = True
            sightings = self._read_plates(image, boxes, at_us, outcome)
        outcome.passages = self.tracker.observe(sightings, at_us)
        return outcome

    def finish(self) -> list[Passage]:
        """Close every open track (end of a video, shutdown)."""
        return self.tracker.flush()

    def _read_plates(
        self, image: np.ndarray, boxes: list[tuple[int, int, int, int]], at_us: int,
        outcome: GateOutcome,
    ) -> list[PlateSighting]:
        h, w = image.shape[:2]
        detector = self.recognizer.detector
        # Twice the detector's input each way: the moving part at half resolution or better.
        region = region_to_search(boxes, w, h, min_side=detector.input_width * 2,
                                  min_height=detector.input_height * 2)
        assert region is not None
        rx, ry, rw, rh = region
        sightings: list[PlateSighting] = []
        started = time.perf_counter()  # cost accounting only; no decision uses it
        cpu_started = time.thread_time()  # the proposal stage's budget counts CPU, not wall
        detections = self.recognizer.detector.detect(image[ry : ry + rh, rx : rx + rw])
        outcome.detect_ms = (time.perf_counter() - started) * 1000
        if not detections and self.proposer is not None and self.proposal_budget.take(at_us):
            spent_ms = (time.thread_time() - cpu_started) * 1000
            return self._proposed(image, region, at_us, outcome, spent_ms)
        for det in detections:
            bx, by, bw, bh = det.box
            box = (bx + rx, by + ry, bw, bh)
            if self.tracker.settled(box, at_us) or plate_cut_by_frame_side(box, w):
                # A plate half out of the picture is seen, not read: the vehicle brings it in.
                sightings.append(PlateSighting(box, None, det.score, at_us))
                continue
            started = time.perf_counter()
            read = self.recognizer.read_box(image, box, det.score)
            outcome.ocr_ms.append((time.perf_counter() - started) * 1000)
            if read is None:
                sightings.append(PlateSighting(box, None, det.score, at_us))
                continue
            outcome.plates_read += 1
            sightings.append(PlateSighting(
                box, read.plate.text, read.confidence, at_us, read.plate.region,
                read.plate.format, SightingEvidence(read.crop.copy(), _small(image)),
            ))
        return sightings

    def _proposed(
        self, image: np.ndarray, region: tuple[int, int, int, int], at_us: int,
        outcome: GateOutcome, spent_ms: float,
    ) -> list[PlateSighting]:
        assert self.proposer is not None
        started = time.perf_counter()  # cost accounting only
        proposed = self.proposer.propose(image, region, spent_ms=spent_ms)
        outcome.proposal_ms = (time.perf_counter() - started) * 1000
        outcome.plates_read += len(proposed)
        return [PlateSighting(p.box, p.plate.text, p.confidence, at_us, p.plate.region,
                              p.plate.format, SightingEvidence(p.crop, _small(image)))
                for p in proposed]


def _small(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = FRAME_EVIDENCE_WIDTH / w
    return cv2.resize(image, (FRAME_EVIDENCE_WIDTH, round(h * scale)),
                      interpolation=cv2.INTER_AREA)
