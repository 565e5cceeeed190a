"""Gate camera throughput: motion-gated detection + plate OCR vs. full-frame OCR on every frame.

    python -m benchmarks camera [--frames 300] [--baseline-frames 12] [--seed 0]
                                [--label-photos 20] [--labels-only] [--real DIR | --no-real]

A 1280x720 gate video is rendered (80 % of frames static: empty gate with sensor noise), written
as an MJPEG AVI and decoded with OpenCV, as a camera stream would be. Ours: ``GateWatch`` on every
frame (motion gate, detector around the motion, OCR per plate until its track settles, voting).
Baseline: RapidOCR detection + recognition on the whole frame, every frame, plates kept by format
(measured on an even sample of frames: it is slow, and its cost barely depends on content).

Figures: effective frames/s per core (frames / CPU seconds of this process, ONNX Runtime and
OpenCV on one thread), ms per plate read (detection on the full frame + OCR of the plate, timed
on every frame that shows a vehicle; CPU time of the thread, so that other load on the machine
does not count, wall clock shown too) p50/p95, passages read correctly, peak RSS.

Labels: ``--label-photos`` photographs per symbology (14 symbologies, 960x720, made by
zxing-cpp's encoder and degraded as a camera does: perspective, rotation, blur, glare, low
contrast, JPEG; firmware_sim/camera/label_photos.py), read by ``edge.vision.labels`` and, as the
baseline in the same run, by the reader it replaced (zxing-cpp restricted to Code 128,
DataMatrix, QR and EAN/UPC, its default options) and by zxing-cpp with default options and all
formats. Figures: share read exactly, CPU ms p50/p95 per picture, per symbology too. The same
photos again, each shrunk to 35-60 % into a rendered gate scene and turned a quarter half the
time (``label_photos.in_busy_picture``): the label a small part of a busy picture
(``labels_busy_*``). Half as many photos enlarged 4 times (3840x2880, a phone's 11 megapixels:
the label fills as much of the picture, ``labels_phone_*``). And 22 real camera frames, ZXing's
own Android benchmark (``tests/data/labels-real``, 19 with a symbol): symbols read exactly, by
ours and by zxing-cpp's defaults, and reads of any other text (``labels_real_*``).

Real plates: when the real photographs are on this machine (``--real DIR``, by default where
``edge.vision.evaluate`` looks), the detector's recall and precision and the read time on
their validation split, per source (``python -m edge.vision.evaluate --real`` reports more).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks._report import peak_rss_mb, print_figures, print_table


def _render(path: Path, frames: int, seed: int) -> tuple[list[str], set[int]]:
    """Write the video; return the scripted plates and the frames in which a vehicle is seen."""
    from firmware_sim.camera.streams import gate_frames, gate_script, write_video

    script = gate_script(random.Random(seed), total_frames=frames, moving_fraction=0.2)
    write_video((f.image for f in gate_frames(script, total_frames=frames, seed=seed)), path, 10)
    visible = {i for p in script for i in range(p.start_frame, p.start_frame + p.frames)}
    return [p.plate.text for p in script], visible


_OLD_LABEL_FORMATS = "Code128,DataMatrix,QRCode,EAN13,EAN8,UPCA,UPCE"  # before issue 12


def _labels(per_symbology: int, seed: int, *, busy: bool = False,
            enlarge: float = 1.0) -> dict[str, Any]:
    """Photographed labels read by ours and by the two baselines; figures per reader.
    ``busy``: each photo shrunk into a rendered gate scene, turned a quarter half the time;
    ``enlarge``: each photo enlarged so many times (cubic)."""
    import zxingcpp

    from edge.vision.labels import read_symbols
    from firmware_sim.camera.label_photos import in_busy_picture, label_photos
    from firmware_sim.camera.scenes import gate_scene

    old_formats = zxingcpp.barcode_formats_from_str(_OLD_LABEL_FORMATS)
    readers: dict[str, Callable[[np.ndarray], list[str]]] = {
        "ours": lambda img: [r.text for r in read_symbols(img)],
        "old": lambda img: [b.text for b in zxingcpp.read_barcodes(img, formats=old_formats)],
        "zxing_default": lambda img: [b.text for b in zxingcpp.read_barcodes(img)],
    }
    right: dict[str, dict[str, int]] = {name: defaultdict(int) for name in readers}
    ms: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in readers}
    count: dict[str, int] = defaultdict(int)
    scenes = random.Random(seed + 1)
    for taken in label_photos(per_symbology, seed=seed):
        h, w = taken.image.shape[:2]
        photo = in_busy_picture(taken, gate_scene(scenes, w, h).image, scenes) if busy else taken
        image = photo.image if enlarge == 1.0 else cv2.resize(
            photo.image, None, fx=enlarge, fy=enlarge, interpolation=cv2.INTER_CUBIC)
        count[photo.symbology] += 1
        for name, read in readers.items():
            started = time.thread_time()
            texts = read(image)
            ms[name][photo.symbology].append((time.thread_time() - started) * 1000)
            right[name][photo.symbology] += photo.truth in texts
    total = sum(count.values())
    out: dict[str, Any] = {"photos": total, "size": "x".join(map(str, image.shape[1::-1]))}
    for name in readers:
        every = [t for times in ms[name].values() for t in times]
        out[name] = {
            "read": round(sum(right[name].values()) / total, 3),
            "ms_p50": round(float(np.percentile(every, 50)), 1),
            "ms_p95": round(float(np.percentile(every, 95)), 1),
            "per_symbology": {
                s: {"read": f"{right[name][s]}/{count[s]}",
                    "ms_p50": round(float(np.percentile(ms[name][s], 50)), 1),
                    "ms_p95": round(float(np.percentile(ms[name][s], 95)), 1)}
                for s in count
            },
        }
    return out


REAL_LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "labels-real"


def _labels_real() -> dict[str, Any]:
    """Real photographs of symbols (ZXing's Android benchmark): read by ours and by zxing-cpp's
    defaults; how many symbols each read exactly, and how many reads were of another text."""
    import json

    import zxingcpp

    from edge.vision.labels import read_symbols

    truths = {name: text for name, text in json.loads(
        (REAL_LABELS / "truths.json").read_text(encoding="utf-8")).items()
        if not name.startswith("_")}
    readers: dict[str, Callable[[np.ndarray], list[str]]] = {
        "ours": lambda img: [r.text for r in read_symbols(img)],
        "zxing_default": lambda img: [b.text for b in zxingcpp.read_barcodes(img)],
    }
    out: dict[str, Any] = {}
    symbols = sum(truth is not None for truth in truths.values())
    for name, read in readers.items():
        right = wrong = 0
        ms: list[float] = []
        for file, truth in truths.items():
            image = cv2.imread(str(REAL_LABELS / file), cv2.IMREAD_COLOR)
            assert image is not None, file
            started = time.thread_time()
            texts = read(image)
            ms.append((time.thread_time() - started) * 1000)
            right += truth in texts
            wrong += sum(text != truth for text in texts)
        out[name] = {"read": f"{right}/{symbols}", "wrong_reads": wrong,
                     "ms_p50": round(float(np.percentile(ms, 50)), 1),
                     "ms_p95": round(float(np.percentile(ms, 95)), 1)}
    return out


def _real(data: Path | None) -> dict[str, Any]:
    """The detector on the real photographs' validation split, if they are on this machine."""
    from edge.vision.detector import DEFAULT_MODEL
    from edge.vision.evaluate import REAL_DATA, evaluate_real

    data = data or REAL_DATA
    if not (data / "labels.jsonl").exists():
        print(f"camera: no real photographs at {data}: real figures left out")
        return {}
    report = evaluate_real(DEFAULT_MODEL, data)
    rows: list[tuple[str, Any]] = []
    figures: dict[str, Any] = {}
    for source, f in report["by_source"].items():
        rows.append((source, f))
        if "detector_recall_iou50" in f:
            figures[f"real_{source}_recall"] = f["detector_recall_iou50"]
            figures[f"real_{source}_precision"] = f["detector_precision_iou50"]
        if "read_exactly" in f:
            figures[f"real_{source}_read"] = f["read_exactly"]
        figures[f"real_{source}_read_ms_p95"] = f["read_ms_p50_p95"][1]
        second = f.get("with_proposals", {})
        if "read_exactly" in second:  # what the gateway reads: the detector, then proposals
            figures[f"real_{source}_read_with_proposals"] = second["read_exactly"]
        if second:
            figures[f"real_{source}_read_ms_p95_with_proposals"] = second["read_ms_p50_p95"][1]
        if "crops_read_exactly" in f:  # each plate of known text as a crop with a margin
            figures[f"real_{source}_crops_read"] = f["crops_read_exactly"]
            figures[f"real_{source}_crop_read_ms_p95"] = f["crop_read_ms_p50_p95"][1]
    print_table(f"camera: real photographs, validation split ({report['images']} images)", rows)
    return figures


def _print_labels(figures: dict[str, Any], title: str) -> None:
    rows: list[tuple[str, Any]] = [("photos", figures["photos"])]
    for name in ("ours", "old", "zxing_default"):
        f = figures[name]
        rows.append((f"{name}: read / p50 ms / p95 ms",
                     f"{f['read']:.3f} / {f['ms_p50']} / {f['ms_p95']}"))
    for s in figures["ours"]["per_symbology"]:
        cells = [figures[n]["per_symbology"][s] for n in ("ours", "old", "zxing_default")]
        rows.append((f"  {s} (ours | old | default)",
                     " | ".join(f"{c['read']} {c['ms_p50']}/{c['ms_p95']} ms" for c in cells)))
    print_table(f"camera: {title}, {figures['size']} (read, CPU ms p50/p95)", rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks camera", description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--baseline-frames", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-photos", type=int, default=20, help="per symbology")
    parser.add_argument("--labels-only", action="store_true", help="skip the gate video")
    parser.add_argument("--real", type=Path, default=None, metavar="DIR",
                        help="the real plate photographs (default: edge.vision.evaluate's)")
    parser.add_argument("--no-real", action="store_true", help="skip the real photographs")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    labels = _labels(args.label_photos, args.seed) if args.label_photos > 0 else None
    busy = _labels(args.label_photos, args.seed, busy=True) if args.label_photos > 0 else None
    phone = (_labels(max(1, args.label_photos // 2), args.seed, enlarge=4.0)
             if args.label_photos > 0 else None)
    real_labels = _labels_real() if args.label_photos > 0 else None
    if labels is not None and busy is not None and phone is not None:
        _print_labels(labels, "photographed pallet labels")
        _print_labels(busy, "the same labels small in a busy picture")
        _print_labels(phone, "half of the labels enlarged as a phone's photo")
    if real_labels is not None:
        print_table("camera: real photographs of symbols (ZXing's Android benchmark, 22)", [
            (f"{name}: read / wrong reads / p50 ms / p95 ms",
             f"{f['read']} / {f['wrong_reads']} / {f['ms_p50']} / {f['ms_p95']}")
            for name, f in real_labels.items()])
    label_figures = {} if (labels is None or busy is None or phone is None
                           or real_labels is None) else {
        "labels_read": labels["ours"]["read"],
        "labels_ms_p50": labels["ours"]["ms_p50"],
        "labels_ms_p95": labels["ours"]["ms_p95"],
        "labels_baseline_read": labels["old"]["read"],
        "labels_baseline_ms_p95": labels["old"]["ms_p95"],
        "labels_zxing_default_read": labels["zxing_default"]["read"],
        "labels_zxing_default_ms_p95": labels["zxing_default"]["ms_p95"],
        "labels_per_symbology": {s: v["read"] for s, v in labels["ours"]["per_symbology"].items()},
        "labels_busy_read": busy["ours"]["read"],
        "labels_busy_ms_p95": busy["ours"]["ms_p95"],
        "labels_busy_zxing_default_read": busy["zxing_default"]["read"],
        "labels_phone_read": phone["ours"]["read"],
        "labels_phone_ms_p95": phone["ours"]["ms_p95"],
        "labels_phone_zxing_default_read": phone["zxing_default"]["read"],
        "labels_phone_zxing_default_ms_p95": phone["zxing_default"]["ms_p95"],
        "labels_real_read": real_labels["ours"]["read"],
        "labels_real_wrong_reads": real_labels["ours"]["wrong_reads"],
        "labels_real_ms_p95": real_labels["ours"]["ms_p95"],
        "labels_real_zxing_default_read": real_labels["zxing_default"]["read"],
    }
    if args.labels_only:
        print_figures({**label_figures, "peak_rss_mb": peak_rss_mb()})
        return 0
    real_figures = {} if args.no_real else _real(args.real)

    from decisions.plate_format import match
    from edge.vision.capture import VideoSource
    from edge.vision.detector import PlateDetector
    from edge.vision.gate import GateWatch
    from edge.vision.ocr import TextReader
    from edge.vision.recognizer import PlateRecognizer

    with tempfile.TemporaryDirectory(prefix="camera-bench-") as tmp:
        video = Path(tmp) / "gate.avi"
        truth, visible = _render(video, args.frames, args.seed)
        reader = TextReader(threads=1)
        recognizer = PlateRecognizer(PlateDetector(threads=1), reader)

        # --- ours ---------------------------------------------------------------------------
        source = VideoSource(str(video))
        watch = GateWatch(recognizer, frame_size=(1280, 720))
        passages = []
        ocr_calls = 0
        moved = 0
        n = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while (frame := source.read()) is not None:
            outcome = watch.process(frame.image, frame.at_us)
            passages += outcome.passages
            moved += outcome.moved
            ocr_calls += len(outcome.ocr_ms)
            n += 1
        passages += watch.finish()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        source.close()
        read = sorted(p.plate for p in passages)
        correct = sum(1 for text in truth if text in read)

        # --- latency of one plate read: detection on the full frame + OCR of each plate -----
        source = VideoSource(str(video))
        plate_ms: list[float] = []  # CPU time of this thread: one core's cost, whatever the load
        plate_wall_ms: list[float] = []
        while (frame := source.read()) is not None:
            if frame.index not in visible:
                continue
            started, started_cpu = time.perf_counter(), time.thread_time()
            for det in recognizer.detector.detect(frame.image):
                recognizer.read_box(frame.image, det.box, det.score)
            plate_ms.append((time.thread_time() - started_cpu) * 1000)
            plate_wall_ms.append((time.perf_counter() - started) * 1000)
        source.close()

        # --- baseline: full-frame OCR on every frame ----------------------------------------
        source = VideoSource(str(video))
        picks = set(np.linspace(0, n - 1, args.baseline_frames).astype(int).tolist())
        base_cpu = 0.0
        base_frames = 0
        base_found = 0
        while (frame := source.read()) is not None:
            c0 = time.process_time()
            lines = reader.read_lines(frame.image) if frame.index in picks else None
            if lines is None:
                continue
            base_found += sum(1 for line in lines if match(line.text) is not None)
            base_cpu += time.process_time() - c0
            base_frames += 1
        source.close()

    fps = n / cpu
    baseline_fps = base_frames / base_cpu
    p50 = float(np.percentile(plate_ms, 50)) if plate_ms else float("nan")
    p95 = float(np.percentile(plate_ms, 95)) if plate_ms else float("nan")
    print_table("camera: gate video 1280x720, 80 % static", [
        ("frames", n),
        ("frames with motion (detector ran)", moved),
        ("effective fps per core (CPU time)", fps),
        ("fps wall clock", n / wall),
        ("OCR calls in the gate loop", ocr_calls),
        ("frames timed for plate reads", len(plate_ms)),
        ("plate read ms p50 (detect + OCR, CPU)", p50),
        ("plate read ms p95 (CPU)", p95),
        ("plate read ms p95 (wall clock)", float(np.percentile(plate_wall_ms, 95))
         if plate_wall_ms else float("nan")),
        ("passages scripted", len(truth)),
        ("passages reported", len(passages)),
        ("passages read correctly", correct),
        ("baseline frames (full-frame OCR)", base_frames),
        ("baseline fps per core", baseline_fps),
        ("baseline plate-like lines found", base_found),
        ("peak RSS MB", peak_rss_mb()),
    ])
    print_figures({
        "fps": round(fps, 1),
        "baseline_fps": round(baseline_fps, 2),
        "ratio": round(fps / baseline_fps, 1),
        "plate_ms_p95": round(p95, 1) if plate_ms else None,
        **label_figures,
        **real_figures,
        "peak_rss_mb": peak_rss_mb(),
    })
    return 0
