"""Gate camera throughput: motion-gated detection + plate OCR vs. full-frame OCR on every frame.

    python -m benchmarks camera [--frames 300] [--baseline-frames 12] [--seed 0]

A 1280x720 gate video is rendered (80 % of frames static: empty gate with sensor noise), written
as an MJPEG AVI and decoded with OpenCV, as a camera stream would be. Ours: ``GateWatch`` on every
frame (motion gate, detector around the motion, OCR per plate until its track settles, voting).
Baseline: RapidOCR detection + recognition on the whole frame, every frame, plates kept by format
(measured on an even sample of frames: it is slow, and its cost barely depends on content).

Figures: effective frames/s per core (frames / CPU seconds of this process, ONNX Runtime and
OpenCV on one thread), ms per plate read (detection on the full frame + OCR of the plate, timed
on every frame that shows a vehicle; CPU time of the thread, so that other load on the machine
does not count, wall clock shown too) p50/p95, passages read correctly, peak RSS. Last line: one
JSON object.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks camera", description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--baseline-frames", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

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
        "peak_rss_mb": peak_rss_mb(),
    })
    return 0
