"""A stack camera, frame by frame: which pallet labels can be read, and which cannot for too long.

``StackWatch.process(image, at_us)`` looks at each configured label spot when something moved
there or when its scheduled look is due (a still stack costs a motion check per frame). A spot
is read with zxing-cpp; a changed reading is reported once; the result feeds ``LabelWatch``
(the ``damage.label_unreadable`` decision) and the blindness check runs on every frame.

The printed text of a label whose symbol does not scan is read by OCR, once per unreadable
stretch of a lot and within the camera's ``OcrBudget`` (at most one call every
``ocr_every_us``, on a shrunk crop), in a background thread (``LabelTextWorker``): a torn label
still says what it was, and the frame loop never waits for the text detector. The lines come
back as a reading at a later frame, dated by the frame the crop came from. A lot refused by
the budget, or whose crop the worker dropped, is tried again at a later look; a lot whose
symbol scanned meanwhile keeps the symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.vision.label_text import LabelTextWorker
from edge.vision.label_watch import LabelVerdict, LabelWatch
from edge.vision.labels import LabelRead, label_lines, read_symbols
from edge.vision.motion import MotionGate
from edge.vision.ocr import OcrBudget, TextReader
from edge.vision.tamper import BlindnessChange, CameraBlindness, frame_stats

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class LabelSpot:
    lot: str
    box: Box  # where the lot's label is in the picture


@dataclass(frozen=True, slots=True)
class SpotReading:
    lot: str
    label: LabelRead
    crop: np.ndarray
    at_us: int | None = None  # when the crop was seen, if not at the frame that reports it


@dataclass
class StackOutcome:
    looked: list[str] = field(default_factory=list)  # lots whose spot was read this frame
    readings: list[SpotReading] = field(default_factory=list)  # new or changed readings
    verdicts: list[LabelVerdict] = field(default_factory=list)
    blindness: BlindnessChange | None = None


def out_of_view(spots: list[LabelSpot], frame_size: tuple[int, int]) -> list[LabelSpot]:
    """The spots with less than half their box inside a picture of ``frame_size`` (w, h): set
    for another camera or resolution. Watched, such a spot's label could never be read, and
    after ``unreadable_after_us`` it would raise a damage alert for a label nobody can see."""
    width, height = frame_size
    out = []
    for spot in spots:
        x, y, w, h = spot.box
        inside = max(0, min(x + w, width) - max(x, 0)) * max(0, min(y + h, height) - max(y, 0))
        if 2 * inside < w * h:
            out.append(spot)
    return out


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


class StackWatch:
    def __init__(
        self,
        spots: list[LabelSpot],
        *,
        reader: TextReader | None,
        started_us: int,
        look_every_us: int = 30_000_000,
        unreadable_after_us: int = 600_000_000,
        blind_hold_us: int = 10_000_000,
        ocr_every_us: int = 60_000_000,
    ) -> None:
        self.spots = spots
        self.reader = reader
        self.ocr_budget = OcrBudget(every_us=ocr_every_us)
        max_side = self.ocr_budget.max_side
        self.text_worker = None if reader is None else LabelTextWorker(
            lambda crop: label_lines(crop, reader, max_side=max_side))
        self.look_every_us = look_every_us
        self.motion = MotionGate()
        self.blindness = CameraBlindness(hold_us=blind_hold_us)
        self.labels = LabelWatch([s.lot for s in spots], unreadable_after_us=unreadable_after_us,
                                 started_us=started_us)
        self._next_look: dict[str, int] = {s.lot: started_us for s in spots}
        self._last_text: dict[str, str] = {}
        # OCR of a label costs up to a second: once per unreadable stretch of a lot is enough.
        self._ocr_tried: set[str] = set()
        self._symbol_at: dict[str, int] = {}  # when each lot's symbol last scanned
        self._previous_grey: np.ndarray | None = None

    def process(self, image: np.ndarray, at_us: int) -> StackOutcome:
        outcome = StackOutcome()
        self._collect_text(outcome)
        moved = self.motion.update(image)
        grey = self.motion.last_grey
        assert grey is not None
        outcome.blindness = self.blindness.feed(frame_stats(grey, self._previous_grey), at_us)
        self._previous_grey = grey
        if self.blindness.blind:
            return outcome  # a blind camera reads nothing; the tamper alert says why
        for spot in self.spots:
            due = at_us >= self._next_look[spot.lot]
            if not due and not any(_overlaps(spot.box, m) for m in moved):
                continue
            self._next_look[spot.lot] = at_us + self.look_every_us
            outcome.looked.append(spot.lot)
            x, y, w, h = spot.box
            crop = image[max(0, y) : y + h, max(0, x) : x + w]
            reads = read_symbols(crop)
            symbol = reads[0] if reads else None
            if symbol is not None:
                self._ocr_tried.discard(spot.lot)
                self._symbol_at[spot.lot] = at_us
                self._report(outcome, SpotReading(spot.lot, symbol, crop.copy()))
            elif (self.text_worker is not None and spot.lot not in self._ocr_tried
                  and self.ocr_budget.take(at_us)):
                self._ocr_tried.add(spot.lot)
                for dropped in self.text_worker.submit(spot.lot, crop, at_us):
                    self._ocr_tried.discard(dropped.lot)  # never read: ask again later
            # Scanners need the symbol: printed text alone keeps the label "unreadable".
            verdict = self.labels.report(spot.lot, symbol is not None, at_us)
            if verdict is not None:
                outcome.verdicts.append(verdict)
        return outcome

    def _report(self, outcome: StackOutcome, reading: SpotReading) -> None:
        if self._last_text.get(reading.lot) != reading.label.text:
            self._last_text[reading.lot] = reading.label.text
            outcome.readings.append(reading)

    def _collect_text(self, outcome: StackOutcome) -> None:
        """Text read in the background since the last frame, as readings of its own time."""
        if self.text_worker is None:
            return
        for dropped in self.text_worker.dropped():
            self._ocr_tried.discard(dropped.lot)
        for done in self.text_worker.results():
            if self._symbol_at.get(done.lot, -1) >= done.at_us:
                continue  # the symbol scanned since: it says more than the printed text
            if done.reads:
                self._report(outcome, SpotReading(done.lot, done.reads[0], done.crop,
                                                  done.at_us))

    def flush(self, timeout_s: float) -> StackOutcome:
        """The picture ended: text still being read, waited for up to ``timeout_s``."""
        outcome = StackOutcome()
        if self.text_worker is not None:
            self.text_worker.idle(timeout_s)
            self._collect_text(outcome)
        return outcome

    def close(self) -> None:
        """Stop the background text reading (the camera is done)."""
        if self.text_worker is not None:
            self.text_worker.close()
