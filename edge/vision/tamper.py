"""Is the camera blind? Covered, sprayed, turned to a wall, dark, or frozen on one picture.

Theory of operation: each frame is reduced to three numbers (``FrameStats``): brightness, detail
(variance of the Laplacian: a covered lens or a wall shows almost none) and change from the
previous frame (a live sensor always has some noise; a frozen stream repeats the same bytes).
``CameraBlindness`` is fed those numbers with the time and answers, once per change of state,
``raise`` (blind for ``hold_us``) or ``clear`` (seeing again for ``hold_us``). Nothing here reads a
clock or a camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Cause = Literal["dark", "covered", "frozen"]


@dataclass(frozen=True, slots=True)
class FrameStats:
    brightness: float  # mean grey level 0..255
    detail: float  # variance of the Laplacian
    change: float  # mean absolute difference from the previous frame, 0..255


def frame_stats(small_grey: np.ndarray, previous: np.ndarray | None) -> FrameStats:
    """Stats of a small grey frame (the motion gate's copy serves; it is already blurred)."""
    change = 255.0 if previous is None or previous.shape != small_grey.shape else float(
        cv2.absdiff(small_grey, previous).mean()
    )
    return FrameStats(
        brightness=float(small_grey.mean()),
        detail=float(cv2.Laplacian(small_grey, cv2.CV_32F).var()),
        change=change,
    )


@dataclass(frozen=True, slots=True)
class BlindnessChange:
    action: Literal["raise", "clear"]
    cause: Cause | None
    since_us: int
    stats: FrameStats


class CameraBlindness:
    def __init__(
        self,
        *,
        dark_below: float = 18.0,
        covered_detail_below: float = 2.0,
        frozen_change_below: float = 0.02,
        hold_us: int = 10_000_000,
    ) -> None:
        self.dark_below = dark_below
        self.covered_detail_below = covered_detail_below
        self.frozen_change_below = frozen_change_below
        self.hold_us = hold_us
        self.blind = False
        self._candidate: Cause | None = None
        self._since_us: int | None = None

    def cause(self, stats: FrameStats) -> Cause | None:
        if stats.brightness < self.dark_below:
            return "dark"
        if stats.detail < self.covered_detail_below:
            return "covered"
        if stats.change < self.frozen_change_below:
            return "frozen"
        return None

    def feed(self, stats: FrameStats, now_us: int) -> BlindnessChange | None:
        cause = self.cause(stats)
        looks_blind = cause is not None
        if looks_blind == self.blind:
            self._since_us = None  # the state holds; any pending flip is forgotten
            return None
        if self._since_us is None:
            self._since_us = now_us
        self._candidate = cause
        if now_us - self._since_us < self.hold_us:
            return None
        self.blind = looks_blind
        since, self._since_us = self._since_us, None
        return BlindnessChange("raise" if looks_blind else "clear", cause, since, stats)
