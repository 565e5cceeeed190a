"""`python -m edge recognize PATH...`: plates and labels in images and videos, one JSON line each.

    {"file": ..., "plates": [{"text": ..., "confidence": ..., "box": [x, y, w, h]}],
     "labels": [{"format": ..., "text": ...}], "ms": ...}

Folders are walked recursively (images and videos, sorted). ``file`` is the path as given (for a
folder, the folder joined with the file's path inside it); ``ms`` is that file's processing
time. Plates come best first. In a video each vehicle passage counts once (tracked and voted
over its frames, as at the gate). A file that cannot be read still gets its line, with
``"error"``, the reason is logged, and the exit status is 1; the other files are unaffected.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from decisions.plate_format import COUNTRIES

# The model path is spelled here, not imported, so `python -m edge` stays light to start.
DEFAULT_MODEL = Path(__file__).parent / "models" / "plate_detector.onnx"


def _recognize(args: argparse.Namespace) -> int:
    if args.plates_only and args.labels_only:
        print("edge recognize: --plates-only and --labels-only exclude each other", file=sys.stderr)
        return 2
    from edge.vision.recognize import Recognize, expand_inputs

    runner = Recognize(args)
    failed = 0
    for path in expand_inputs(args.paths):
        line, ok = runner.one(path)
        failed += not ok
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return 1 if failed else 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "recognize", help="read plates and labels in images and videos (JSON lines)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="images, videos or folders")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--plates-only", action="store_true")
    only.add_argument("--labels-only", action="store_true")
    parser.add_argument("--label-text", action="store_true",
                        help="when no label symbol reads, read the printed text by OCR (slow)")
    parser.add_argument("--no-proposals", action="store_true",
                        help="the plate detector alone: no text-detector proposals where it "
                             "finds nothing")
    parser.add_argument("--region", choices=("cn", "eu", "us", "auto"), default="auto")
    parser.add_argument("--country", choices=sorted(COUNTRIES), default=None,
                        help="where the camera stands: its plate formats win ties")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="plate detector (ONNX)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for inference")
    parser.set_defaults(func=_recognize)

