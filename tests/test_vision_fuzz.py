"""Property-based fuzzing of what reads a camera's pictures: any picture OpenCV can decode (one
pixel to thousands on a side, strips, noise, flat colour, stripes) is read or found empty; no
exception escapes, and every box lies inside the picture. Found this way: a 20x3000 strip ended
``recognize --label-text`` (RapidOCR rounded its side to 0) and a 1598x9 one asked for 7 GB.

Bounded: a picture holds at most 2.5 Mpx, ``max_examples`` keeps each test to seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.vision.detector import PlateDetector
from edge.vision.labels import read_labels
from edge.vision.ocr import TextReader
from edge.vision.proposals import PlateProposer
from edge.vision.recognizer import PlateRecognizer

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MAX_PIXELS = 2_500_000


def _picture(height: int, width: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((height, width, 3), int(rng.integers(0, 256)), np.uint8)
    if kind == "stripes":  # bar-code-like: the label reader's patches and crops run on it
        picture = np.full((height, width, 3), 255, np.uint8)
        picture[:, :: int(rng.integers(2, 9))] = 0
        return picture
    cells = rng.integers(0, 2, (height // 8 + 1, width // 8 + 1, 1), dtype=np.uint8) * 255
    return np.ascontiguousarray(np.kron(cells, np.ones((8, 8, 3), np.uint8))[:height, :width])


KINDS = st.sampled_from(["noise", "flat", "stripes", "blocks"])
sides = st.one_of(st.integers(1, 40), st.integers(41, 700), st.integers(701, 4000))
any_shape = st.builds(_picture, sides, sides, KINDS, st.integers(0, 2**16))
# Strips, where the OCR's own resizing went wrong: a short side of a few pixels, a long one of
# hundreds to thousands, either way up.
strips = st.builds(lambda short, long, tall, kind, seed: _picture(
    *((long, short) if tall else (short, long)), kind, seed),
    st.integers(1, 30), st.integers(300, 4000), st.booleans(), KINDS, st.integers(0, 2**16))
pictures = st.one_of(any_shape, strips).filter(lambda p: p.shape[0] * p.shape[1] <= MAX_PIXELS)


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader()


@pytest.fixture(scope="module")
def recognizer(reader: TextReader) -> PlateRecognizer:
    return PlateRecognizer(PlateDetector(), reader)


def _inside(box: tuple[int, int, int, int] | None, picture: np.ndarray) -> bool:
    if box is None:
        return True
    x, y, w, h = box
    height, width = picture.shape[:2]
    return min(x, y, w, h) >= 0 and x + w <= width and y + h <= height


@FUZZ
@given(pictures)
def test_any_picture_is_read_for_plates_or_found_empty(recognizer: PlateRecognizer,
                                                       picture: np.ndarray) -> None:
    for read in recognizer.read(picture):
        assert _inside(read.box, picture)


@FUZZ
@given(pictures)
def test_any_picture_gives_plate_proposals_or_none(reader: TextReader,
                                                   picture: np.ndarray) -> None:
    proposer = PlateProposer(reader, budget_ms=1000)
    for found in proposer.propose(picture):
        assert _inside(found.box, picture)


@FUZZ
@given(pictures)
# Longer than 1920 px, one pixel across: the copy the label reader's second pass works on
# (1920 px a side) rounded that pixel to none, and OpenCV's resize raised.
@example(_picture(1, 4000, "stripes", 0))
@example(_picture(4000, 1, "flat", 0))
def test_any_picture_is_read_for_labels_and_their_text_or_found_empty(
        reader: TextReader, picture: np.ndarray) -> None:
    for label in read_labels(picture, reader):
        assert _inside(label.box, picture)
