"""Measure the plate detector and the recogniser on held-out rendered scenes (MODEL_CARD.md).

    python -m training.evaluate_plates [--scenes 200] [--seed 1000] [--model PATH] [--photos DIR]
                                       [--real [DIR]]

Detector: recall and precision at IoU >= 0.5 over gate scenes rendered with a seed the training
never used. Recogniser (detector + OCR + format): share of scripted plates read exactly, per
region and style, on the same scenes and on tight crops. ``--photos`` adds real photographs:
each file named ``<PLATE>.jpg`` (or with ``_`` for unknown text), reported one by one.

``--real`` adds the real photographs' validation split (``plates_real_split.json`` beside this
file names them; the training never reads them), per source and region: detector recall and
precision at IoU >= 0.5 where the source gives boxes, plates read exactly where it gives
texts, time per image (detection, and detection + OCR) p50/p95 on one core, and for sources
without boxes how many images got a detection at all. DIR is the data set
(``labels.jsonl``, ``images/``); by default ``$PLATES_REAL``, else ``../shared/data/plates-real``
beside the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge.vision.detector import DEFAULT_MODEL, PlateDetector
from edge.vision.ocr import TextReader
from edge.vision.recognizer import PlateRecognizer
from firmware_sim.camera.plates import Region, random_plate, render_plate
from firmware_sim.camera.scenes import gate_scene


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def evaluate(model: Path, scenes: int, seed: int) -> dict[str, object]:
    detector = PlateDetector(model)
    recognizer = PlateRecognizer(detector, TextReader())
    rng = random.Random(seed)
    truths = hits = detections = true_dets = 0
    by_style: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    detect_ms: list[float] = []
    read_ms: list[float] = []
    for _ in range(scenes):
        scene = gate_scene(rng, 1280, 720, max_vehicles=2)
        started = time.perf_counter()
        found = detector.detect(scene.image)
        detect_ms.append((time.perf_counter() - started) * 1000)
        detections += len(found)
        true_dets += sum(1 for d in found if any(iou(d.box, t.box) >= 0.5 for t in scene.plates))
        truths += len(scene.plates)
        hits += sum(1 for t in scene.plates if any(iou(d.box, t.box) >= 0.5 for d in found))
        started = time.perf_counter()
        texts = {r.plate.text for r in recognizer.read(scene.image, crop_fallback=False)}
        read_ms.append((time.perf_counter() - started) * 1000)
        for t in scene.plates:
            by_style[t.spec.style][1] += 1
            by_style[t.spec.style][0] += t.spec.text in texts
    crops_ok = 0
    crops = 0
    regions: tuple[Region, ...] = ("cn", "eu", "us")
    for region in regions * 30:
        spec = random_plate(rng, region)
        reads = recognizer.read(render_plate(spec))
        crops += 1
        crops_ok += bool(reads) and reads[0].plate.text == spec.text
    read_total = sum(v[0] for v in by_style.values())
    return {
        "scenes": scenes,
        "plates": truths,
        "detector_recall_iou50": round(hits / max(1, truths), 3),
        "detector_precision_iou50": round(true_dets / max(1, detections), 3),
        "plates_read_exactly": round(read_total / max(1, truths), 3),
        "by_style": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_style.items())},
        "tight_crops_read_exactly": f"{crops_ok}/{crops}",
        "detect_ms_p50_1280x720": round(float(np.percentile(detect_ms, 50)), 1),
        "scene_read_ms_p50": round(float(np.percentile(read_ms, 50)), 1),
    }


SPLIT_FILE = Path(__file__).with_name("plates_real_split.json")
# The photographs are not in the repo (licences, size): beside it, or where PLATES_REAL says.
REAL_DATA = Path(os.environ.get(
    "PLATES_REAL", Path(__file__).resolve().parents[2] / "shared" / "data" / "plates-real"))
# The recogniser's region per source region ("other": Open Images, mostly US and EU plates).
_RECOGNISER_REGION: dict[str, str] = {"cn": "cn", "eu": "eu", "other": "auto"}


def validation_split() -> set[str]:
    """The real photographs kept for evaluation (paths as in ``labels.jsonl``)."""
    return set(json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["validation"])


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def evaluate_real(model: Path, data: Path) -> dict[str, Any]:
    """The validation split of the real photographs, per source and region (see the module)."""
    from edge.vision.capture import decode_image

    keep = validation_split()
    rows = [json.loads(line) for line in (data / "labels.jsonl").read_text(encoding="utf-8")
            .splitlines() if line.strip()]
    rows = [r for r in rows if r["file"] in keep]
    detector = PlateDetector(model)
    reader = TextReader()
    recognizers = {region: PlateRecognizer(detector, reader, region=choice)  # type: ignore[arg-type]
                   for region, choice in _RECOGNISER_REGION.items()}
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {
        "images": 0, "plates": 0, "found": 0, "detections": 0, "true_detections": 0,
        "texts": 0, "read_exactly": 0, "images_with_a_detection": 0,
        "detect_ms": [], "read_ms": []})
    for row in rows:
        image = decode_image(data / row["file"])
        boxes = [(b[0], b[1], b[2], b[3]) for b in row["boxes"]]
        started = time.thread_time()
        found = detector.detect(image)
        detect_ms = (time.thread_time() - started) * 1000
        recognizer = recognizers.get(row["region"], recognizers["other"])
        started = time.thread_time()
        read = {r.plate.text for r in recognizer.read(image)}
        read_ms = (time.thread_time() - started) * 1000
        texts = row.get("texts") or []
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
            g["texts"] += len(texts)
            g["read_exactly"] += sum(1 for t in texts if t in read)
    report: dict[str, Any] = {"images": len(rows), "split": SPLIT_FILE.name,
                              "by_source": {}, "by_region": {}}
    for (kind, name), g in sorted(groups.items()):
        entry: dict[str, Any] = {"images": g["images"],
                                 "images_with_a_detection": g["images_with_a_detection"]}
        if g["plates"]:
            entry["plates"] = g["plates"]
            entry["detector_recall_iou50"] = round(g["found"] / g["plates"], 3)
            entry["detector_precision_iou50"] = (round(g["true_detections"] / g["detections"], 3)
                                                 if g["detections"] else None)
        if g["texts"]:
            entry["read_exactly"] = f"{g['read_exactly']}/{g['texts']}"
        entry["detect_ms_p50_p95"] = [_pct(g["detect_ms"], 50), _pct(g["detect_ms"], 95)]
        entry["read_ms_p50_p95"] = [_pct(g["read_ms"], 50), _pct(g["read_ms"], 95)]
        report[f"by_{kind}"][name] = entry
    return report


def photos(model: Path, folder: Path) -> list[dict[str, Any]]:
    from edge.vision.capture import decode_image

    recognizer = PlateRecognizer(PlateDetector(model), TextReader())
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in {".jpg", ".jpeg", ".png"}:
            continue
        reads = recognizer.read(decode_image(path))
        out.append({"file": path.name, "expected": path.stem,
                    "read": [r.plate.text for r in reads],
                    "detections": [d.box for d in recognizer.detector.detect(decode_image(path))]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate_plates", description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--real", type=Path, nargs="?", const=REAL_DATA, default=None,
                        metavar="DIR", help="add the real photographs' validation split")
    args = parser.parse_args(argv)
    report: dict[str, object] = {"renderings": evaluate(args.model, args.scenes, args.seed)}
    if args.real is not None:
        report["real_validation"] = evaluate_real(args.model, args.real)
    if args.photos is not None:
        report["photos"] = photos(args.model, args.photos)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
