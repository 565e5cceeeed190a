"""Pallet labels: every symbology a warehouse label carries, read with zxing-cpp; text by OCR.

Symbologies: GS1-128 / Code 128, ITF-14 (ITF), Code 39, EAN/UPC, GS1 DataBar (omni, stacked,
limited, expanded), DataMatrix, QR, PDF417 and Aztec; zxing-cpp's families include their
variants (Micro QR, compact PDF417, ...). Nothing else is looked for: each extra family costs
time and brings misreads of look-alike patterns (Codabar, DX film edge).

How a picture is read (measured on photographed labels, see ``python -m benchmarks camera``;
CPU ms on one core, 960x720, 280 photos, seeds 0 and 1):

1. zxing-cpp on the whole picture with downscaled copies and the local binarizer, no 90° search
   and no light-on-dark search: about 5 ms a picture. Its 90° search (try_rotate) doubled this
   pass (p50 5 -> 12 ms) and read nothing the second pass does not; try_invert added 40 %.
2. Only when that finds nothing: where symbols may be (two patches of dense edges, found on a
   quarter-size copy: of the eight largest, the two that best fill their rotated rectangle,
   ``_compact_area``), each cut out with its long side level (a bar code is longer
   than high, so its bars stand upright and zxing-cpp's row scan reads them without its 90°
   search; a squarish patch gets that search), enlarged twice, read; then the same patch
   sharpened (unsharp mask, enlarged 1.5 times), read again; then, if the patch's outline is a
   quadrilateral, its perspective undone (bars that narrow toward the label's far end made even).
   Then zxing-cpp's own 90° search, as the plain pass on the picture turned a quarter (a bar code
   standing on end whose patch is not among the largest of a busy picture), and DataMatrix with
   try_rotate (zxing-cpp's DataMatrix detector found 1 of 20 symbols in busy pictures without
   it, 9 with it); each costs what the plain pass did, so is begun only where it would end within
   the budget. A light-on-dark symbol last, on the first patch. zxing-cpp's row scanners miss
   bar codes turned far from its 90° steps (tests/test_labels.py: 40°, -50°, 135°), bars thinner
   than about two pixels and bars blurred into each other: a label photographed diagonally, from
   afar, out of focus or at a slant is brought within reach, at the cost of a small crop, not
   of the whole picture. The pass stops when the call has spent ``SECOND_PASS_BUDGET_MS`` of
   CPU time: the pictures that read nothing are the slow ones, and the camera looks again at a
   later frame.
   On the benchmark's busy pictures (each photo shrunk into a rendered gate scene, turned a
   quarter half the time) the two whole-picture steps read 0.42 instead of 0.36 (zxing-cpp's
   defaults 0.26), at a lower p95 (33 instead of 38 ms: a read ends the call); the plain photos
   0.875 instead of 0.879. Before the crops, they read 0.42 too but took the crops' budget: the
   plain photos 0.868, and 1280x960 and 1920x1440 label photos 58 and 23 of 84 and 42 instead of
   67 and 35 (now 66 and 34). Crops stay under 1000 pixels a side (1400 before): the largest
   cost 17 ms and overran the budget (p95 46 -> 39 ms on labels pasted into real street
   photographs, none fewer read).
   The patches were the two largest until 2026-11-29: in a busy picture those are sprawling
   ones (foliage, a building's edges, a fence, print), and a symbol is a solid block at any
   angle. Choosing by area times the rectangle's fill cubed read labels pasted into real street
   photographs (the plates' photographs, 560 each) 179 -> 258 and 181 -> 271 of 560, the
   benchmark's busy pictures 116 -> 139 and 105 -> 144 of 280 (seeds 0 and 2; a few more or
   fewer from run to run, as the budget's CPU time falls), the plain, the
   1280x960 and the 1920x1440 photos as before, at a lower p50 (busy 24 -> 12 ms). The fill of
   the upright box instead read a little fewer (248, 137) and punishes a slanted symbol; fill
   squared or to the fourth power, or weighed by how one-directional the gradients are, fewer.
   Measured and dropped: zxing-cpp's try_rotate on the whole picture for every format (8-18 ms, it
   reads the unturned picture again), the global-histogram binarizer and zxing-cpp's downscaling on
   the crops (fewer rescues than sharpening), the crop enlarged 1, 1.5 or 3 times for the plain
   read, sharpening only (reads 3 % fewer than plain, then sharpened), a third patch (nothing
   more), levelling by the bars' gradient direction instead of the patch's rectangle (6 % fewer:
   the label's own edges and perspective pull it), the perspective step in place of the levelled
   ones (fewer read: the outline of a blurred patch is rough), stronger sharpening (amount 2-4:
   rescues some, loses more), the whole picture turned by 45° or enlarged.
3. A picture larger than 1920 px a side (a phone's photo, a 4K camera): the plain pass over it
   costs more than the whole budget (3840x2880: 35-70 ms), so with the budget counted from the
   call's start the second pass never began. It now runs on a copy 1920 px a side with a budget
   of its own (``_VIEW_SIDE``). The benchmark's photos enlarged 4 times (3840x2880, 140): read
   0.60 -> 0.85 at p95 70 -> 74 ms (zxing-cpp's defaults 0.69 at 279 ms); photos rendered at
   3840x2880 with the label as small as in a camera frame (84, a one-off script) 43 -> 67. The
   plain pass stays on the full picture: over the copy, the small labels read 26 of 84. Crops
   cut from the full picture instead of the copy read 69 and 67 of 84 instead of 67 and 68.

The printed text is read only when no symbol is, by the caller's choice (it costs the text
detector, hundreds of milliseconds): the OCR keeps lines that look like label content (a run
of eight or more digits: an SSCC or GTIN, or a batch/expiry line).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

from edge.vision.gs1 import GS1Error, gtin_of_symbol, parse
from edge.vision.ocr import TextReader

Box = tuple[int, int, int, int]

LABEL_FORMATS = zxingcpp.barcode_formats_from_str(
    "Code128,ITF,Code39,EAN13,EAN8,UPCA,UPCE,DataBar,DataBarExp,DataBarLtd,"
    "DataMatrix,QRCode,PDF417,Aztec"
)
_DATA_MATRIX = zxingcpp.barcode_formats_from_str("DataMatrix")
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
    if turn is not None:  # found in an upright crop: back to the picture's pixels
        points = cv2.perspectiveTransform(points[None], turn)[0]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def _gs1(found: zxingcpp.Barcode) -> dict[str, str] | None:
    text = found.text
    # An ITF-14's or an EAN/UPC's number is a GTIN by definition: given as AI (01) writes it, so
    # that one field holds the GTIN whichever symbol carried it.
    gtin = gtin_of_symbol(found.format.name, text)
    if gtin is not None:
        return {"01": gtin}
    if found.content_type != zxingcpp.ContentType.GS1 and not text.startswith("("):
        return None
    try:
        return parse(text).values
    except GS1Error:
        return None


_PATCHES = 2  # candidate patches read in the second pass, most symbol-like first
_CANDIDATES = 8  # the largest patches among which those are chosen (4 or 16: the same reads)
_ENLARGE = 2.0  # the plain crop: 1.5 read fewer, 2.5 no more and slower (benchmarks camera)
_SHARP_ENLARGE = 1.5  # the sharpened crop: 1.0 read fewer, 2.0 no more and slower
_CROP_SIDE = 1000  # an enlarged crop stays below this many pixels a side (see the module)
_SQUARE = 1.6  # a patch less elongated than this may hold its bars either way: both are tried
SECOND_PASS_BUDGET_MS = 25.0  # CPU time of one call after which no further crop is read
# A picture larger than this a side (a phone's photo, a 4K camera) gets its second pass on a copy
# this size, with a budget of its own: its plain pass alone costs more than the budget.
_VIEW_SIDE = 1920


Rect = tuple[Sequence[float], Sequence[float], float]  # OpenCV's rotated rectangle


def _compact_area(area: float, rect: Rect) -> float:
    """A patch's area (in pixels) weighed by how much of its rotated rectangle (of the pixels'
    positions) it fills, cubed. A symbol is a solid block of edges at any angle; in a busy
    picture the larger patches are sprawling ones (foliage, a building's edges, a line of print
    that bends), which the largest-first order read first."""
    (_, _), (w, h), _ = rect  # through the outer pixels' centres: each side one pixel short
    fill = min(1.0, area / ((w + 1) * (h + 1)))
    return area * fill**3


def _patches(grey: np.ndarray) -> list[tuple[Rect, np.ndarray]]:
    """The most symbol-like patches of dense edges (of the ``_CANDIDATES`` largest, the most
    compact: ``_compact_area``): their rotated rectangle (centre, size, angle) and their
    outline (the convex hull's points, x and y in the picture), found at a quarter of its
    resolution."""
    if min(grey.shape[:2]) < 32:
        return []
    small = cv2.resize(grey, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    gx = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 1, 0))
    gy = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 0, 1))
    edges = cv2.blur(cv2.addWeighted(gx, 0.5, gy, 0.5, 0), (7, 7))
    _, mask = cv2.threshold(edges, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    largest = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:_CANDIDATES]
    patches: list[tuple[float, Rect, np.ndarray]] = []
    for i in largest:
        area = stats[i, cv2.CC_STAT_AREA]
        if area < 40:  # under ~25x25 px of the picture: no symbol
            break
        # Only its outline matters (its rotated rectangle, its corners): the convex hull of
        # its pixels, looked for within its bounding box, not the whole picture (the same
        # rectangles and corners; this function 2.8 -> 2.1 ms at 960x720, 9.2 -> 5.7 at 1920x1440).
        left, top, width, height = (int(v) for v in stats[i, :4])
        ys, xs = np.nonzero(labels[top : top + height, left : left + width] == i)
        points = cv2.convexHull(
            np.stack([xs + left, ys + top], axis=1).astype(np.float32))[:, 0]
        rect = cv2.minAreaRect(points)
        (cx, cy), (w, h), angle = rect
        patches.append((_compact_area(area, rect), ((cx * 4, cy * 4), (w * 4, h * 4), angle),
                        points * 4))
    patches.sort(key=lambda p: -p[0])
    return [(rect, points) for _, rect, points in patches[:_PATCHES]]


def _upright(grey: np.ndarray, rect: Rect, enlarge: float) -> tuple[np.ndarray, np.ndarray]:
    """The patch cut out with a margin, its long side level, enlarged; and the way back.

    A bar code is longer than it is high, so with the patch's long side level its bars stand
    upright, where zxing-cpp's row scan reads them without its 90° search (half the time)."""
    (cx, cy), (w, h), angle = rect
    if h > w:
        w, h, angle = h, w, angle + 90
    w, h = w * 1.3 + 16, h * 1.3 + 16
    scale = min(enlarge, _CROP_SIDE / max(w, h))
    warp = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    warp[0, 2] += scale * w / 2 - cx
    warp[1, 2] += scale * h / 2 - cy
    crop = cv2.warpAffine(grey, warp, (int(scale * w), int(scale * h)), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, np.vstack([cv2.invertAffineTransform(warp), [0.0, 0.0, 1.0]])


def _corners(points: np.ndarray) -> np.ndarray | None:
    """The four corners of a patch that is a quadrilateral (a label seen at a slant), in order
    round it, or None when its outline is no quadrilateral."""
    hull = cv2.convexHull(points)
    perimeter = cv2.arcLength(hull, True)
    for tolerance in (0.02, 0.04, 0.06, 0.08):
        outline = cv2.approxPolyDP(hull, tolerance * perimeter, True)
        if len(outline) == 4:
            corners = outline.reshape(4, 2).astype(np.float32)
            centre = corners.mean(axis=0)
            return corners[np.argsort(np.arctan2(*(corners - centre).T[::-1]))]
    return None


def _squared(grey: np.ndarray, corners: np.ndarray,
             enlarge: float) -> tuple[np.ndarray, np.ndarray]:
    """The quadrilateral patch warped to a rectangle, long side level, enlarged; the way back.

    A label seen at a slant has bars that narrow toward its far end, which a row scanner
    misreads as other widths; undoing the perspective makes them even again."""
    sides = [float(np.linalg.norm(corners[(i + 1) % 4] - corners[i])) for i in range(4)]
    if sides[0] + sides[2] < sides[1] + sides[3]:  # the first side is to be a long one
        corners, sides = np.roll(corners, -1, axis=0), sides[1:] + sides[:1]
    centre = corners.mean(axis=0)
    corners = centre + (corners - centre) * 1.12  # the quiet zone around the symbol
    long, short = (sides[0] + sides[2]) / 2 * 1.12, (sides[1] + sides[3]) / 2 * 1.12
    scale = min(enlarge, _CROP_SIDE / max(long, short))
    w, h = int(long * scale) + 16, int(short * scale) + 16
    target = np.array([[8, 8], [w - 8, 8], [w - 8, h - 8], [8, h - 8]], np.float32)
    warp = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    crop = cv2.warpPerspective(grey, warp, (w, h), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)
    return crop, np.linalg.inv(warp)


def _sharpened(crop: np.ndarray) -> np.ndarray:
    """Unsharp mask: bars blurred into each other by focus or motion get their edges back."""
    return cv2.addWeighted(crop, 2.5, cv2.GaussianBlur(crop, (0, 0), 2.0), -1.5, 0)


def _grey(image: np.ndarray) -> np.ndarray | None:
    if image.size == 0 or image.ndim not in (2, 3) or image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    return None


def _second_pass(grey: np.ndarray, started: float, budget_ms: float, plain_ms: float
                 ) -> tuple[list[zxingcpp.Barcode], np.ndarray | None]:
    """Crops of the dense-edge patches: levelled plain, levelled sharpened, perspective
    undone; then the picture turned a quarter and DataMatrix with try_rotate; light-on-dark
    last. ``plain_ms``: what the plain pass over ``grey`` costs.

    Stops when ``budget_ms`` of CPU time since ``started`` is spent: the misses are the slow
    pictures, and a camera looks again at its next frame."""
    def spent() -> bool:
        return (time.thread_time() - started) * 1000 >= budget_ms

    first: tuple[np.ndarray, np.ndarray, bool] | None = None
    for rect, points in _patches(grey):
        (_, _), (w, h), _ = rect
        either_way = max(w, h) < _SQUARE * min(w, h)
        for step in ("level", "sharpen", "perspective"):
            if spent():
                return [], None
            if step == "perspective":
                corners = _corners(points)
                if corners is None:
                    continue
                crop, back = _squared(grey, corners, _ENLARGE)
            else:
                crop, back = _upright(grey, rect, _ENLARGE if step == "level" else _SHARP_ENLARGE)
            if first is None:
                first = (crop, back, either_way)
            if step == "sharpen":
                crop = _sharpened(crop)
            found = zxingcpp.read_barcodes(crop, formats=LABEL_FORMATS,
                                           try_rotate=either_way,
                                           try_downscale=False, try_invert=False)
            if found:
                return found, back
    # The whole picture again, turned a quarter, then DataMatrix's own 90° search. Each costs
    # about what the plain pass did (the same pixels): begun only where it would end within the
    # budget (a large photo, a picture of noise: not).
    height = grey.shape[0]
    # (x', y') = (height - 1 - y, x) in the turned picture
    turn_back = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, height - 1.0], [0.0, 0.0, 1.0]])
    whole: list[tuple[bool, zxingcpp.BarcodeFormats, np.ndarray | None]] = [
        (True, LABEL_FORMATS, turn_back),  # turned; zxing-cpp's own 90° search off
        (False, _DATA_MATRIX, None)]  # as it is; zxing-cpp's 90° search on
    for turn, formats, way_back in whole:
        if spent():
            return [], None
        if (time.thread_time() - started) * 1000 + plain_ms > budget_ms:
            break
        found = zxingcpp.read_barcodes(cv2.rotate(grey, cv2.ROTATE_90_CLOCKWISE) if turn
                                       else grey, formats=formats, try_rotate=not turn,
                                       try_downscale=True, try_invert=False)
        if found:
            return found, way_back
    if first is None or spent():
        return [], None
    # Labels are printed dark on light; a light-on-dark symbol is rare enough to be tried last,
    # on the largest patch only.
    crop, back, either_way = first
    # zxing-cpp's try_invert would read the plain crop again first: the inverted copy alone.
    found = zxingcpp.read_barcodes(cv2.bitwise_not(crop), formats=LABEL_FORMATS,
                                   try_rotate=either_way, try_downscale=False, try_invert=False)
    return found, back


def read_symbols(image: np.ndarray, *,
                 budget_ms: float = SECOND_PASS_BUDGET_MS) -> list[LabelRead]:
    """The symbols in the picture; ``budget_ms``: the second pass's CPU time (see the module)."""
    started = time.thread_time()
    grey = _grey(image)
    if grey is None:
        return []
    back: np.ndarray | None = None
    # Pass 1, the whole picture as it is: no 90° search (it doubled the time for no extra
    # read once the second pass levels its crops), no light-on-dark search (+40 %).
    found = zxingcpp.read_barcodes(grey, formats=LABEL_FORMATS, try_rotate=False,
                                   try_downscale=True, try_invert=False)
    if not found:
        plain_ms = (time.thread_time() - started) * 1000
        if max(grey.shape) <= _VIEW_SIDE:
            found, back = _second_pass(grey, started, budget_ms, plain_ms)
        else:
            # Counted from the call's start, the budget was spent before the second pass began.
            # The copy is of a camera frame's size: its patches' crops, enlarged, keep bars
            # that the plain pass over the full picture could not read whole.
            scale = _VIEW_SIDE / max(grey.shape)
            height, width = grey.shape
            size = (max(1, round(width * scale)), max(1, round(height * scale)))  # a strip: 1 px
            view = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
            found, back = _second_pass(view, time.thread_time(), budget_ms,
                                       plain_ms * scale * scale)
            back = np.diag([1 / scale, 1 / scale, 1.0]) @ (np.eye(3) if back is None else back)
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


def read_labels(image: np.ndarray, reader: TextReader | None, *,
                budget_ms: float = SECOND_PASS_BUDGET_MS) -> list[LabelRead]:
    """Symbols in the image; if there are none and a reader is given, label-like text lines.
    ``budget_ms``: as ``read_symbols``'s."""
    reads = read_symbols(image, budget_ms=budget_ms)
    if reads or reader is None:
        return reads
    return label_lines(image, reader)
