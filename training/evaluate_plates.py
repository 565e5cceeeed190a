"""Measure the plate detector and the recogniser on held-out rendered scenes (MODEL_CARD.md).

    python -m training.evaluate_plates [--scenes 200] [--seed 1000] [--model PATH] [--photos DIR]
                                       [--real [DIR]]

Detector: recall and precision at IoU >= 0.5 over gate scenes rendered with a seed the training
never used. Recogniser (detector + OCR + format): share of scripted plates read exactly, per
region and style, on the same scenes and on tight crops. ``--photos`` adds real photographs:
each file named ``<PLATE>.jpg`` (or with ``_`` for unknown text), reported one by one.

``--real`` adds the real photographs' validation split, per source and region, as
``python -m edge.vision.evaluate --real`` reports it (see there), next to the renderings.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge.vision.detector import DEFAULT_MODEL, PlateDetector, iou
from edge.vision.evaluate import REAL_DATA, evaluate_real
from edge.vision.ocr import TextReader
from edge.vision.recognizer import PlateRecognizer
from firmware_sim.camera.plates import Region, random_plate, render_plate
from firmware_sim.camera.scenes import gate_scene


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
