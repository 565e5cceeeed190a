"""Text reading with RapidOCR (PP-OCR models shipped in the rapidocr-onnxruntime wheel).

Two uses: a plate crop is one line of text, so only the recogniser runs on it (tens of
milliseconds); a label or a whole frame needs the text detector first (hundreds). The second
runs off a camera's frame loop (``edge.vision.label_text``), bounded by ``OcrBudget``: when it
may run at all, and on how many pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from decisions.pacing import Pacing

log = logging.getLogger(__name__)


# The recogniser's input is 48 pixels high and padded to at least this width. RapidOCR pads to
# 320 (its default for long lines); a plate is 2-5 times as wide as high (96-240 pixels at 48
# high), so most of that input was padding that the model still paid for. At 160 a plate read
# costs 15-24 ms instead of 27 and reads no fewer plates (python -m edge.vision.evaluate --real:
# Romanian 110/127 either way, Open Images 14 -> 15 of 38; renderings 0.846 -> 0.863). Longer
# lines (labels) get their own width, as before.
_REC_MIN_WIDTH = 160
# The recogniser emits one character step per 8 input columns and needs a blank step between
# two equal characters. A crop narrower than 3:1 (a US plate's number, a plate in a squashed
# photograph) gives a 6-8 character number fewer than 3 steps each, and repeated or narrow
# characters merge: "BBX 3499" read "BX3499", "66 111 72" read "66172". Such a crop is widened
# to 3:1 first; wider crops (EU plates) are read as they are, since widening them costs reads.
_REC_MIN_ASPECT = 3.0
# RapidOCR shrinks a picture whose longer side passes its max_side_len (2000) and then rounds
# both sides to the nearest multiple of 32: a shorter side that ends at 16 pixels or fewer
# becomes 0 and its resize fails (a 2400x14 text line of a 4K frame). So thin a strip holds no
# line the recogniser can read: it is given no text instead of an exception. (The text detector
# gets no such strip: see _MAX_DETECT_ASPECT.)
_ENGINE_MAX_SIDE = 2000
_MIN_SHORT_SIDE = 17
# RapidOCR's text detector scales a picture's shorter side up to 736 pixels, and the longer side
# follows: a 1598x9 strip became about 130,000x736 pixels and took over 7 GB. RapidOCR pads a
# wide picture to 4:1 itself, a tall one not; any picture longer than 4:1 is padded here first,
# with its median colour (no text), so the detector sees at most 736x2944 pixels.
_MAX_DETECT_ASPECT = 4


def _padded_to_aspect(image: np.ndarray) -> np.ndarray:
    """The picture padded on its right or bottom to at most ``_MAX_DETECT_ASPECT``:1."""
    h, w = image.shape[:2]
    pad_w = max(0, -(-h // _MAX_DETECT_ASPECT) - w)
    pad_h = max(0, -(-w // _MAX_DETECT_ASPECT) - h)
    if not (pad_w or pad_h):
        return image
    fill = np.median(image.reshape(h * w, -1), axis=0)
    return cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                              value=[float(v) for v in fill])


def _shrinks_to_nothing(shape: tuple[int, ...]) -> bool:
    """Whether RapidOCR, shrinking a picture to its longest side, leaves a shorter side under
    ``_MIN_SHORT_SIDE`` pixels."""
    h, w = shape[:2]
    return (max(h, w) > _ENGINE_MAX_SIDE
            and min(h, w) * _ENGINE_MAX_SIDE / max(h, w) < _MIN_SHORT_SIDE)


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float
    box: tuple[int, int, int, int] | None  # x, y, w, h; None for a single-line crop
    # Per character of ``text``, where known (a single line read alone): the recogniser's
    # probability of each character it emitted.
    char_confidences: tuple[float, ...] = ()


class TextReader:
    def __init__(self, *, threads: int = 1) -> None:
        from rapidocr_onnxruntime import RapidOCR

        # rapidocr logs a warning per call at WARNING level; its results are what we report.
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        self._engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1,
                                rec_img_shape=[3, 48, _REC_MIN_WIDTH])

    def read_line(self, crop: np.ndarray) -> TextLine | None:
        """The text of a crop that holds a single line (a plate)."""
        if crop.size == 0:
            return None
        h, w = crop.shape[:2]
        if w < h * _REC_MIN_ASPECT:
            crop = cv2.resize(crop, (round(h * _REC_MIN_ASPECT), h), interpolation=cv2.INTER_LINEAR)
        if _shrinks_to_nothing(crop.shape):
            return None
        # RapidOCR's own call with the recogniser alone, unrolled to keep each character's
        # probability (its call drops them): the same resizing first (short side >= 30 px).
        image, _, _ = self._engine.preprocess(crop)
        results, _ = self._engine.text_rec(image, True)
        text, score, steps = results[0]
        if not text:
            return None
        confidences = tuple(float(c) for c in steps[4]) if len(steps[4]) == len(text) else ()
        return TextLine(text, float(score), None, confidences)

    def read_lines(self, image: np.ndarray, *, max_side: int | None = None) -> list[TextLine]:
        """All text lines in an image (detector, then recogniser), top to bottom.

        ``max_side`` shrinks a larger image first: the detector's cost follows the pixels, so
        this bounds the time of one call (boxes are given in the original's pixels). A picture
        longer than 4:1 is padded first (``_MAX_DETECT_ASPECT``)."""
        if image.size == 0:
            return []
        height, width = image.shape[:2]
        image = _padded_to_aspect(image)
        scale = 1.0
        if max_side is not None and max(image.shape[:2]) > max_side:
            scale = max_side / max(image.shape[:2])
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        result, _ = self._engine(image, use_cls=False)
        lines: list[TextLine] = []
        for quad, text, score in result or []:
            pts = np.asarray(quad, dtype=np.float32) / scale
            x0, y0 = pts.min(axis=0)
            x1, y1 = np.minimum(pts.max(axis=0), (width, height))  # not into the padding
            if x1 <= x0 or y1 <= y0:
                continue
            box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
            lines.append(TextLine(str(text), float(score), box))
        lines.sort(key=lambda line: (line.box[1], line.box[0]) if line.box else (0, 0))
        return lines


    def find_lines(self, image: np.ndarray, *, max_side: int) -> list[tuple[int, int, int, int]]:
        """Where text lines are (the detector alone, nothing read), as x, y, w, h boxes in the
        image's pixels, top to bottom.

        The image is shrunk to ``max_side`` and given to the detector at that size: RapidOCR's
        own call would scale its shorter side up to 736 first, which costs 3-4 times as much."""
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

        if image.size == 0:
            return []
        scale = min(1.0, max_side / max(image.shape[:2]))
        if min(image.shape[:2]) * scale < 1:  # a strip that shrinks to nothing holds no line
            return []
        small = image if scale == 1.0 else cv2.resize(
            image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        det = self._engine.text_det
        tensor = DetPreProcess(max_side, "max", det.mean, det.std)(small)
        if tensor is None:
            return []
        boxes, _ = det.postprocess_op(det.infer(tensor)[0], small.shape[:2])
        boxes = det.filter_tag_det_res(boxes, small.shape[:2])
        found: list[tuple[int, int, int, int]] = []
        for quad in boxes if boxes is not None else []:
            pts = np.asarray(quad, dtype=np.float32) / scale
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            found.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
        found.sort(key=lambda b: (b[1], b[0]))
        return found


class OcrBudget(Pacing):
    """When a camera may spend the text detector on a label nobody can scan, and on how much.

    The detector costs 0.3-1 s a call on one core: run on every frame whose label did not
    scan, it would take the core from the camera's loop even in a background thread (and
    would stop the loop if run in it). So it runs at most once every
    ``every_us`` of picture time per camera (the caller also asks only once per unreadable
    stretch of a lot), on at most ``max_side`` pixels a side. Pure: the caller gives the time.
    """

    def __init__(self, *, every_us: int, max_side: int = 640) -> None:
        super().__init__(every_us=every_us)
        self.max_side = max_side
