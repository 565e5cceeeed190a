"""From an image to plate texts: detect, crop, read, validate the format.

Works on a whole scene (the detector finds the plates) and on a plate crop (an image that is
only a plate: a plate-shaped image is read whole first, then by its tallest text line).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import cv2
import numpy as np

from decisions.plate_candidates import crop_number_lines, plate_cut_by_frame_side, plate_from_texts
from decisions.plate_format import (
    PlateText,
    RegionChoice,
    fixed_length,
    foreign,
    match,
    normalise,
)
from edge.vision.detector import Box, Detection, PlateDetector
from edge.vision.ocr import TextLine, TextReader

# Plate-shaped: China 3.1:1, EU 4.7:1, US 2:1. From 1.9 up, so that 16:9 and 4:3 frames are
# never taken for a crop first.
_CROP_ASPECT = (1.9, 6.0)
# A small picture of other proportions (a plate cropped with a margin above and below) is
# read as a crop when the detector reads nothing in it: at most this wide, at least this
# much wider than high (scenes are larger: their text lines would cost time for nothing).
_SMALL_CROP_WIDTH = 400
_SMALL_CROP_MIN_ASPECT = 1.3
# Where the detector finds nothing in a still picture, it looks again with the picture shrunk
# to this part of its input: a close-up's plate (a crop with a wide margin, a plate filling a
# photograph) is larger than any it learnt from scenes. On the validation plates cropped with a
# margin (``evaluate.margin_crop``), the plate is found in 99 of 127 Romanian crops at full
# size, 106 at 0.6, 74 at 0.4; Open Images 35, 36, 25 of 38; the two Chinese scene plates 0, 2.
_CLOSE_UP_FILL = 0.6
# A small picture that reads nothing is read once more with its sides repeated outward by this
# part of its size: a plate cut out tight (its box, no margin) has characters touching the
# picture's sides, where the detector's box and the recogniser lose them. Tight Open Images
# crops read 25 -> 28 of 38 (0.2 and 0.3 the same; a grey border instead, 26), Romanian 114 of
# 127 as before; crops with a margin and scenes read what they read (they read something).
_TIGHT_CROP_PAD = 0.1
# Boxes the detector is unsure of (``PlateDetector.weak_threshold``) read in a still picture, at
# most; each costs one recogniser run.
_WEAK_BOXES = 3
# The text detector's input side for a crop's lines: a crop is small, this keeps it 10-20 ms.
_CROP_LINES_SIDE = 480
# A still picture's detected plate is also read by its text lines around the box (the box
# grown by these fractions of its width and height) unless its box read is sure (``_sure``);
# the read kept is chosen by ``PlateRecognizer._preference``. The box read
# misreads when the box is a few pixels off (a frame's edge read as a character: "AAVF198",
# "1969HBD"; a character cut off); the lines read misreads other plates ("B90MYU"). On the
# real validation split each read plates the other missed (margins 0.12/0.3 and 0.4/1.0 read
# fewer than these). Not started once the picture has cost ``AROUND_BUDGET_MS`` of CPU, so a
# scene full of boxes keeps its time. Still pictures only: the gate reads a plate over many
# frames and votes (``gate``).
_AROUND_MARGIN = (0.25, 0.6)
_SURE_READ = 0.95
AROUND_BUDGET_MS = 80.0
# A character read with at least this probability is a character, not an edge (see
# ``_clearer_of_nested``).
_CLEAR_CHAR = 0.8
# A first L, I or 1 read with less than this, before a plate read clearly, is the EU band's or a
# frame's edge (``_without_faint_edge``): the band's edge came at 0.46-0.59 on real frames.
_FAINT_EDGE = 0.6
# A character the recogniser read with at least this probability is not repaired into its
# look-alike to fit a format (``repairs_a_clear_character``): the read as it stands is kept, as
# a plate of an unlisted country if no format fits it. The format's repairs make the 0/O, 1/I
# and 8/B of a blurred plate right ("BO4RXL" -> B04RXL, the O at 0.61; "TR05R8G" -> TR05RBG at
# 0.92; "HKIO NYY" -> HK10NYY at 0.99 and 0.78), but turned real plates of other countries,
# read right, into wrong listed ones: "UM96201" into the French UM962OI (both characters at
# 1.0), "815-VNV" into the Romanian B15VNV (0.998), "A69985T" into AG998ST (0.997 and 1.0).
_SURE_CHAR = 0.99
# Except O and 0: on many plates one glyph (California's, Britain's), so the recogniser's
# certainty says nothing of which it is (a Californian 8COO973 read "8C00973", both at 0.99+).
_ONE_GLYPH = {"O", "0"}
# A picture that is a plate crop is read as one (whole, then by its text lines); a read less
# sure than this (``_sure``) is checked against the detector's reads of the same picture and
# the preferred kept. On the validation plates cropped with random margins (seeds 1 and 2):
# Romanian 95 -> 107 and 99 -> 112 of 127, at 0.95 108 and 113 but 8 ms more at p50; at this
# threshold all 4 real Chinese crops are sure at once (their confidences 0.92-1.0), so a
# Chinese crop keeps its 15-25 ms instead of paying the detector's 30.
_SURE_CROP = 0.9


@dataclass(frozen=True, slots=True)
class PlateRead:
    plate: PlateText
    confidence: float
    box: Box
    crop: np.ndarray
    raw: str  # what OCR said before normalisation and repair
    # The recogniser's probability of each character of ``plate.text``, where they line up
    # (a single line whose characters all made the plate); empty otherwise.
    char_confidences: tuple[float, ...] = ()


def _detector_trust(det_score: float) -> float:
    """How much a read on a detected box is worth for the detector's score: full from 0.7 up,
    so only the boxes it is unsure of lower the read's confidence."""
    return min(1.0, det_score + 0.3)


def _char_confidences(raw: str, confidences: Sequence[float],
                      plate: PlateText) -> tuple[float, ...]:
    """The probabilities of ``raw``'s characters for the characters of ``plate``: its
    separators dropped as the format's normalisation drops them; empty where they do not line
    up (a character restored or trimmed by the format, a German seal, words dropped around the
    number)."""
    if len(confidences) != len(raw):
        return ()
    kept = [c for ch, c in zip(raw, confidences, strict=True) if normalise(ch)]
    return tuple(kept) if len(kept) == len(plate.text) else ()


def repairs_a_clear_character(raw: str, confidences: Sequence[float], plate: PlateText) -> bool:
    """Whether the format repaired a character of ``raw`` that the recogniser read clearly
    (``_SURE_CHAR``). The plate's characters are found in the read as it stands (separators
    dropped; the plate may be part of it, words around it dropped), where they differ in as many
    places as the plate has repairs. False where that is not known (no probabilities, a
    character restored or trimmed by the format), and for a Chinese plate: it has no I or O,
    and a Chinese read that no Chinese format fits is no plate (``plate_format.match``)."""
    if not plate.repairs or len(confidences) != len(raw) or plate.region == "cn":
        return False
    kept = [(normalise(ch), c) for ch, c in zip(raw, confidences, strict=True) if normalise(ch)]
    if any(len(ch) != 1 for ch, _ in kept):
        return False
    text, n = "".join(ch for ch, _ in kept), len(plate.text)
    for start in range(len(text) - n + 1):
        repaired = [i for i in range(n) if text[start + i] != plate.text[i]]
        if len(repaired) == plate.repairs:
            return any(kept[start + i][1] >= _SURE_CHAR and {text[start + i], plate.text[i]}
                       != _ONE_GLYPH for i in repaired)
    return False


def _without_faint_edge(line: TextLine, region: RegionChoice, country: str | None) -> TextLine:
    """``line`` without a first character that is the EU band's or a frame's edge: an L, I or 1
    read faintly (``_FAINT_EDGE``) before what is a plate of a listed format without it, read
    clearly ("LB58DTK": the L at 0.46, B 58 DTK at 0.99-1.0). ``line`` itself otherwise (a
    picture's edges read at both ends, "IBJ03LBT" with the T at 0.39, is no plate's)."""
    first = next((i for i, ch in enumerate(line.text) if normalise(ch)), None)
    if (first is None or len(line.char_confidences) != len(line.text)
            or line.text[first] not in "LI1|" or line.char_confidences[first] >= _FAINT_EDGE
            or min((c for ch, c in zip(line.text[first + 1 :], line.char_confidences[first + 1 :],
                                       strict=True) if normalise(ch)), default=0.0) < _FAINT_EDGE):
        return line
    rest = line.text[first + 1 :]
    plate = match(rest, _region_hint(rest, region), country=country)
    if plate is None or not plate.listed:
        return line
    return TextLine(rest, line.confidence, line.box, line.char_confidences[first + 1 :])


def _clearer_of_nested(a: PlateRead, b: PlateRead) -> PlateRead | None:
    """Of two reads of one plate where one is the other with one or two more characters, the
    right one, by how clearly those characters were read: a real character read clearly, an EU
    band's edge or a frame's ("LB58DTK" for B 58 DTK: the L at 0.46-0.59) faintly. At an end,
    the end's characters decide (the frame's edge read as the first A of "AAVF198": 0.63, the
    plate's own A 0.98). Within, a blurred run of ones loses one ("6611-72" of 66-111-72) and
    any of the run may be the added one: the clearest counts. None when neither holds the
    other or the longer's characters are unknown."""
    longer, shorter = (a, b) if len(a.plate.text) > len(b.plate.text) else (b, a)
    extra = len(longer.plate.text) - len(shorter.plate.text)
    if not 1 <= extra <= 2 or not longer.char_confidences:
        return None
    text, chars = longer.plate.text, longer.char_confidences
    if text.startswith(shorter.plate.text):
        clearest: float | None = min(chars[-extra:])
    elif text.endswith(shorter.plate.text):
        clearest = min(chars[:extra])
    else:  # within: of a run of one character, any may be the added one
        clearest = max((min(chars[i] for i in added)
                        for added in combinations(range(1, len(text) - 1), extra)
                        if "".join(ch for i, ch in enumerate(text) if i not in added)
                        == shorter.plate.text), default=None)
    if clearest is None:
        return None
    return longer if clearest >= _CLEAR_CHAR else shorter


def _sure(read: PlateRead | None, country: str | None, threshold: float = _SURE_READ) -> bool:
    """A box read that needs no second opinion: a listed format of a fixed length (a loose
    pattern's read may be a plate cut short by the box: "ABC-123" of ABC-1234 fits the German
    one), of the camera's country where it has one, read with confidence."""
    return (read is not None and read.plate.listed and fixed_length(read.plate)
            and not foreign(read.plate, country) and read.confidence >= threshold)


def _clipped(box: Box, width: int, height: int) -> Box:
    """``box`` cut to a picture of ``width`` x ``height``."""
    x, y, w, h = box
    x0, y0 = min(max(0, x), width), min(max(0, y), height)
    x1, y1 = min(max(x0, x + w), width), min(max(y0, y + h), height)
    return (x0, y0, x1 - x0, y1 - y0)


def _crop(image: np.ndarray, box: Box, mx: float, my: float) -> np.ndarray:
    x, y, w, h = box
    H, W = image.shape[:2]
    dx, dy = int(w * mx), int(h * my)
    return image[max(0, y - dy) : min(H, y + h + dy), max(0, x - dx) : min(W, x + w + dx)]


def _region_hint(raw: str, region: RegionChoice) -> RegionChoice:
    """A Chinese character or the plate's middle dot in the raw text means a Chinese plate."""
    if region == "auto" and any(ch == "·" or "\u4e00" <= ch <= "\u9fff" for ch in raw):
        return "cn"
    return region


def _text_band(crop: np.ndarray) -> np.ndarray:
    """The part of a plate that holds its number.

    An EU plate's blue country band (its code would read as a first character) and a US plate's
    state name above the number are left out; other plates are returned as they are.
    """
    h, w = crop.shape[:2]
    if w / h < 2.4 and h >= 24:  # US proportions: the number sits in the lower three quarters
        return crop[int(h * 0.28) : int(h * 0.95)]
    middle = crop[h // 5 : h - h // 5].astype(np.int32)
    body = middle[:, w // 4 : w // 2].reshape(-1, 3)
    body_light = np.median(body.sum(axis=1)) > 3 * 120 and np.median(body[:, 0] - body[:, 2]) < 30
    if not body_light:
        # Not a light plate: Chinese plates are blue, yellow or green all over.
        return _snug_to_colour(crop)
    # Columns of the left fifth that are mostly blue: the EU band, wherever the crop starts.
    left = middle[:, : max(1, w // 5)]
    bluish = (left[:, :, 0] - left[:, :, 2] > 35) & (left[:, :, 0] - left[:, :, 1] > 15)
    blue = bluish.mean(axis=0)
    columns = np.nonzero(blue > 0.5)[0]
    if len(columns) >= max(2, w // 40):
        return crop[:, min(w - 1, int(columns.max()) + 1 + w // 100) :]
    return crop


def _snug_to_colour(crop: np.ndarray) -> np.ndarray:
    """A coloured plate cut to its own colour: a detector box a little loose (boxes learnt from
    real photographs include the plate's frame) leaves car body at the sides, and the
    recogniser then misreads the Chinese province ("京" as "皖"). Unchanged when the crop has no
    dominant saturated colour, or when cutting would leave less than half of it."""
    h, w = crop.shape[:2]
    if h < 12 or w < 24:
        return crop
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hue, sat, val = (hsv[:, :, i].astype(np.int16) for i in range(3))
    saturated = (sat > 80) & (val > 50)
    if saturated.mean() < 0.4:
        return crop
    plate_hue = int(np.median(hue[saturated]))
    if not 15 <= plate_hue <= 135:  # yellow to blue; red and pink are night light, no plate
        return crop
    body = saturated & (np.abs(hue - plate_hue) < 15)
    cols = np.nonzero(body.mean(axis=0) > 0.35)[0]
    rows = np.nonzero(body.mean(axis=1) > 0.35)[0]
    if len(cols) < w // 2 or len(rows) < h // 2:
        return crop
    return crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def line_crop(image: np.ndarray, box: Box, *, single: bool) -> np.ndarray:
    """A text line's crop with a little margin (text detector boxes hug the ink); a single line
    that could be a whole plate goes through the plate's text band (EU band, US state name)."""
    x, y, w, h = box
    H, W = image.shape[:2]
    dx, dy = max(2, w // 25), max(2, h // 8)
    crop = image[max(0, y - dy) : min(H, y + h + dy), max(0, x - dx) : min(W, x + w + dx)]
    if single and crop.shape[0] >= 24 and crop.shape[1] / crop.shape[0] > 2.4:
        return _text_band(crop)
    return crop


def read_rows(reader: TextReader, image: np.ndarray,
              rows: Sequence[Box]) -> tuple[list[str], float, tuple[float, ...]] | None:
    """The texts of a plate's text lines (top first), the least of their confidences, and the
    probabilities of the characters of the texts joined by spaces (empty where one line's are
    unknown); None when one of the lines reads as nothing."""
    texts: list[str] = []
    confidence = 1.0
    chars: list[float] | None = []
    for box in rows:
        line = reader.read_line(line_crop(image, box, single=len(rows) == 1))
        if line is None:
            return None
        if chars is not None and len(line.char_confidences) == len(line.text):
            chars += [1.0] * bool(texts) + list(line.char_confidences)  # 1.0: the joining space
        else:
            chars = None
        texts.append(line.text)
        confidence = min(confidence, line.confidence)
    return texts, confidence, tuple(chars or ())


class PlateRecognizer:
    def __init__(
        self, detector: PlateDetector, reader: TextReader, *, region: RegionChoice = "auto",
        country: str | None = None,
    ) -> None:
        self.detector = detector
        self.reader = reader
        self.region = region
        self.country = country  # where the camera stands: its plates win ties (plate_format)

    def read_box(self, image: np.ndarray, box: Box, det_score: float = 1.0, *,
                 weak: bool = False) -> PlateRead | None:
        """Read the plate at ``box``: a snug crop first; a tight, then a loose one if the text
        fails the format (detector boxes are a few pixels off either way).

        A read that fits only as a plate of an unlisted country (``plate_format``: nothing
        checks its characters) does not end the search: the other crops are read too, and a
        listed format wins, else the most confident read.

        ``weak``: the detector is unsure of the box. Only the snug crop is read, and only a
        listed format is taken: the format must vouch that this is a plate."""
        unlisted: PlateRead | None = None
        shapes: set[tuple[int, ...]] = set()
        margins = ((0.02, 0.05),) if weak else ((0.02, 0.05), (0.0, 0.0), (0.10, 0.20))
        for mx, my in margins:
            crop = _crop(image, box, mx, my)
            if crop.shape[0] < 8 or crop.shape[1] < 16:
                return None
            if crop.shape in shapes:  # clamped to the image's sides: the same crop again
                continue
            shapes.add(crop.shape)
            line = self.reader.read_line(_text_band(crop))
            if line is None:
                continue
            line = _without_faint_edge(line, self.region, self.country)
            hint = _region_hint(line.text, self.region)
            plate = match(line.text, hint, country=self.country, on_plate=True)
            if plate is not None and repairs_a_clear_character(
                    line.text, line.char_confidences, plate):
                plate = match(line.text, hint, country=self.country, on_plate=True,
                              max_repairs=0)
            if plate is None or (weak and not plate.listed):
                continue
            confidence = line.confidence * (1 - 0.1 * plate.repairs) * _detector_trust(det_score)
            chars = _char_confidences(line.text, line.char_confidences, plate)
            if plate.listed:
                return PlateRead(plate, round(confidence, 3), box, crop, line.text, chars)
            # Less sure than a plate whose format checks it: the same 0.9 as a proposal.
            read = PlateRead(plate, round(confidence * 0.9, 3), box, crop, line.text, chars)
            if unlisted is None or read.confidence > unlisted.confidence:
                unlisted = read
        return unlisted

    def read_crop_lines(self, image: np.ndarray) -> PlateRead | None:
        """Read an image that is a plate crop by its text lines: the number is the tallest
        (``crop_number_lines``), so a state name, a slogan below it, a dealer frame or a wide
        margin around the plate do not spoil the read as they do read whole."""
        h, w = image.shape[:2]
        boxes = self.reader.find_lines(image, max_side=_CROP_LINES_SIDE)
        unlisted: PlateRead | None = None
        for group in crop_number_lines(boxes, (w, h)):
            rows = read_rows(self.reader, image, group)
            if rows is None:
                continue
            texts, confidence, chars = rows
            raw = " ".join(texts)
            hint = _region_hint(raw, self.region)
            plate = plate_from_texts(texts, hint, country=self.country, on_plate=True)
            if plate is not None and repairs_a_clear_character(raw, chars, plate):
                plate = plate_from_texts(texts, hint, country=self.country, on_plate=True,
                                         max_repairs=0)
            if plate is None:
                continue
            x0, y0 = min(b[0] for b in group), min(b[1] for b in group)
            x1 = max(b[0] + b[2] for b in group)
            y1 = max(b[1] + b[3] for b in group)
            box = (x0, y0, x1 - x0, y1 - y0)
            confidence *= 1 - 0.1 * plate.repairs
            plate_chars = _char_confidences(raw, chars, plate)
            if plate.listed:
                return PlateRead(plate, round(confidence, 3), box, image, raw, plate_chars)
            read = PlateRead(plate, round(confidence * 0.9, 3), box, image, raw, plate_chars)
            if unlisted is None or read.confidence > unlisted.confidence:
                unlisted = read
        return unlisted

    def read_around_box(self, image: np.ndarray, box: Box, det_score: float = 1.0, *,
                        weak: bool = False) -> PlateRead | None:
        """Read the plate at ``box`` by the text lines found around it (``read_crop_lines``
        on the box grown by ``_AROUND_MARGIN``): the number is found by the text detector,
        not cut by the box. ``weak``: only a listed format is taken (as ``read_box``)."""
        mx, my = _AROUND_MARGIN
        around = _crop(image, box, mx, my)
        if around.shape[0] < 8 or around.shape[1] < 16:
            return None
        found = self.read_crop_lines(around)
        if found is None or (weak and not found.plate.listed):
            return None
        confidence = round(found.confidence * _detector_trust(det_score), 3)
        return PlateRead(found.plate, confidence, box, around, found.raw, found.char_confidences)

    def read_detection(self, image: np.ndarray, box: Box, det_score: float = 1.0, *,
                       weak: bool = False, look_around: bool = True) -> PlateRead | None:
        """A detected plate's read: ``read_box``, and, where that read is not sure and
        ``look_around`` (the caller's time allows it), ``read_around_box`` too; the read
        ``_preference`` puts first is kept, or, between two of one kind where one is the other
        with a character or two more, the one ``_clearer_of_nested`` picks."""
        found = self.read_box(image, box, det_score, weak=weak)
        if look_around and not _sure(found, self.country):
            around = self.read_around_box(image, box, det_score, weak=weak)
            if around is not None and not around.plate.listed and found is None:
                # Around the box there is more text than the plate's (a sign's "NO PARKING", a
                # car's PASSAT badge): a read no format checks may only replace one the box
                # itself gave.
                around = None
            if found is not None and around is not None and (
                    self._kind(found) == self._kind(around)):
                # Of two reads of one kind where one holds the other, confidence is a poor
                # judge (B12345 around the box beat AB12345 by 0.002): the characters it adds are.
                nested = _clearer_of_nested(found, around)
                if nested is not None:
                    return nested
            found = max((r for r in (found, around) if r is not None), default=None,
                        key=self._preference)
        return found

    def read(self, image: np.ndarray, *, crop_fallback: bool = True) -> list[PlateRead]:
        """Every readable plate in the image, most confident first (``_read_picture``); a
        small picture that reads nothing is read again with its sides repeated outward
        (``_TIGHT_CROP_PAD``), in case it is a plate cut out tight."""
        found = self._read_picture(image, crop_fallback=crop_fallback)
        if (found or not crop_fallback or image.ndim != 3 or image.shape[0] < 8
                or not 16 <= image.shape[1] <= _SMALL_CROP_WIDTH):
            return found
        h, w = image.shape[:2]
        py, px = round(_TIGHT_CROP_PAD * h), round(_TIGHT_CROP_PAD * w)
        padded = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_REPLICATE)
        return [replace(r, box=_clipped((r.box[0] - px, r.box[1] - py, r.box[2], r.box[3]), w, h))
                for r in self._read_picture(padded, crop_fallback=crop_fallback)]

    def _read_picture(self, image: np.ndarray, *, crop_fallback: bool) -> list[PlateRead]:
        """Every readable plate in the image, most confident first.

        A plate-shaped image is first read as a tight crop: whole, then by its text lines; a
        sure read so is the answer (a crop holds one plate, and the detector may clip its
        edge), a less sure one meets the detector's reads of the picture and the preferred is
        kept. A small image of other proportions is read as a crop when the detector reads no
        plate of a listed format in it. A detected plate whose box read is not sure is read
        again by the text lines around the box (``read_detection``)."""
        if image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 16:
            return []
        h, w = image.shape[:2]
        as_crop: PlateRead | None = None
        if crop_fallback and _CROP_ASPECT[0] <= w / h <= _CROP_ASPECT[1]:
            as_crop = self._read_as_crop(image)
            if as_crop is not None and _sure(as_crop, self.country, _SURE_CROP):
                return [as_crop]
        started = time.thread_time()
        detections = self.detector.detect(image, weak=True)  # best first: the sure ones lead
        close_up = not detections
        if close_up:  # perhaps a close-up: its plate larger than any the detector learnt
            detections = self.detector.detect(image, weak=True, fill=_CLOSE_UP_FILL)
        reads = self._read_detections(image, detections, started, look_around=as_crop is None)
        if not reads and not close_up and w <= _SMALL_CROP_WIDTH:
            # A small picture is likely one plate with a margin: what was boxed at full size
            # may be its frame or part of it, and read nothing; the close-up look boxes the plate.
            detections = self.detector.detect(image, weak=True, fill=_CLOSE_UP_FILL)
            reads = self._read_detections(image, detections, started, look_around=False)
        if (not any(r.plate.listed for r in reads) and as_crop is None and crop_fallback
                and w <= _SMALL_CROP_WIDTH and _SMALL_CROP_MIN_ASPECT <= w / h < _CROP_ASPECT[0]):
            as_crop = self._read_as_crop(image)
        # A crop holds one plate: read as a crop, or as the detector boxed it, the preferred.
        if as_crop is not None and all(
                self._preference(as_crop) >= self._preference(r) for r in reads):
            return [as_crop]
        reads.sort(key=lambda r: r.confidence, reverse=True)
        return reads

    def _read_detections(self, image: np.ndarray, detections: Sequence[Detection],
                         started: float, *, look_around: bool) -> list[PlateRead]:
        """The reads of a still picture's detections (best first). A still picture has one
        chance, so the boxes the detector is unsure of are read too (a few, vouched for by their
        format); a gate camera reads a plate over many frames and waits for a sure one
        (``gate``). ``look_around``: ``read_detection``'s, until ``AROUND_BUDGET_MS`` of CPU
        since ``started``."""
        w = image.shape[1]
        reads: list[PlateRead] = []
        sure = sum(d.score >= self.detector.score_threshold for d in detections)
        for det in detections[: sure + _WEAK_BOXES]:
            weak = det.score < self.detector.score_threshold
            found = self.read_detection(
                image, det.box, det.score, weak=weak,
                look_around=look_around
                and (time.thread_time() - started) * 1000 < AROUND_BUDGET_MS)
            if found is None:
                continue
            # A plate running into the picture's side may be cut short ("IF 99 S|" reads as
            # the German-pattern IF99): its read counts only where its format fixes the length.
            if plate_cut_by_frame_side(det.box, w) and not fixed_length(found.plate):
                continue
            reads.append(found)
        return reads

    def _kind(self, read: PlateRead) -> tuple[bool, bool, bool]:
        """What the format says of a read: listed, of the camera's country, of a fixed length."""
        plate = read.plate
        return plate.listed, not foreign(plate, self.country), fixed_length(plate)

    def _preference(self, read: PlateRead) -> tuple[bool, bool, bool, float]:
        """Of two reads of one plate, the one to keep has the greatest: its kind, then its
        confidence."""
        return (*self._kind(read), read.confidence)

    def _read_as_crop(self, image: np.ndarray) -> PlateRead | None:
        h, w = image.shape[:2]
        whole = self.read_box(image, (0, 0, w, h))
        if _sure(whole, self.country, _SURE_CROP):
            return whole
        by_lines = self.read_crop_lines(image)
        found = [r for r in (whole, by_lines) if r is not None]
        return max(found, key=self._preference) if found else None
