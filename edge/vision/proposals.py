"""The second plate-proposal stage: a general text detector where the plate detector saw nothing.

The shipped plate detector was trained on renderings and misses most real plates. RapidOCR's
PP-OCR text detector finds text of any kind; run on a region (a frame's motion, or a whole
still image) shrunk to ``max_side`` pixels, its lines are filtered and grouped by
``decisions.plate_candidates`` (plate proportions, stacked rows), each candidate is read by the
recogniser on the full-resolution crop, and only a text that matches a plate format is kept.

Cost, one core: the text detector is most of it and follows the pixels (about 50-60 ms at 640
on a 1280x720 frame, see MODEL_CARD.md), then a recogniser call of 10-25 ms per candidate, at
most ``max_candidates`` of them and none begun after ``budget_ms`` of CPU time. At the gate
``ProposalBudget`` runs it at most once per ``every_us`` of picture time (500 ms by default,
``proposal_every_s`` in a camera's settings), only on frames whose motion gave no detection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from decisions.plate_candidates import candidates, plate_from_texts
from decisions.plate_format import PlateText, RegionChoice
from edge.vision.detector import Box
from edge.vision.ocr import TextReader
from edge.vision.recognizer import _region_hint, read_rows, repairs_a_clear_character

# Text detector input, longest side: 640 keeps a 100-pixel-wide plate of a 1280x720 frame
# 50 pixels wide, still found; the time is what the gate can spare (see the module).
DEFAULT_MAX_SIDE = 640
# Four candidates read as many real plates as six on the validation split, at a lower p95.
DEFAULT_MAX_CANDIDATES = 4
# CPU time a frame may spend, the plate detector's part included; the candidate being read when
# it runs out is finished, no other is begun (the text detector itself always runs: 50-60 ms).
DEFAULT_BUDGET_MS = 115.0


@dataclass(frozen=True, slots=True)
class ProposedPlate:
    plate: PlateText
    confidence: float
    box: Box  # in the given image's pixels
    crop: np.ndarray
    raw: str


class PlateProposer:
    def __init__(self, reader: TextReader, *, region: RegionChoice = "auto",
                 country: str | None = None,
                 max_side: int = DEFAULT_MAX_SIDE,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES,
                 budget_ms: float = DEFAULT_BUDGET_MS) -> None:
        self.reader = reader
        self.budget_ms = budget_ms
        self.region = region
        self.country = country
        self.max_side = max_side
        self.max_candidates = max_candidates
        # The first call of an ONNX session at the largest input size costs several times a
        # later one (its memory grows): paid here, not out of the first frame's budget (which
        # it would use up, reading nothing).
        blank = np.full((max_side, max_side, 3), 255, np.uint8)
        cv2.putText(blank, "B 12 ABC", (40, max_side // 2), cv2.FONT_HERSHEY_SIMPLEX, 2,
                    (0, 0, 0), 4)
        reader.find_lines(blank, max_side=max_side)
        reader.read_line(blank[max_side // 2 - 60 : max_side // 2 + 20])

    def propose(self, image: np.ndarray, region: Box | None = None, *,
                spent_ms: float = 0.0) -> list[ProposedPlate]:
        """Plates in ``region`` of ``image`` (the whole image if None), most confident first.

        ``spent_ms``: what the frame already cost (the plate detector, its failed reads),
        counted against ``budget_ms``: the budget is per frame, not per stage."""
        # CPU time of this thread, not the wall clock: other work on the machine does not
        # shorten the search, and the figure is the one evaluate reports.
        started = time.thread_time()
        if spent_ms >= self.budget_ms:
            # No candidate could be read: the text detector's 50-60 ms would be spent for none.
            return []
        H, W = image.shape[:2]
        rx, ry, rw, rh = region if region is not None else (0, 0, W, H)
        part = image[ry : ry + rh, rx : rx + rw]
        if part.shape[0] < 16 or part.shape[1] < 16:
            return []
        boxes = [(x + rx, y + ry, w, h)  # in the image's pixels from here on
                 for x, y, w, h in self.reader.find_lines(part, max_side=self.max_side)]
        found: list[ProposedPlate] = []
        seen: set[str] = set()
        for cand in candidates(boxes, frame_size=(W, H), limit=self.max_candidates):
            if spent_ms + (time.thread_time() - started) * 1000 > self.budget_ms:
                break
            rows = read_rows(self.reader, image, [boxes[index] for index in cand.lines])
            if rows is None:
                continue
            texts, confidence, chars = rows
            raw = " ".join(texts)
            hint = _region_hint(raw, self.region)
            plate = plate_from_texts(texts, hint, country=self.country)
            if plate is not None and repairs_a_clear_character(raw, chars, plate):
                plate = plate_from_texts(texts, hint, country=self.country, max_repairs=0)
            if plate is None or plate.text in seen:
                continue
            seen.add(plate.text)
            x, y, w, h = cand.box
            crop = image[y : y + h, x : x + w]
            # A proposal is less sure than a detector hit: the same discount for repairs, and
            # a fixed 0.9 for the missing plate evidence.
            score = confidence * (1 - 0.1 * plate.repairs) * 0.9
            found.append(ProposedPlate(plate, round(score, 3), cand.box, crop.copy(), raw))
        found.sort(key=lambda p: p.confidence, reverse=True)
        return found
