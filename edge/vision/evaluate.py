"""The plate detector and recogniser on real photographs: the validation split, per source.

    python -m edge.vision.evaluate --real [DIR] [--model PATH]

The split is fixed in ``plates_real_split.json`` beside this file (the training never reads
those files): the Romanian dash-cam videos ``dayride_type1_003`` and ``nightride_type3_001``
whole (frames of one video are near-duplicates), Open Images photos whose image ID hashes to 0
mod 5, and every Chinese scene and crop (no boxes, or crops with texts: evaluation only).
Reported per source and per region: detector recall and precision at IoU >= 0.5 where the
source has boxes, plates read exactly where it has texts, how many images got a detection, and
CPU ms per image on one core (detection; detection + OCR) p50/p95. Plates read: labelled plate
boxes with a format-valid read whose box centre lies in them, and reads on no labelled plate.
Read exactly: labelled plates of known text with a read of that text on them; the real scenes'
sources give boxes only, so the texts of the Romanian frames and of the Open Images photos
(38 of their 102 plates: the rest too small or blurred to be sure) were read by eye
(``plates_real_texts.json``, hashed). The Chinese scenes come without boxes: theirs were drawn
by eye, with their texts (the same file). Each figure twice: the detector alone, and
``with_proposals``: the second proposal stage (``edge.vision.proposals``) run on the images
where the detector read nothing. ``--development``: the same figures on Open Images photos of the
training split whose plates were read by eye (``plates_real_dev_texts.json``, 130 plates), for
trying a reading rule without looking at the validation plates. DIR is the data set
(``labels.jsonl``, ``images/``): by default ``$PLATES_REAL``, else ``../shared/data/plates-real``
beside the repo. The same figures next to the renderings: ``python -m training.evaluate_plates
--real`` (renderings need firmware_sim, which the gateway does not import).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from decisions.plate_format import COUNTRIES, FORMATS
from edge.vision.detector import DEFAULT_MODEL, PlateDetector, iou
from edge.vision.ocr import TextReader
from edge.vision.proposals import DEFAULT_BUDGET_MS, PlateProposer
from edge.vision.recognizer import PlateRecognizer

SPLIT_FILE = Path(__file__).with_name("plates_real_split.json")
# Texts read by eye for real scenes whose source gives boxes only (hashed: see the file).
TEXTS_FILE = Path(__file__).with_name("plates_real_texts.json")
# The same for Open Images photos of the training split: for developing reading rules without
# looking at the validation plates (``--development``).
DEV_TEXTS_FILE = Path(__file__).with_name("plates_real_dev_texts.json")
# The photographs are not in the repo (licences, size): beside it, or where PLATES_REAL says.
REAL_DATA = Path(os.environ.get(
    "PLATES_REAL", Path(__file__).resolve().parents[3] / "shared" / "data" / "plates-real"))
# The recogniser's region per source region ("other": Open Images, mostly US and EU plates).
_RECOGNISER_REGION: dict[str, str] = {"cn": "cn", "eu": "eu", "other": "auto"}


def validation_split() -> set[str]:
    """The real photographs kept for evaluation (paths as in ``labels.jsonl``)."""
    return set(json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["validation"])


def text_key(text: str) -> str:
    """How a plate text is compared with the by-eye texts (which are stored hashed)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _truths(row: dict[str, Any], by_eye: dict[str, list[str | None]]) -> list[str | None]:
    """Per labelled box, the key of its plate text, or None where nobody knows it."""
    if row.get("texts"):
        return [text_key(t) for t in row["texts"]]
    return list(by_eye.get(row["file"], [None] * len(row["boxes"])))


def _with_boxes_by_eye(row: dict[str, Any], boxes: dict[str, list[list[float]]]) -> dict[str, Any]:
    """The row with the boxes drawn by eye where its source gives none."""
    if row["boxes"] or row["file"] not in boxes:
        return row
    return {**row, "boxes": boxes[row["file"]]}


def _read_exactly(reads: Sequence[tuple[tuple[float, float, float, float], str]],
                  boxes: list[tuple[float, float, float, float]],
                  truths: list[str | None]) -> int:
    """Labelled plates of known text with a read of exactly that text on them."""
    return sum(1 for box, truth in zip(boxes, truths, strict=True) if truth is not None
               and any(_centre_in(b, box) and text_key(text) == truth for b, text in reads))


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _centre_in(box: tuple[float, float, float, float],
               truth: tuple[float, float, float, float]) -> bool:
    """A read's box centre inside a labelled plate box: the read is of that plate. (A text
    line found by the proposal stage is the plate's characters only, so IoU with the labelled
    plate box would be low even when right.)"""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return truth[0] <= cx <= truth[0] + truth[2] and truth[1] <= cy <= truth[1] + truth[3]


def margin_crop(image: np.ndarray, box: Sequence[float], key: str) -> np.ndarray:
    """The plate at ``box`` cut out with a margin, as a plate crop handed to ``recognize``
    comes: 5-30 % of the plate's width each side, 10-50 % of its height above and below, drawn
    from a generator seeded by ``key`` (the same crop every run)."""
    rng = random.Random(key)
    x, y, w, h = box
    mx, my = rng.uniform(0.05, 0.3) * w, rng.uniform(0.1, 0.5) * h
    height, width = image.shape[:2]
    return image[max(0, int(y - my)) : min(height, int(y + h + my)),
                 max(0, int(x - mx)) : min(width, int(x + w + mx))]


def _reads_figures(reads: Sequence[tuple[tuple[float, float, float, float], str]],
                   boxes: list[tuple[float, float, float, float]]) -> tuple[int, int]:
    """(labelled plates with a format-valid read on them, reads on no labelled plate)."""
    on = sum(1 for t in boxes if any(_centre_in(b, t) for b, _ in reads))
    off = sum(1 for b, _ in reads if not any(_centre_in(b, t) for t in boxes))
    return on, off


def evaluate_real(model: Path, data: Path, *, proposals: bool = True,
                  proposal_budget_ms: float = DEFAULT_BUDGET_MS,
                  country: str | None = None, development: bool = False) -> dict[str, Any]:
    """The validation split of the real photographs, per source and region (see the module).
    ``country``: the camera setting, given to the sources of its region (``ro``: the Romanian
    frames are read as a camera standing in Romania would read them). ``development``: instead,
    the training photos whose plates were read by eye (``DEV_TEXTS_FILE``); the detector trained
    on them, so its figures there flatter it, and the reads are what they are for."""
    import cv2

    from edge.vision.capture import decode_image

    cv2.setNumThreads(1)  # one core, as the gateway runs (onnxruntime: threads=1 below)
    rows = [json.loads(line) for line in (data / "labels.jsonl").read_text(encoding="utf-8")
            .splitlines() if line.strip()]
    by_eye_file = json.loads((DEV_TEXTS_FILE if development else TEXTS_FILE)
                             .read_text(encoding="utf-8"))
    by_eye = by_eye_file["texts_sha256_16"]
    keep = set(by_eye) - validation_split() if development else validation_split()
    rows = [_with_boxes_by_eye(r, by_eye_file.get("boxes_by_eye", {})) for r in rows
            if r["file"] in keep]
    detector = PlateDetector(model)
    reader = TextReader()
    home = {f.region for f in FORMATS if country in f.countries}
    recognizers = {region: PlateRecognizer(detector, reader, region=choice,  # type: ignore[arg-type]
                                           country=country if region in home else None)
                   for region, choice in _RECOGNISER_REGION.items()}
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {
        "images": 0, "plates": 0, "found": 0, "detections": 0, "true_detections": 0,
        "texts": 0, "read_exactly": 0, "images_with_a_detection": 0,
        "detect_ms": [], "read_ms": [],
        "plates_read": 0, "reads_elsewhere": 0, "read_exactly_with_proposals": 0,
        "plates_read_with_proposals": 0, "reads_elsewhere_with_proposals": 0,
        "read_ms_with_proposals": [], "crops": 0, "crops_read_exactly": 0, "crop_ms": []})
    proposers = {region: PlateProposer(reader, region=choice,  # type: ignore[arg-type]
                                       country=country if region in home else None,
                                       budget_ms=proposal_budget_ms)
                 for region, choice in _RECOGNISER_REGION.items()}
    for row in rows:
        image = decode_image(data / row["file"])
        boxes = [(b[0], b[1], b[2], b[3]) for b in row["boxes"]]
        started = time.thread_time()
        found = detector.detect(image)
        detect_ms = (time.thread_time() - started) * 1000
        recognizer = recognizers.get(row["region"], recognizers["other"])
        started = time.thread_time()
        plates = [(r.box, r.plate.text) for r in recognizer.read(image)]
        read_ms = (time.thread_time() - started) * 1000
        with_proposals, read_ms_with = plates, read_ms
        if proposals and not plates:  # the second stage runs only where the first read nothing
            proposer = proposers.get(row["region"], proposers["other"])
            started = time.thread_time()
            with_proposals = [(p.box, p.plate.text)
                              for p in proposer.propose(image, spent_ms=read_ms)]
            read_ms_with += (time.thread_time() - started) * 1000
        truths = _truths(row, by_eye)
        # Each plate of known text also as a crop with a margin (a crop's margin stops at the
        # picture's sides: the crops of a source of crops are the pictures themselves).
        crops: list[tuple[bool, float]] = []
        for index, (box, truth) in enumerate(zip(boxes, truths, strict=True)):
            if truth is None:
                continue
            crop = margin_crop(image, box, f"{row['file']}#{index}")
            started = time.thread_time()
            crop_reads = recognizer.read(crop)
            crops.append((bool(crop_reads) and text_key(crop_reads[0].plate.text) == truth,
                          (time.thread_time() - started) * 1000))
        for key in (("source", row["source"]), ("region", row["region"])):
            g = groups[key]
            g["detect_ms"].append(detect_ms)
            g["read_ms"].append(read_ms)
            g["images"] += 1
            g["images_with_a_detection"] += bool(found)
            g["plates"] += len(boxes)
            g["found"] += sum(1 for t in boxes if any(iou(d.box, t) >= 0.5 for d in found))
            if boxes:  # a detection on a source without boxes is neither right nor wrong
                g["detections"] += len(found)
                g["true_detections"] += sum(1 for d in found
                                            if any(iou(d.box, t) >= 0.5 for t in boxes))
            g["texts"] += sum(1 for t in truths if t is not None)
            g["read_exactly"] += _read_exactly(plates, boxes, truths)
            g["read_ms_with_proposals"].append(read_ms_with)
            g["crops"] += len(crops)
            g["crops_read_exactly"] += sum(ok for ok, _ in crops)
            g["crop_ms"].extend(ms for _, ms in crops)
            g["read_exactly_with_proposals"] += _read_exactly(with_proposals, boxes, truths)
            if boxes:
                on, off = _reads_figures(plates, boxes)
                g["plates_read"] += on
                g["reads_elsewhere"] += off
                on, off = _reads_figures(with_proposals, boxes)
                g["plates_read_with_proposals"] += on
                g["reads_elsewhere_with_proposals"] += off
    split = f"{DEV_TEXTS_FILE.name} (training photos)" if development else SPLIT_FILE.name
    report: dict[str, Any] = {"images": len(rows), "split": split,
                              "country": country, "by_source": {}, "by_region": {}}
    for (kind, name), g in sorted(groups.items()):
        entry: dict[str, Any] = {"images": g["images"],
                                 "images_with_a_detection": g["images_with_a_detection"]}
        if g["plates"]:
            entry["plates"] = g["plates"]
            entry["detector_recall_iou50"] = round(g["found"] / g["plates"], 3)
            entry["detector_precision_iou50"] = (round(g["true_detections"] / g["detections"], 3)
                                                 if g["detections"] else None)
            entry["plates_read"] = f"{g['plates_read']}/{g['plates']}"
            entry["reads_on_no_labelled_plate"] = g["reads_elsewhere"]
        if g["texts"]:
            entry["read_exactly"] = f"{g['read_exactly']}/{g['texts']}"
        if g["crops"]:
            entry["crops_read_exactly"] = f"{g['crops_read_exactly']}/{g['crops']}"
            entry["crop_read_ms_p50_p95"] = [_pct(g["crop_ms"], 50), _pct(g["crop_ms"], 95)]
        entry["detect_ms_p50_p95"] = [_pct(g["detect_ms"], 50), _pct(g["detect_ms"], 95)]
        entry["read_ms_p50_p95"] = [_pct(g["read_ms"], 50), _pct(g["read_ms"], 95)]
        if proposals:
            # Detector, then the proposal stage where the detector read nothing.
            second: dict[str, Any] = {}
            if g["plates"]:
                second["plates_read"] = f"{g['plates_read_with_proposals']}/{g['plates']}"
                second["reads_on_no_labelled_plate"] = g["reads_elsewhere_with_proposals"]
            if g["texts"]:
                second["read_exactly"] = f"{g['read_exactly_with_proposals']}/{g['texts']}"
            second["read_ms_p50_p95"] = [_pct(g["read_ms_with_proposals"], 50),
                                         _pct(g["read_ms_with_proposals"], 95)]
            entry["with_proposals"] = second
        report[f"by_{kind}"][name] = entry
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.vision.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, nargs="?", const=REAL_DATA, required=True,
                        metavar="DIR", help="the real photographs (labels.jsonl, images/)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--no-proposals", action="store_true",
                        help="the detector alone (no second proposal stage)")
    parser.add_argument("--proposal-budget-ms", type=float, default=DEFAULT_BUDGET_MS,
                        help="CPU ms a scene may cost before the proposal stage stops reading "
                             "candidates (default %(default)s)")
    parser.add_argument("--country", choices=sorted(COUNTRIES), default=None,
                        help="the cameras' country setting, for the sources of its region")
    parser.add_argument("--development", action="store_true",
                        help="the training photos whose plates were read by eye, for developing "
                             "reading rules; not a measure of the detector (it trained on them)")
    args = parser.parse_args(argv)
    if not (args.real / "labels.jsonl").exists():
        print(f"edge.vision.evaluate: no labels.jsonl in {args.real}", file=sys.stderr)
        return 2
    report = evaluate_real(args.model, args.real, proposals=not args.no_proposals,
                           proposal_budget_ms=args.proposal_budget_ms, country=args.country,
                           development=args.development)
    print(json.dumps({"real_development" if args.development else "real_validation": report},
                     ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
