"""The plate detector: a YOLO network exported to ONNX, run with ONNX Runtime (no torch).

The model takes one letterboxed RGB image (``1x3xHxW``, values 0..1; square or 16:9) and
returns ``1x5xN`` candidates (centre x, centre y, width, height, plate score) in input pixels;
boxes are mapped back to the frame and overlapping ones suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

DEFAULT_MODEL = Path(__file__).parent / "models" / "plate_detector.onnx"

Box = tuple[int, int, int, int]  # x, y, w, h
_MAX_UPSCALE = 2.0


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box
    score: float


class ModelError(RuntimeError):
    """The detector model is missing or not what this code expects."""


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - iw * ih
    return iw * ih / union if union else 0.0


class PlateDetector:
    def __init__(
        self,
        model: Path = DEFAULT_MODEL,
        *,
        score_threshold: float = 0.35,
        weak_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        threads: int = 1,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load plate detector {model}: {err}") from err
        shape = self._session.get_inputs()[0].shape
        if len(shape) != 4 or not all(isinstance(side, int) for side in shape[2:]):
            raise ModelError(f"plate detector {model} has input shape {shape}, expected 1x3xHxW")
        # A wide input (384x672, near 16:9) spends few pixels on letterbox bars for a 16:9 camera.
        self.input_height, self.input_width = int(shape[2]), int(shape[3])
        self.size = max(self.input_height, self.input_width)
        self._input = self._session.get_inputs()[0].name
        self.score_threshold = score_threshold
        # Between this and the score threshold: a box the detector is unsure of, worth reading
        # only where a listed plate format vouches for the text (``PlateRecognizer.read``).
        self.weak_threshold = min(weak_threshold, score_threshold)
        self.iou_threshold = iou_threshold

    def detect(self, image: np.ndarray, *, weak: bool = False,
               fill: float = 1.0) -> list[Detection]:
        """Plates in a BGR image, best first; with ``weak``, also the boxes scored between the
        weak and the score threshold (their ``score`` tells them apart). ``fill``: the part of
        the input the picture is shrunk to, below 1 for a picture whose plate would be larger
        than any the detector learnt (a close-up)."""
        threshold = self.weak_threshold if weak else self.score_threshold
        h, w = image.shape[:2]
        ih, iw = self.input_height, self.input_width
        # A small picture (a plate crop) is blown up at most twice: filling the input, its plate
        # would be larger than any the detector learnt from scenes (real crops with margins:
        # 94 -> 97 of 127 Romanian and 20 -> 24 of 38 Open Images plates read exactly).
        scale = min(ih / h, iw / w, _MAX_UPSCALE) * fill
        nh, nw = min(ih, max(1, round(h * scale))), min(iw, max(1, round(w * scale)))
        canvas = np.full((ih, iw, 3), 114, np.uint8)
        top, left = (ih - nh) // 2, (iw - nw) // 2
        canvas[top : top + nh, left : left + nw] = cv2.resize(
            image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = self._session.run(None, {self._input: blob})[0][0]  # 5 x N
        scores = out[4]
        keep = scores >= threshold
        if not keep.any():
            return []
        cx, cy, bw, bh = (out[i][keep] for i in range(4))
        scores = scores[keep]
        x0 = (cx - bw / 2 - left) / scale
        y0 = (cy - bh / 2 - top) / scale
        boxes = np.stack([x0, y0, bw / scale, bh / scale], axis=1)
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, self.iou_threshold)
        found: list[Detection] = []
        for i in np.array(chosen).reshape(-1):
            x, y, bw_, bh_ = boxes[i]
            x1, y1 = max(0, int(x)), max(0, int(y))
            x2, y2 = min(w, int(x + bw_ + 0.5)), min(h, int(y + bh_ + 0.5))
            if x2 - x1 >= 4 and y2 - y1 >= 2:
                found.append(Detection((x1, y1, x2 - x1, y2 - y1), float(scores[i])))
        found.sort(key=lambda d: d.score, reverse=True)
        return found
