"""Scripted camera streams: a gate where vehicles come and go, a stack with labelled pallets.

A script is a list of passages (which plate, entering or leaving, when); frames between
passages show the empty gate with sensor noise, as a real camera does (a picture repeated
byte-for-byte is what a frozen stream looks like). Frames come with their truth, and can be
written as a video file, an image folder, or served as an MJPEG stream over HTTP that OpenCV
opens like an IP camera (``http://host:port/stream.mjpg``).
"""

from __future__ import annotations

import logging
import random
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from firmware_sim.camera.plates import PlateSpec, random_plate
from firmware_sim.camera.scenes import PlateTruth, background, draw_vehicle, stack_scene

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScriptedPassage:
    plate: PlateSpec
    direction: Literal["in", "out"]
    start_frame: int
    frames: int  # how long the vehicle is in view


@dataclass(frozen=True, slots=True)
class GateFrame:
    index: int
    image: np.ndarray
    plates: list[PlateTruth]


def gate_script(
    rng: random.Random, *, total_frames: int, moving_fraction: float, frames_per_passage: int = 30
) -> list[ScriptedPassage]:
    """Passages spread over the video so that ``moving_fraction`` of frames show a vehicle."""
    n = max(1, round(total_frames * moving_fraction / frames_per_passage))
    slot = total_frames // n
    return [
        ScriptedPassage(
            plate=random_plate(rng),
            direction=rng.choice(("in", "out")),
            start_frame=i * slot + (slot - frames_per_passage) // 2,
            frames=frames_per_passage,
        )
        for i in range(n)
    ]


def gate_frames(
    script: list[ScriptedPassage],
    *,
    total_frames: int,
    width: int = 1280,
    height: int = 720,
    seed: int = 0,
    noise: float = 2.0,
) -> Iterator[GateFrame]:
    """Frames of the gate. A vehicle entering drives away from the camera (from the bottom
    of the picture towards the gate, shrinking); one leaving comes towards it."""
    scene_rng = random.Random(seed)
    empty = background(scene_rng, width, height)
    noise_rng = np.random.default_rng(seed)
    # Pre-drawn noise, cycled: real sensors never repeat a frame exactly, and drawing fresh
    # noise for every 1280x720 frame would dominate the time to render a long video.
    noise_bank = [noise_rng.normal(0, noise, (height, width, 1)).astype(np.int16)
                  for _ in range(7)]
    for index in range(total_frames):
        image = empty.copy()
        truths: list[PlateTruth] = []
        for k, passage in enumerate(script):
            t = index - passage.start_frame
            if not 0 <= t < passage.frames:
                continue
            progress = t / max(1, passage.frames - 1)
            if passage.direction == "out":
                progress = 1 - progress
            # progress 0: close to the camera (bottom, large); 1: at the gate (middle, small).
            w = int(width * (0.55 - 0.33 * progress))
            x = (width - w) // 2 + int(width * 0.05 * np.sin(k))
            y = int(height * (0.95 - 0.55 * progress)) - int(w * 0.8)
            truth = draw_vehicle(image, random.Random(seed * 1000 + k), x=x, y=max(0, y), w=w,
                                 spec=passage.plate, skew=0.02)
            if truth is not None:
                truths.append(truth)
        noisy = np.clip(image.astype(np.int16) + noise_bank[index % len(noise_bank)], 0, 255)
        yield GateFrame(index, noisy.astype(np.uint8), truths)


def write_video(frames: Iterator[np.ndarray], path: Path, fps: float) -> int:
    """Write frames as an MP4 (or AVI by suffix) file; returns the frame count."""
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
                writer = cv2.VideoWriter(str(path), fourcc, fps, (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"cannot write video {path}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count


def write_images(frames: Iterator[np.ndarray], folder: Path, quality: int = 92) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        count += 1
    return count


def stack_frames(total_frames: int, *, seed: int = 0, damaged_after: int | None = None,
                 width: int = 1280, height: int = 720) -> Iterator[np.ndarray]:
    """A still stack camera; from frame ``damaged_after`` on, the labels are torn."""
    intact = stack_scene(random.Random(seed), width, height).image
    damaged = stack_scene(random.Random(seed), width, height, damaged=True).image
    rng = np.random.default_rng(seed)
    for index in range(total_frames):
        base = damaged if damaged_after is not None and index >= damaged_after else intact
        noise = rng.normal(0, 2.0, (*base.shape[:2], 1)).astype(np.int16)
        yield np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)


class MjpegServer:
    """Serve frames as ``multipart/x-mixed-replace`` JPEGs at ``/stream.mjpg``, at ``fps``.

    Used as a context manager; ``url`` is where OpenCV (or a browser) connects. ``stop()`` ends
    the stream abruptly, as a camera losing power does.
    """

    def __init__(self, frames: list[np.ndarray], *, fps: float = 10.0, host: str = "127.0.0.1",
                 port: int = 0, loop: bool = True) -> None:
        encoded = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
                   for f in frames]
        interval = 1.0 / fps
        stopping = threading.Event()
        self._stopping = stopping

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not stopping.is_set() and (loop or i < len(encoded)):
                        jpeg = encoded[i % len(encoded)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                        self.wfile.write(jpeg + b"\r\n")
                        i += 1
                        time.sleep(interval)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, format: str, *args: object) -> None:
                log.debug(format, *args)

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
