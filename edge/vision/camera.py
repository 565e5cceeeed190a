"""The camera adapter: a synchronous frame source behind the async adapter shape.

``async with Camera(settings, on_health) as camera: async for batch in camera.batches()``. The
session opens the source (rtsp/http/file/folder/device, see capture.py) and reads frames in a
worker thread; losing the source (or failing to open it) is logged as "camera lost" and the
owner (ops/supervised.py) opens it again after its backoff, up to ``reconnect_max_s`` apart.

Each batch holds one `TimedFrame`, stamped in the picture's time: a live camera's frames happen
now; a file's happen at their place in the file (from when it was opened), however fast it is
read, so gaps between passages and the blindness hold are judged in the picture's time. An
empty batch marks a break in the picture (the source was lost): what was open is decided then.
A file or folder that has been read to its end finishes the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.vision.capture import CaptureError, open_source
from edge.vision.settings import CameraSettings
from ops.backoff import Backoff
from ops.supervised import BatchSource, HealthCallback, Supervised, describe

log = logging.getLogger(__name__)

FILE_PACE_S = 0.1  # files and folders played at about 10 frames per second when paced


@dataclass(frozen=True, slots=True)
class TimedFrame:
    image: Any  # a BGR numpy array
    at_us: int


class Camera(BatchSource[list[TimedFrame]]):
    retry_on = (CaptureError,)
    queue_size = 1  # read one frame ahead of the processing, no more

    def __init__(
        self, settings: CameraSettings, on_health: HealthCallback | None, *,
        now_us: Callable[[], int], reconnect_max_s: float = 30.0,
    ) -> None:
        super().__init__(settings.name, on_health,
                         backoff=Backoff(initial_s=1.0, maximum_s=reconnect_max_s))
        self._settings = settings
        self._now_us = now_us

    def reason_of(self, err: BaseException) -> str:
        log.error("camera lost", extra={"camera": self.name, "error": str(err),
                                        "attempt": self.owner.backoff.attempts})
        return describe(err)

    async def session(self, owner: Supervised) -> None:
        settings = self._settings
        source = await asyncio.to_thread(open_source, settings.source)
        try:
            pace = FILE_PACE_S if settings.pace and not source.live else None
            opened_us = self._now_us()
            try:
                while (frame := await asyncio.to_thread(source.read)) is not None:
                    owner.up("frames arriving")
                    at_us = self._now_us() if source.live else opened_us + frame.at_us
                    await self.put([TimedFrame(frame.image, at_us)])
                    if pace:
                        await asyncio.sleep(pace)
                if source.live:
                    raise CaptureError(f"{settings.source} ended")
            except CaptureError:
                await self.put([])  # the picture stopped
                raise
            log.info("camera source ended", extra={"camera": self.name})
        finally:
            source.close()
