"""Which text lines found in a frame could be a licence plate, and what plate they spell.

The second proposal stage (``edge.vision.proposals``) runs a general text detector where the
plate detector found nothing. Most of what it finds is not a plate: signs, shop names, slogans.
Here, without any model, is what decides:

- ``plate_shaped``: a line has a plate's proportions and a readable height;
- ``stacked_pairs``: two short lines one above the other, aligned, of similar height, are one
  plate with stacked characters (read top line first);
- ``plate_from_texts``: the words of a plate's surroundings (US state names, slogans, dealer
  frames, the EU band's country code) are dropped, then what is left must match a plate format
  (``plate_format.match``: EU hyphens and spaces are removed by its normalisation);
- ``ProposalBudget``: how often a camera may spend the stage, so the frame loop keeps its rate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from decisions.pacing import Pacing
from decisions.plate_format import (
    SURROUNDING_PHRASES,
    US_STATE_NAMES,
    PlateText,
    RegionChoice,
    match,
    normalise,
)

Box = tuple[int, int, int, int]  # x, y, w, h

# A line of plate characters: a single character is about 0.5 h wide, a plate holds 4 to 8 of
# them, a stacked half 1 to 4 (so from 0.4 h to 9 h wide). Below 9 pixels high OCR does not read.
_ASPECT = (0.4, 9.0)
MIN_HEIGHT = 9


def plate_shaped(box: Box, *, frame_size: tuple[int, int]) -> bool:
    """Could this text line be (part of) a plate: proportions, not taller than a plate ever is
    in a frame (a fifth of its height), and not cut by the frame's left or right edge (a plate
    half out of the picture reads as a shorter valid one: "IF 99 S|" as IF99)?"""
    x, _, w, h = box
    frame_w, frame_h = frame_size
    if h < MIN_HEIGHT or h > frame_h / 5:
        return False
    edge = max(2, h // 2)  # closer than half a character to the side: the text runs off it
    if x <= edge or x + w >= frame_w - edge:
        return False
    return _ASPECT[0] <= w / h <= _ASPECT[1]


def plate_cut_by_frame_side(box: Box, frame_w: int) -> bool:
    """A detected plate box that runs into the frame's left or right side (closer than about
    half a character): part of the plate is outside the picture, and what is left can read as
    a shorter valid plate ("IF 99 S|" as IF999). Half a character is a quarter of the height on
    an EU plate (about 4.7:1) and a sixteenth of the width on a US one (2:1), or on any plate
    in a photograph squashed by its export: the smaller of the two. A box that fills most of
    the frame, or stands in its middle (its nearer side's margin at least half the farther's),
    is the one plate of a crop, not a cut one: a plate cropped with a margin of a few pixels
    has them on both sides."""
    x, _, w, h = box
    if w >= 0.8 * frame_w:
        return False
    near, far = sorted((x, frame_w - (x + w)))
    if near >= far / 2:
        return False
    return near <= max(2, min(h // 4, w // 16))


def stacked_pairs(boxes: list[Box]) -> list[tuple[int, int]]:
    """Pairs (upper, lower) of line indices that look like one plate's two rows.

    Rows of one plate: the lower starts within 0.6 of a row height below the upper, their
    heights differ by less than half, and they overlap horizontally over most of the narrower.
    """
    pairs: list[tuple[int, int]] = []
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for j, (bx, by, bw, bh) in enumerate(boxes):
            if i == j or by <= ay:
                continue
            gap = by - (ay + ah)
            if gap > 0.6 * max(ah, bh) or gap < -0.5 * min(ah, bh):
                continue
            if abs(ah - bh) > 0.5 * max(ah, bh):
                continue
            overlap = min(ax + aw, bx + bw) - max(ax, bx)
            if overlap < 0.6 * min(aw, bw):
                continue
            pairs.append((i, j))
    return pairs


# Words printed around plates that are not the number (plate_format: US state names, slogans,
# dealer frames), matched as whole words after upper-casing.
_SURROUNDINGS = sorted((*SURROUNDING_PHRASES, *US_STATE_NAMES), key=len, reverse=True)
_NOISE = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in _SURROUNDINGS) + r")\b")
# The EU band's country code, when the recogniser read it before the number: a one-to-three
# letter word alone at the start ("RO B 123 ABC", "D M-AB 123"). Only removed when what
# follows then matches, so a plate that starts with letters is not cut short.
_FILLERS = frozenset({"THE", "OF", "AND", "OR", "IN", "TO"})
_BAND = re.compile(r"^\s*([A-Z]{1,3})\s+(?=\S)")


def _clean(raw: str) -> str:
    upper = raw.upper()
    upper = re.sub(r"[^\w\s-]", " ", upper)  # dots, slashes, the US "·" between groups
    return _NOISE.sub(" ", upper)


def plate_from_texts(texts: list[str], region: RegionChoice = "auto", *,
                     max_repairs: int = 1, country: str | None = None,
                     on_plate: bool = False) -> PlateText | None:
    """The plate the lines (top to bottom) spell, with surrounding words dropped, or None.

    At most one look-alike repair by default: nothing but the text says these lines are a
    plate, and with two repairs words become plates ("Passat" reads as P45SAT). ``on_plate``:
    the lines are known to lie on a plate (a plate crop), so a plate of an unlisted country
    is read too (``plate_format.match``), once no listed format fits any reading."""
    cleaned = " ".join(_clean(t) for t in texts).strip()
    if not cleaned:
        return None
    # Leftover words around the number: letters alone, four or more of them, or a filler.
    words = cleaned.split()
    kept = " ".join(w for w in words if w not in _FILLERS
                    and (any(ch.isdigit() for ch in w) or len(w) <= 3))
    tries = [cleaned, kept]
    if region in ("eu", "auto"):  # the band's country code read before the number
        tries += [t[band.end():] for t in (cleaned, kept) if (band := _BAND.match(t))]
    found = None
    for unlisted in (False, True) if on_plate else (False,):
        for text in dict.fromkeys(tries):
            if text and (found := match(text, region, max_repairs=max_repairs,
                                        country=country, on_plate=unlisted)) is not None:
                break
        if found is not None:
            break
    if found is None or len(normalise(found.text)) < 4:
        return None
    return found


def crop_number_lines(boxes: list[Box], crop_size: tuple[int, int], *,
                      limit: int = 3) -> list[tuple[Box, ...]]:
    """Which text lines of a plate crop hold its number, best guess first: each a row, or two
    stacked rows (top first), to be read and joined.

    On a plate the number is the tallest text; the state name, slogan, dealer frame and EU
    band are smaller. Lines of one row that the text detector split ("BKHT" "146") are joined.
    None when the tallest line is under a fifth of the crop's height: then the image is a
    scene, not a crop, and its text is no plate's."""
    _, crop_h = crop_size
    if not boxes:
        return []
    tallest = max(h for _, _, _, h in boxes)
    if tallest < crop_h / 5:
        return []
    big = sorted((b for b in boxes if b[3] >= 0.6 * tallest), key=lambda b: (b[1], b[0]))
    rows: list[Box] = []
    for x, y, w, h in big:
        for k, (rx, ry, rw, rh) in enumerate(rows):
            if min(y + h, ry + rh) - max(y, ry) > 0.6 * min(h, rh):  # the same row
                x0, y0 = min(x, rx), min(y, ry)
                rows[k] = (x0, y0, max(x + w, rx + rw) - x0, max(y + h, ry + rh) - y0)
                break
        else:
            rows.append((x, y, w, h))
    found: list[tuple[Box, ...]] = [(rows[i], rows[j]) for i, j in stacked_pairs(rows)]
    found += [(row,) for row in sorted(rows, key=lambda b: b[2] * b[3], reverse=True)]
    return found[:limit]


@dataclass(frozen=True, slots=True)
class Candidate:
    """Lines (indices into the found lines, top first) that together may be a plate."""

    lines: tuple[int, ...]
    box: Box


def candidates(boxes: list[Box], *, frame_size: tuple[int, int], limit: int) -> list[Candidate]:
    """Plate-shaped lines and stacked pairs, the largest first, at most ``limit`` (each one
    costs a recogniser call, so the count bounds the stage's time)."""
    shaped = [i for i, b in enumerate(boxes) if plate_shaped(b, frame_size=frame_size)]
    found: list[Candidate] = []
    for i, j in stacked_pairs([boxes[k] for k in shaped]):
        a, b = boxes[shaped[i]], boxes[shaped[j]]
        x0, y0 = min(a[0], b[0]), min(a[1], b[1])
        x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
        found.append(Candidate((shaped[i], shaped[j]), (x0, y0, x1 - x0, y1 - y0)))
    # Single lines wide enough for a whole plate (a stacked half alone is not one).
    found += [Candidate((i,), boxes[i]) for i in shaped if boxes[i][2] >= 1.5 * boxes[i][3]]
    found.sort(key=lambda c: c.box[2] * c.box[3], reverse=True)
    return found[:limit]


class ProposalBudget(Pacing):
    """When a camera may run the proposal stage: at most once every ``every_us`` of picture
    time (at 25 frames a second and 500 ms, one frame in twelve or thirteen); the caller asks
    only while the plate detector finds nothing in the motion. Pure: the caller gives the time."""

    def __init__(self, *, every_us: int = 500_000) -> None:
        super().__init__(every_us=every_us)
