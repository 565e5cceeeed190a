"""A camera whose frames come with their capture time: the simulated site's camera.

``source = "sim:127.0.0.1:PORT"`` in a camera's config. The agent connects to the controller
listening there (loopback only, as the clock's control channel: the gateway opens no
listening socket) and reads frames, each dated by the controller at the moment the simulated
world took it; with the agent on a simulated clock (``--clock sim:...``) the scenario player
shows a vehicle, a label or a covered lens at the moment its story says.

The channel, per frame: one header line of JSON, at most 256 bytes,
``{"t_us": N, "width": W, "height": H}``, then exactly ``W * H * 3`` bytes of BGR pixels (no
image decoder sees untrusted bytes; 16..3840 by 16..2160 pixels, so a frame is at most 25 MB).
A frame is judged no earlier than its time (the source sleeps on the agent's clock until then,
up to an hour: a picture cannot be judged before it is taken), frames go forward in time, and
each is answered ``{"judged_us": N}`` once the camera's pipeline has judged it (the player's
barrier: it moves time on only after the agent has seen the frame).
Anything else ends the session: the camera is lost, and reconnects after its backoff as any
camera does. A channel the controller closes between frames has ended, as a file does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import numpy as np

from edge.vision.camera import TimedFrame
from edge.vision.capture import CaptureError
from ops import timeouts
from ops.backoff import Backoff
from ops.clock import Clock
from ops.supervised import BatchSource, HealthCallback, Supervised, describe

log = logging.getLogger(__name__)

SCHEME = "sim:"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_HEADER = 256
MIN_SIDE, MAX_WIDTH, MAX_HEIGHT = 16, 3840, 2160
# Plausible capture times (2000..2100): a frame dated outside is a broken controller.
MIN_T_US, MAX_T_US = 946_684_800_000_000, 4_102_444_800_000_000
CONNECT_TIMEOUT_S = 10.0
# A frame may wait for the agent's clock, but not for long: one dated further ahead is a broken
# controller, not a picture (it would hold the camera for as long as it says).
MAX_AHEAD_S = 3600.0


class FrameChannelError(CaptureError):
    """The controller broke the frame channel's rules (the session ends)."""


def parse_pushed(spec: str) -> tuple[str, int]:
    """``sim:HOST:PORT`` -> (host, port); ValueError says why not (config validation)."""
    host, _, port_text = spec.removeprefix(SCHEME).rpartition(":")
    if not spec.startswith(SCHEME) or not host or not port_text.isdigit():
        raise ValueError(f"a simulated camera is 'sim:HOST:PORT', not {spec!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"frame channel port out of range: {port}")
    if host not in LOOPBACK:
        raise ValueError(f"the frame channel is on loopback only, not {host!r}")
    return host, port


def parse_header(line: bytes) -> tuple[int, int, int]:
    """A frame's header line -> (t_us, width, height); FrameChannelError says why not."""
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise FrameChannelError(f"frame header is not JSON: {err}") from err
    if not isinstance(header, dict) or set(header) != {"t_us", "width", "height"}:
        raise FrameChannelError("frame header must be {t_us, width, height}")
    values = [header["t_us"], header["width"], header["height"]]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in values):
        raise FrameChannelError("frame header values must be integers")
    t_us, width, height = values
    if not MIN_T_US <= t_us <= MAX_T_US:
        raise FrameChannelError(f"frame time out of range: {t_us}")
    if not (MIN_SIDE <= width <= MAX_WIDTH and MIN_SIDE <= height <= MAX_HEIGHT):
        raise FrameChannelError(f"frame size out of range: {width}x{height}")
    return t_us, width, height


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, np.ndarray] | None:
    """The next frame, or None when the controller closed the channel between frames."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise FrameChannelError("frame channel closed inside a header") from err
    except asyncio.LimitOverrunError as err:
        raise FrameChannelError("frame header longer than 256 bytes") from err
    if len(line) > MAX_HEADER:
        raise FrameChannelError("frame header longer than 256 bytes")
    t_us, width, height = parse_header(line)
    try:
        pixels = await reader.readexactly(width * height * 3)
    except asyncio.IncompleteReadError as err:
        raise FrameChannelError("frame channel closed inside a frame") from err
    return t_us, np.frombuffer(pixels, np.uint8).reshape(height, width, 3)


class PushedCamera(BatchSource[list[TimedFrame]]):
    """The adapter: ``async with PushedCamera(...) as c: async for batch in c.batches()``.

    A batch is one frame at its capture time; an empty batch marks a lost channel (what was
    open is decided then), as `Camera` does."""

    retry_on = (CaptureError, OSError)
    queue_size = 1

    def __init__(
        self, name: str, spec: str, on_health: HealthCallback | None, *, clock: Clock,
        reconnect_max_s: float = 30.0,
    ) -> None:
        super().__init__(name, on_health, backoff=Backoff(initial_s=1.0, maximum_s=reconnect_max_s),
                         sleep=clock.sleep, clock_us=clock.now_us)
        self._address = parse_pushed(spec)
        self._clock = clock
        self._judged = asyncio.Event()

    def reason_of(self, err: BaseException) -> str:
        log.error("camera lost", extra={"camera": self.name, "error": str(err)})
        return describe(err)

    async def batches(self) -> AsyncIterator[list[TimedFrame]]:
        async for batch in super().batches():
            yield batch
            # The pipeline asks for the next batch only once it has judged this one.
            self._judged.set()

    async def session(self, owner: Supervised) -> None:
        host, port = self._address
        # Connecting is real I/O with a peer that may be stalled: a real-time guard.
        reader, writer = await timeouts.wait_for(
            asyncio.open_connection(host, port, limit=MAX_HEADER), CONNECT_TIMEOUT_S)
        try:
            owner.up("frame channel connected")
            last_us: int | None = None
            try:
                while (frame := await read_frame(reader)) is not None:
                    t_us, image = frame
                    if last_us is not None and t_us < last_us:
                        raise FrameChannelError(f"frame dated {t_us} before the last {last_us}")
                    last_us = t_us
                    ahead_s = (t_us - self._clock.now_us()) / 1e6
                    if ahead_s > MAX_AHEAD_S:
                        raise FrameChannelError(f"frame dated {ahead_s:.0f} s ahead of the clock")
                    if ahead_s > 0:  # not judged before it is taken
                        await self._clock.sleep(ahead_s)
                    self._judged.clear()
                    await self.put([TimedFrame(image, t_us)])
                    await self._judged.wait()
                    writer.write(json.dumps({"judged_us": t_us}).encode() + b"\n")
                    await writer.drain()
            except (CaptureError, OSError):
                await self.put([])  # the picture stopped
                raise
            # The controller closed between frames: the stream has ended, as a file's does.
            log.info("camera source ended", extra={"camera": self.name})
        finally:
            writer.close()


def pushed(spec: str) -> bool:
    """Is this camera source the simulated one (``sim:HOST:PORT``)?"""
    return spec.startswith(SCHEME)
