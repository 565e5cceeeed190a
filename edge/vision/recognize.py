"""Recognise plates and labels in files: what `python -m edge recognize` prints, per file.

Images are read whole (a tight plate crop works too); a video is played through the gate logic,
so each vehicle passage counts once (tracked and voted over its frames).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

from edge.vision.capture import IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoSource, decode_image
from edge.vision.detector import PlateDetector
from edge.vision.gate import GateWatch
from edge.vision.labels import SECOND_PASS_BUDGET_MS, LabelRead, read_labels, read_symbols
from edge.vision.ocr import TextReader
from edge.vision.proposals import PlateProposer
from edge.vision.recognizer import PlateRecognizer

log = logging.getLogger(__name__)

# Labels are looked for in every n-th frame of a video: a label does not change between frames.
_LABEL_EVERY = 10
# A still picture in which plates were read is a vehicle's: its labels get zxing-cpp's plain
# pass over the whole picture (1-5 ms: a symbol that reads plainly is still reported), not the
# second pass's crops (up to ``labels.SECOND_PASS_BUDGET_MS``, 25-35 ms). A road scene paid
# that for symbols nobody expects in it (p95 wall time of 60 Romanian 1280x720 frames: 168 ms
# with it, 131 with --plates-only), a Chinese plate crop doubled its 15-25 ms. A picture
# without a plate read and --labels-only keep the whole label search.
_VEHICLE_LABEL_BUDGET_MS = 0.0


def expand_inputs(paths: list[str]) -> list[str]:
    found: list[str] = []
    for given in paths:
        if Path(given).is_dir():
            for root, dirs, files in os.walk(given):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                        found.append(os.path.join(root, name))
        else:
            found.append(given)
    return found


class Recognize:
    def __init__(self, args: argparse.Namespace) -> None:
        self.want_plates = not args.labels_only
        self.want_labels = not args.plates_only
        # The text detector costs 0.3-1 s a picture: label text is read only when asked for.
        self.label_text = args.label_text
        self.reader = TextReader(threads=args.threads)
        self.plates = PlateRecognizer(
            PlateDetector(Path(args.model), threads=args.threads), self.reader,
            region=args.region, country=args.country,
        ) if self.want_plates else None
        # Where the detector reads nothing, the second proposal stage looks (proposals.py).
        self.proposer = PlateProposer(self.reader, region=args.region, country=args.country) if (
            self.want_plates and not args.no_proposals) else None

    def image(self, path: str) -> dict[str, Any]:
        image = decode_image(Path(path))
        started = time.thread_time()
        plates: list[Any] = self.plates.read(image) if self.plates else []
        if not plates and self.proposer is not None:
            plates = self.proposer.propose(
                image, spent_ms=(time.thread_time() - started) * 1000)
        labels: list[LabelRead] = []
        if self.want_labels:
            # Label text by OCR only when asked, no symbol is readable and it is not a plate.
            labels = read_labels(image, self.reader if self.label_text and not plates else None,
                                 budget_ms=_VEHICLE_LABEL_BUDGET_MS if plates
                                 else SECOND_PASS_BUDGET_MS)
        return {
            "plates": [{"text": r.plate.text, "confidence": r.confidence, "box": list(r.box)}
                       for r in plates],
            "labels": _label_json(labels),
        }

    def video(self, path: str) -> dict[str, Any]:
        source = VideoSource(path)
        watch: GateWatch | None = None
        labels: dict[tuple[str, str], LabelRead] = {}
        passages = []
        frames = 0
        try:
            while (frame := source.read()) is not None:
                frames += 1
                if self.plates is not None:
                    if watch is None:
                        h, w = frame.image.shape[:2]
                        watch = GateWatch(self.plates, frame_size=(w, h), min_reads=1,
                                          proposer=self.proposer)
                    passages.extend(watch.process(frame.image, frame.at_us).passages)
                if self.want_labels and frame.index % _LABEL_EVERY == 0:
                    for label in read_symbols(frame.image):
                        labels.setdefault((label.symbology, label.text), label)
        finally:
            source.close()
        if watch is not None:
            passages.extend(watch.finish())
        if frames == 0:
            raise ValueError(f"{path} has no readable frames")
        passages.sort(key=lambda p: p.confidence, reverse=True)
        return {
            "plates": [{"text": p.plate, "confidence": p.confidence, "box": list(p.best.box)}
                       for p in passages],
            "labels": _label_json(list(labels.values())),
        }

    def one(self, path: str) -> tuple[dict[str, Any], bool]:
        started = time.perf_counter()
        line: dict[str, Any] = {"file": path, "plates": [], "labels": []}
        ok = True
        try:
            if Path(path).suffix.lower() in VIDEO_SUFFIXES:
                line.update(self.video(path))
            else:
                line.update(self.image(path))
        except (OSError, ValueError) as err:
            ok = False
            line["error"] = str(err)
            log.error("cannot recognise file", extra={"file": path, "error": str(err)})
        except Exception as err:  # a fault of ours on one picture must not end the others'
            ok = False
            line["error"] = f"internal error: {type(err).__name__}: {err}"
            log.exception("recognising the file failed", extra={"file": path})
        line["ms"] = round((time.perf_counter() - started) * 1000, 1)
        return line, ok


def _label_json(labels: list[LabelRead]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for label in labels:
        entry: dict[str, Any] = {"format": label.symbology, "text": label.text}
        if label.gs1:
            entry["gs1"] = label.gs1
        out.append(entry)
    return out
