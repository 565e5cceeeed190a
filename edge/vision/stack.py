"""A stack camera, frame by frame: which pallet labels can be read, and which cannot for too long.

``StackWatch.process(image, at_us)`` looks at each configured label spot when something moved
there or when its scheduled look is due (a still stack costs a motion check per frame). A spot
is read with zxing-cpp; a changed reading is reported once; the result feeds ``LabelWatch``
(the ``damage.label_unreadable`` decision) and the blindness check runs on every frame.

The printed text of a label whose symbol does not scan is read by OCR, once per unreadable
stretch of a lot and within the camera's ``OcrBudget`` (at most one call every
``ocr_every_us``, on a shrunk crop): a torn label still says what it was, and the frame loop
keeps its pace. A lot refused by the budget is tried again at a later look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


@dataclass
class StackOutcome:
    looked: list[str] = field(default_factory=list)  # lots whose spot was read this frame
    readings: list[SpotReading] = field(default_factory=list)  # new or changed readings
    verdicts: list[LabelVerdict] = field(default_factory=list)
    blindness: BlindnessChange | None = None


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
        self.look_every_us = look_every_us
        self.motion = MotionGate()
        self.blindness = CameraBlindness(hold_us=blind_hold_us)
        self.labels = LabelWatch([s.lot for s in spots], unreadable_after_us=unreadable_after_us,
                                 started_us=started_us)
        self._next_look: dict[str, int] = {s.lot: started_us for s in spots}
        self._last_text: dict[str, str] = {}
        # OCR of a label costs up to a second: once per unreadable stretch of a lot is enough.
        self._ocr_tried: set[str] = set()
        self._previous_grey: np.ndarray | None = None

    def process(self, image: np.ndarray, at_us: int) -> StackOutcome:
        outcome = StackOutcome()
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
            elif (self.reader is not None and spot.lot not in self._ocr_tried
                  and self.ocr_budget.take(at_us)):
                self._ocr_tried.add(spot.lot)
                reads = label_lines(crop, self.reader, max_side=self.ocr_budget.max_side)
            shown = symbol or (reads[0] if reads else None)
            if shown is not None and self._last_text.get(spot.lot) != shown.text:
                self._last_text[spot.lot] = shown.text
                outcome.readings.append(SpotReading(spot.lot, shown, crop.copy()))
            # Scanners need the symbol: printed text alone keeps the label "unreadable".
            verdict = self.labels.report(spot.lot, symbol is not None, at_us)
            if verdict is not None:
                outcome.verdicts.append(verdict)
        return outcome
