"""Pallet labels: barcodes with zxing-cpp (GS1-128, DataMatrix, QR, EAN/UPC), text by OCR.

The printed text is read only when no symbol is: the OCR keeps lines that look like label
content (a run of eight or more digits: an SSCC or GTIN, or a batch/expiry line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import zxingcpp

from edge.vision.gs1 import GS1Error, parse
from edge.vision.ocr import TextReader

Box = tuple[int, int, int, int]

_FORMATS = zxingcpp.barcode_formats_from_str("Code128,DataMatrix,QRCode,EAN13,EAN8,UPCA,UPCE")
_LABEL_TEXT = re.compile(r"\d{8,}|BATCH|LOT|EXP|SSCC|GTIN", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LabelRead:
    symbology: str  # zxing-cpp's format name ("Code128", "DataMatrix", "EAN13"), or "text"
    text: str
    gs1: dict[str, str] | None
    box: Box | None


def _box(position: zxingcpp.Position) -> Box:
    xs = [p.x for p in (position.top_left, position.top_right, position.bottom_left,
                        position.bottom_right)]
    ys = [p.y for p in (position.top_left, position.top_right, position.bottom_left,
                        position.bottom_right)]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def _gs1(text: str) -> dict[str, str] | None:
    if not text.startswith("(") and "\x1d" not in text:
        return None
    try:
        return parse(text).values
    except GS1Error:
        return None


def read_symbols(image: np.ndarray) -> list[LabelRead]:
    if image.size == 0:
        return []
    reads: list[LabelRead] = []
    for found in zxingcpp.read_barcodes(image, formats=_FORMATS):
        if not found.valid or not found.text:
            continue
        name = found.format.name
        reads.append(LabelRead(name, found.text, _gs1(found.text), _box(found.position)))
    return reads


def read_labels(image: np.ndarray, reader: TextReader | None) -> list[LabelRead]:
    """Symbols in the image; if there are none and a reader is given, label-like text lines."""
    reads = read_symbols(image)
    if reads or reader is None:
        return reads
    return [
        LabelRead("text", line.text, None, line.box)
        for line in reader.read_lines(image)
        if _LABEL_TEXT.search(line.text)
    ]
