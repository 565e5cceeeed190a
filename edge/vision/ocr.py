"""Text reading with RapidOCR (PP-OCR models shipped in the rapidocr-onnxruntime wheel).

Two uses: a plate crop is one line of text, so only the recogniser runs on it (tens of
milliseconds); a label or a whole frame needs the text detector first (hundreds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float
    box: tuple[int, int, int, int] | None  # x, y, w, h; None for a single-line crop


class TextReader:
    def __init__(self, *, threads: int = 1) -> None:
        from rapidocr_onnxruntime import RapidOCR

        # rapidocr logs a warning per call at WARNING level; its results are what we report.
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        self._engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def read_line(self, crop: np.ndarray) -> TextLine | None:
        """The text of a crop that holds a single line (a plate)."""
        if crop.size == 0:
            return None
        result, _ = self._engine(crop, use_det=False, use_cls=False, use_rec=True)
        if not result:
            return None
        text, score = result[0][0], float(result[0][1])
        return TextLine(text, score, None) if text else None

    def read_lines(self, image: np.ndarray) -> list[TextLine]:
        """All text lines in an image (detector, then recogniser), top to bottom."""
        if image.size == 0:
            return []
        result, _ = self._engine(image, use_cls=False)
        lines: list[TextLine] = []
        for quad, text, score in result or []:
            pts = np.asarray(quad, dtype=np.float32)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
            lines.append(TextLine(str(text), float(score), box))
        lines.sort(key=lambda line: (line.box[1], line.box[0]) if line.box else (0, 0))
        return lines
