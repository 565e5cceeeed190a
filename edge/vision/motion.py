"""Motion gating, as Frigate does it: where did the picture change, on a small grey copy?

Each frame is shrunk to ``width`` pixels, turned grey and blurred; it is compared with a running
average of the previous frames, and the changed pixels are grouped into boxes (in full-frame
coordinates). No boxes means a static scene: the detectors do not run. Slow changes (daylight,
clouds) are absorbed by the running average; sensor noise by the blur and the threshold.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h

_DILATE = np.ones((3, 3), np.uint8)


class MotionGate:
    def __init__(
        self,
        *,
        width: int = 160,
        threshold: int = 20,
        min_area_fraction: float = 0.002,
        learning_rate: float = 0.2,
    ) -> None:
        self.width = width
        self.threshold = threshold
        self.min_area_fraction = min_area_fraction
        self.learning_rate = learning_rate
        self._average: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self.last_grey: np.ndarray | None = None  # the small grey copy of the last frame

    def small_grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        height = max(1, round(h * self.width / w))
        small = cv2.resize(frame, (self.width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def update(self, frame: np.ndarray) -> list[Box]:
        """Boxes (full-frame pixels) where this frame differs from the recent past."""
        grey = self.small_grey(frame)
        self.last_grey = grey
        h, w = frame.shape[:2]
        if self._average is None or self._shape != (h, w):
            # First frame, or the camera changed resolution: nothing to compare with yet.
            self._average = grey.astype(np.float32)
            self._shape = (h, w)
            return []
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._average))
        cv2.accumulateWeighted(grey, self._average, self.learning_rate)
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask, _DILATE, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        scale = w / self.width
        min_area = self.min_area_fraction * grey.shape[0] * grey.shape[1]
        boxes: list[Box] = []
        for contour in contours:
            if cv2.contourArea(contour) < min_area:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            boxes.append((int(x * scale), int(y * scale), int(bw * scale), int(bh * scale)))
        return boxes


def region_to_search(boxes: list[Box], frame_w: int, frame_h: int, min_side: int,
                     min_height: int | None = None) -> Box | None:
    """One region around all motion, at least ``min_side`` wide and ``min_height`` (default
    ``min_side``) high, inside the frame.

    The detector then sees the moving part at a higher resolution than the whole frame would
    give it, and a static frame costs nothing.
    """
    if not boxes:
        return None
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    pad_x, pad_y = (x1 - x0) // 10, (y1 - y0) // 10
    x0, y0, x1, y1 = x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y
    side_w = max(x1 - x0, min(min_side, frame_w))
    side_h = max(y1 - y0, min(min_side if min_height is None else min_height, frame_h))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    x0 = min(max(0, cx - side_w // 2), frame_w - side_w)
    y0 = min(max(0, cy - side_h // 2), frame_h - side_h)
    return (max(0, x0), max(0, y0), min(side_w, frame_w), min(side_h, frame_h))
