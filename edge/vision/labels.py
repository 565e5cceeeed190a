"""Pallet labels: every symbology a warehouse label carries, read with zxing-cpp; text by OCR.

Symbologies: GS1-128 / Code 128, ITF-14 (ITF), Code 39, EAN/UPC, GS1 DataBar (omni, stacked,
limited, expanded), DataMatrix, QR, PDF417 and Aztec; zxing-cpp's families include their
variants (Micro QR, compact PDF417, ...). Nothing else is looked for: each extra family costs
time and brings misreads of look-alike patterns (Codabar, DX film edge).

How a picture is read (measured on photographed labels, see ``python -m benchmarks camera``):

1. zxing-cpp with its own search: any orientation by 90° steps, downscaled copies, the local
   binarizer. Inverted symbols are not tried here: labels are printed dark on light, and a
   search for light-on-dark doubles the cost of every picture that holds no symbol.
2. Only when that finds nothing: the picture turned by 45°, inverted symbols tried too. Row
   scanners read bars up to about 25° off their axis; a label photographed diagonally is
   brought within reach by the one turn (the 90° search covers the other diagonal). The
   global-histogram and fixed-threshold binarizers were measured too and found nothing more.

The printed text is read only when no symbol is, by the caller's choice (it costs the text
detector, hundreds of milliseconds): the OCR keeps lines that look like label content (a run
of eight or more digits: an SSCC or GTIN, or a batch/expiry line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

from edge.vision.gs1 import GS1Error, check_digit_ok, parse
from edge.vision.ocr import TextReader

Box = tuple[int, int, int, int]

LABEL_FORMATS = zxingcpp.barcode_formats_from_str(
    "Code128,ITF,Code39,EAN13,EAN8,UPCA,UPCE,DataBar,DataBarExp,DataBarLtd,"
    "DataMatrix,QRCode,PDF417,Aztec"
)
_LABEL_TEXT = re.compile(r"\d{8,}|BATCH|LOT|EXP|SSCC|GTIN", re.IGNORECASE)
MAX_TEXT = 2048  # the largest label symbol we expect (a PDF417 shipping block) holds less


@dataclass(frozen=True, slots=True)
class LabelRead:
    symbology: str  # zxing-cpp's format name ("Code128", "ITF", "DataBarExp"), or "text"
    text: str
    gs1: dict[str, str] | None
    box: Box | None


def _box(position: zxingcpp.Position, turn: np.ndarray | None) -> Box:
    points = np.array([(p.x, p.y) for p in (position.top_left, position.top_right,
                                            position.bottom_left, position.bottom_right)],
                      np.float32)
    if turn is not None:  # found in the turned picture: back to the picture's pixels
        points = cv2.transform(points[None], turn)[0]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def _gs1(found: zxingcpp.Barcode) -> dict[str, str] | None:
    text = found.text
    if found.format == zxingcpp.BarcodeFormat.ITF and len(text) == 14 and text.isdigit():
        # ITF-14 is the GTIN of a case or pallet by definition; its own check digit decides.
        return {"01": text} if check_digit_ok(text) else None
    if found.content_type != zxingcpp.ContentType.GS1 and not text.startswith("("):
        return None
    try:
        return parse(text).values
    except GS1Error:
        return None


def _turned(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The picture turned by 45° about its centre, same size; and the way back to it."""
    h, w = grey.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 45, 1.0)
    turned = cv2.warpAffine(grey, turn, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(turn)


def read_symbols(image: np.ndarray) -> list[LabelRead]:
    if image.size == 0 or image.ndim not in (2, 3):
        return []
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    grey = np.ascontiguousarray(grey)
    back: np.ndarray | None = None
    found = zxingcpp.read_barcodes(grey, formats=LABEL_FORMATS, try_rotate=True,
                                   try_downscale=True, try_invert=False)
    if not found:
        turned, back = _turned(grey)
        found = zxingcpp.read_barcodes(turned, formats=LABEL_FORMATS, try_rotate=True,
                                       try_downscale=True, try_invert=True)
    reads: list[LabelRead] = []
    seen: set[tuple[str, str]] = set()
    for symbol in found:
        if not symbol.valid or not symbol.text or len(symbol.text) > MAX_TEXT:
            continue
        key = (symbol.format.name, symbol.text)
        if key in seen:
            continue
        seen.add(key)
        reads.append(LabelRead(symbol.format.name, symbol.text, _gs1(symbol),
                               _box(symbol.position, back)))
    return reads


def label_lines(image: np.ndarray, reader: TextReader, *,
                max_side: int | None = None) -> list[LabelRead]:
    """Printed lines that look like label content (the slow path: the text detector runs)."""
    return [
        LabelRead("text", line.text[:MAX_TEXT], None, line.box)
        for line in reader.read_lines(image, max_side=max_side)
        if _LABEL_TEXT.search(line.text)
    ]


def read_labels(image: np.ndarray, reader: TextReader | None) -> list[LabelRead]:
    """Symbols in the image; if there are none and a reader is given, label-like text lines."""
    reads = read_symbols(image)
    if reads or reader is None:
        return reads
    return label_lines(image, reader)
