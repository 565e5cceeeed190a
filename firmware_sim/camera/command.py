"""`python -m firmware_sim camera ...`: rendered gate and stack cameras, as files or a stream.

    camera gate  --out gate.mp4 [--frames 300] [--moving 0.2] [--seed 0]   video (or a folder)
    camera stack --out stack/ [--frames 100] [--damaged-after 50]
    camera serve --scene gate [--port 8554] [--fps 10]   MJPEG at http://HOST:PORT/stream.mjpg

A ``gate`` run also writes ``<out>.truth.json``: each passage's plate, direction and frames, so a
demo or a test can check what the gateway reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import threading
from pathlib import Path

from firmware_sim.camera.streams import (
    MjpegServer,
    gate_frames,
    gate_script,
    stack_frames,
    write_images,
    write_video,
)


def _write(frames: object, out: Path, fps: float) -> int:
    if out.suffix.lower() in {".mp4", ".avi"}:
        return write_video(frames, out, fps)  # type: ignore[arg-type]
    return write_images(frames, out)  # type: ignore[arg-type]


def _gate(args: argparse.Namespace) -> int:
    script = gate_script(random.Random(args.seed), total_frames=args.frames,
                         moving_fraction=args.moving)
    frames = (f.image for f in gate_frames(script, total_frames=args.frames, width=args.width,
                                           height=args.height, seed=args.seed))
    count = _write(frames, Path(args.out), args.fps)
    truth = [{"plate": p.plate.text, "shown": p.plate.shown, "region": p.plate.region,
              "direction": p.direction, "start_frame": p.start_frame, "frames": p.frames}
             for p in script]
    Path(f"{args.out}.truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1))
    print(json.dumps({"out": args.out, "frames": count, "passages": len(script)}))
    return 0


def _stack(args: argparse.Namespace) -> int:
    frames = stack_frames(args.frames, seed=args.seed, damaged_after=args.damaged_after,
                          width=args.width, height=args.height)
    count = _write(frames, Path(args.out), args.fps)
    print(json.dumps({"out": args.out, "frames": count}))
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.scene == "gate":
        script = gate_script(random.Random(args.seed), total_frames=args.frames,
                             moving_fraction=args.moving)
        frames = [f.image for f in gate_frames(script, total_frames=args.frames,
                                               width=args.width, height=args.height,
                                               seed=args.seed)]
    else:
        frames = list(stack_frames(args.frames, seed=args.seed, width=args.width,
                                   height=args.height))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with MjpegServer(frames, fps=args.fps, host=args.host, port=args.port) as server:
        print(json.dumps({"url": server.url, "frames": len(frames)}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("camera", help="rendered gate/stack cameras (files, MJPEG)",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="camera_command", required=True)

    def common(p: argparse.ArgumentParser, frames: int) -> None:
        p.add_argument("--frames", type=int, default=frames)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--fps", type=float, default=10.0)
        p.add_argument("--width", type=int, default=1280)
        p.add_argument("--height", type=int, default=720)

    gate = kinds.add_parser("gate", help="a gate video with scripted vehicle passages")
    gate.add_argument("--out", required=True, help=".mp4/.avi file, or a folder for JPEGs")
    gate.add_argument("--moving", type=float, default=0.2, help="share of frames with a vehicle")
    common(gate, 300)
    gate.set_defaults(func=_gate)

    stack = kinds.add_parser("stack", help="a stack camera over labelled pallets")
    stack.add_argument("--out", required=True)
    stack.add_argument("--damaged-after", type=int, default=None)
    common(stack, 100)
    stack.set_defaults(func=_stack)

    serve = kinds.add_parser("serve", help="serve a rendered camera as MJPEG over HTTP")
    serve.add_argument("--scene", choices=("gate", "stack"), default="gate")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8554)
    serve.add_argument("--moving", type=float, default=0.2)
    common(serve, 300)
    serve.set_defaults(func=_serve)
