"""Real plates cut out with a margin, as a user hands a crop to ``python -m edge recognize``
(``evaluate.margin_crop``: the validation split's crops). Four Open Images plates whose crops read
nothing before: the detector's box stood a few pixels from the crop's sides and was taken for a
plate cut by the picture's side (a Texas vanity plate in its frame, two small European ones), or
it boxed a Californian plate's frame and read nothing until the close-up look. Three more cut
out tight (their box, no margin), which read nothing until a small picture that reads nothing
was read again with its sides repeated outward."""

from __future__ import annotations

import json

import pytest

from edge.vision.capture import decode_image
from edge.vision.detector import PlateDetector
from edge.vision.evaluate import REAL_DATA, TEXTS_FILE, margin_crop, text_key
from edge.vision.ocr import TextReader
from edge.vision.recognizer import PlateRecognizer

_CROPS = [  # (photo, plate index)
    ("images/openimages_plates_rf/train_3ecd5af7c4f119", 0),
    ("images/openimages_plates_rf/train_0cacb08195a3e2", 0),
    ("images/openimages_plates_rf/train_185d5dfa193c4c", 0),
    ("images/openimages_plates_rf/train_008637722500f2", 0),
]


_TIGHT_CROPS = [
    ("images/openimages_plates_rf/train_008637722500f2", 0),
    ("images/openimages_plates_rf/train_5290f4027491d0", 0),
    ("images/openimages_plates_rf/train_9995dfc6e0eae5", 0),
]


@pytest.mark.parametrize("margin", [True, False])
def test_real_plates_cut_out_are_read_exactly(margin: bool) -> None:
    labels = REAL_DATA / "labels.jsonl"
    if not labels.exists():  # the photographs live beside the repo, not in it
        pytest.skip(f"{labels} is not on this machine")
    rows = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    by_eye = json.loads(TEXTS_FILE.read_text(encoding="utf-8"))["texts_sha256_16"]
    recognizer = PlateRecognizer(PlateDetector(), TextReader(), region="auto")
    for prefix, index in _CROPS if margin else _TIGHT_CROPS:
        (row,) = [r for r in rows if r["file"].startswith(prefix)]
        image = decode_image(REAL_DATA / row["file"])
        if margin:
            crop = margin_crop(image, row["boxes"][index], f"{row['file']}#{index}")
        else:
            x, y, w, h = (round(v) for v in row["boxes"][index])
            crop = image[y : y + h, x : x + w]
        reads = recognizer.read(crop)
        assert reads, f"{row['file']}: nothing read in the crop"
        assert text_key(reads[0].plate.text) == by_eye[row["file"]][index], row["file"]
        x, y, w, h = reads[0].box
        assert x >= 0 and y >= 0 and x + w <= crop.shape[1] and y + h <= crop.shape[0]
