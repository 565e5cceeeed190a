"""The simulated cameras of the raw-signal player: the world's gate frames and labels, rendered,
pushed into the agent's camera pipeline at their simulated time (edge/vision/pushed.py).

Each camera of a story gets a `FrameFeed`: a loopback listener the agent's ``sim:`` camera
source connects to. ``show(image, t_us)`` sends one frame and returns once the agent has judged
it (the barrier: the agent's detector and OCR have run on it before time moves on).

What a frame shows (rendered with firmware_sim/camera, the renderers the benchmarks and the
model training use):

- a `GateFrame` with a plate: the gate with a vehicle carrying that plate, drawn in the
  region's style the plate fits (`plate_style`); without one: the empty gate; covered: a lens
  under a hand or tape, dark and without detail. Every frame has its own sensor noise, as a real
  camera's (a picture repeated byte for byte is what a frozen stream looks like);
- a `LabelFrame`: the stack with the lot's pallet label at a fixed spot (`LABEL_BOX`), torn
  across its symbol when the world says it is unreadable.

The world states a vehicle's frames only while its plate is in view; a camera goes on sending
the empty gate after it, which is what lets the agent close the passage (its ``passage_gap_s``)
and report the plate; and it sent it before (a vehicle is motion against the picture the
camera knew). `with_idle_frames` adds those frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Self

import cv2
import numpy as np

from decisions.plate_format import match
from firmware_sim.camera.plates import PlateSpec
from firmware_sim.camera.scenes import background, draw_vehicle, random_pallet_label, render_label
from firmware_sim.world.signals import GateFrame, LabelFrame, Signal
from ops import timeouts

WIDTH, HEIGHT = 1280, 720
LABEL_BOX = (340, 120, 600, 480)  # x, y, w, h: where a stack camera sees the lot's label
JUDGED_WAIT_S = 60.0  # real time for the agent to judge one frame (detector and OCR on a CPU)
CONNECT_WAIT_S = 60.0  # real time for the agent's camera to connect (it loads its models first)
# The gate's scene: buildings, lane markings and signs, well above the blindness check's
# "covered" detail (a bare scene of sky and tarmac is near it, and a real gate is not bare).
GATE_SCENE = 7
IDLE_S = (1.0, 2.0, 3.0, 4.0)  # empty-gate frames before and after a vehicle's frames


def plate_style(plate: str) -> tuple[str, PlateSpec]:
    """The region a story's plate reads as without repairs (the site's camera is set to it)
    and the plate drawn in that region's style; ``auto`` and an EU-style plate otherwise."""
    for region, style in (("eu", "eu_it"), ("us", "us_ca"), ("cn", "cn_blue")):
        read = match(plate, region)  # type: ignore[arg-type]
        if read is not None and read.repairs == 0 and read.text == plate.replace("-", ""):
            return region, PlateSpec(read.text, plate, region, style)  # type: ignore[arg-type]
    return "auto", PlateSpec(plate.replace("-", ""), plate, "eu", "eu_it")


def _camera_out(image: np.ndarray, t_us: int, sigma: float = 2.0) -> np.ndarray:
    """What the camera sends: the picture with this frame's sensor noise, fine grain and a
    faint uneven shimmer of the light (low resolution, scaled up). Two frames of a still scene
    are never alike: a picture repeated byte for byte is what the blindness check rightly
    calls a frozen stream, and grain alone is averaged away by its small grey copy."""
    rng = np.random.default_rng(t_us)
    height, width = image.shape[:2]
    shimmer = cv2.resize(rng.normal(0, sigma, (height // 16, width // 16)).astype(np.float32),
                         (width, height), interpolation=cv2.INTER_LINEAR)
    grain = rng.normal(0, sigma, (height, width)).astype(np.float32)
    noise = (shimmer + grain)[:, :, None]
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@cache
def _empty_gate(seed: int) -> np.ndarray:
    return background(random.Random(seed), WIDTH, HEIGHT)


def gate_image(frame: GateFrame, seed: int = GATE_SCENE) -> np.ndarray:
    """One gate frame as the camera sees it."""
    if frame.covered:  # a hand or tape over the lens: dark, almost no detail
        dark = np.full((HEIGHT, WIDTH, 3), 8, np.uint8)
        return _camera_out(dark, frame.t_us, 1.0)
    image = _empty_gate(seed).copy()
    if frame.plate is not None:
        _, spec = plate_style(frame.plate)
        w = int(WIDTH * 0.45)
        draw_vehicle(image, random.Random(f"{seed}:{frame.plate}"), x=(WIDTH - w) // 2,
                     y=int(HEIGHT * 0.3), w=w, spec=spec, skew=0.01)
    return _camera_out(image, frame.t_us)


@cache
def _stack(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The stack with the lot's label, intact and torn (its symbol covered)."""
    rng = random.Random(seed)
    image = np.full((HEIGHT, WIDTH, 3), 115, np.uint8)
    label, _ = render_label(random_pallet_label(rng), "Code128")
    x, y, w, h = LABEL_BOX
    scale = min((w - 20) / label.shape[1], (h - 20) / label.shape[0], 1.0)
    label = cv2.resize(label, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    lh, lw = label.shape[:2]
    lx, ly = x + (w - lw) // 2, y + (h - lh) // 2
    image[ly : ly + lh, lx : lx + lw] = label
    torn = image.copy()
    cv2.rectangle(torn, (lx, ly), (lx + lw, ly + int(lh * 0.6)), (70, 90, 120), -1)
    return image, torn


def label_image(frame: LabelFrame, seed: int = 0) -> np.ndarray:
    intact, torn = _stack(seed)
    return _camera_out(intact if frame.readable else torn, frame.t_us)


def with_idle_frames(signals: Iterable[Signal]) -> list[Signal]:
    """The world's signals plus the empty-gate frames a camera sends around each vehicle: at
    ``IDLE_S`` before its first frame (a vehicle is motion against the gate the camera saw
    before it) and after its last (the passage closes once nothing is seen for the camera's
    ``passage_gap_s``), where the camera sends no frame of the world's already."""
    out = list(signals)
    frames: dict[str, list[GateFrame]] = {}
    for s in out:
        if isinstance(s, GateFrame):
            frames.setdefault(s.camera, []).append(s)
    step_us = round(IDLE_S[0] * 1e6)
    for camera, shown in frames.items():
        shown.sort(key=lambda f: f.t_us)
        for i, f in enumerate(shown):
            if f.plate is None:
                continue
            before = shown[i - 1] if i > 0 else None
            after = shown[i + 1] if i + 1 < len(shown) else None
            if not _same_vehicle(before, f, step_us):  # the vehicle's first frame
                since = before.t_us if before is not None else 0
                leading = [f.t_us - round(idle * 1e6) for idle in IDLE_S]
                out += [GateFrame(t, camera, None) for t in leading if t > since]
            if not _same_vehicle(f, after, step_us):  # its last frame
                until = after.t_us if after is not None else None
                trailing = [f.t_us + round(idle * 1e6) for idle in IDLE_S]
                out += [GateFrame(t, camera, None) for t in trailing
                        if until is None or t < until]
    return sorted(out, key=lambda s: s.t_us)


def _same_vehicle(a: GateFrame | None, b: GateFrame | None, within_us: int) -> bool:
    """Two frames in a row of one vehicle's passage (the same plate, close in time)."""
    return (a is not None and b is not None and a.plate == b.plate
            and b.t_us - a.t_us <= within_us)


@dataclass
class FrameFeed:
    """One simulated camera's end of the frame channel (a loopback listener)."""

    camera: str
    port: int = 0
    judged: int = 0  # frames the agent answered
    _server: asyncio.Server | None = None
    _peer: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None

    async def __aenter__(self) -> Self:
        self._peer = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._peer is not None and self._peer.done() and not self._peer.cancelled():
            _, writer = self._peer.result()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self._server is not None:
            self._server.close()

    @property
    def source(self) -> str:
        return f"sim:127.0.0.1:{self.port}"

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._peer is not None
        if self._peer.done():  # one camera, one connection
            writer.close()
            return
        self._peer.set_result((reader, writer))

    async def show(self, image: np.ndarray, t_us: int) -> None:
        """Send one frame; returns once the agent's pipeline has judged it."""
        assert self._peer is not None, "use `async with` first"
        reader, writer = await timeouts.wait_for(asyncio.shield(self._peer), CONNECT_WAIT_S)
        height, width = image.shape[:2]
        header = {"t_us": t_us, "width": width, "height": height}
        writer.write(json.dumps(header).encode() + b"\n")
        writer.write(np.ascontiguousarray(image, np.uint8).tobytes())
        await writer.drain()
        answer = await timeouts.wait_for(reader.readline(), JUDGED_WAIT_S)
        if json.loads(answer or b"null") != {"judged_us": t_us}:
            raise RuntimeError(f"camera {self.camera}: frame at {t_us} answered {answer!r}")
        self.judged += 1
