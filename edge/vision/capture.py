"""Where frames come from: an RTSP/HTTP camera, a video file, a folder of images, a local device.

``open_source(spec)`` picks the kind from the spec: ``rtsp://``, ``http(s)://`` -> network
camera; a digit or ``/dev/video*`` -> local device; a folder -> its images, sorted, recursively;
anything else -> a video file. ``read()`` blocks (run it in a thread from async code) and
returns the next ``Frame``, ``None`` at the end of a file or folder, and raises ``CaptureLost``
when a live source stops delivering. Reconnecting is the caller's job (see pipeline), so the
policy (backoff, logging) lives in one place.

A file that is not an image, is empty or is corrupt is logged and skipped: one bad file never
stops a folder.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg"})


class CaptureError(OSError):
    """A source cannot be opened."""


class CaptureLost(CaptureError):
    """A live source stopped delivering frames."""


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray
    index: int
    at_us: int  # capture time: wall clock for live sources, position for files
    origin: str  # file the frame came from (folder sources), else the source spec


class FrameSource(Protocol):
    live: bool

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


# An image file larger than any camera's picture is refused before it is decoded: a few
# kilobytes of PNG or JPEG can declare 40000 x 40000 pixels, 4.8 GB once decoded, on a gateway
# with 2-4 GB. 50 megapixels holds any camera's or phone's picture.
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_BYTES = 64 * 1024 * 1024


def _declared_size(data: bytes) -> tuple[str, int] | None:
    """The size an image file's header declares, as words and in pixels (Pillow reads the
    header only), or None for a format Pillow does not know (OpenCV then decides)."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            return f"{width}x{height}", width * height
    except Image.DecompressionBombError:  # over twice Pillow's own limit, far above ours
        limit = 2 * (Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)
        return f"more than {limit}", limit + 1
    except (OSError, ValueError, SyntaxError):  # UnidentifiedImageError is an OSError
        return None


def decode_image(path: Path) -> np.ndarray:
    """Read one image file; ValueError says why it is not a usable image."""
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ValueError(f"{path} is {size} bytes, more than the {MAX_IMAGE_BYTES} an image "
                         "may have")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path} is empty")
    declared = _declared_size(data)
    if declared is not None and declared[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"{path} declares {declared[0]} pixels, more than the "
                         f"{MAX_IMAGE_PIXELS} an image may have")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ValueError(f"{path} is not a readable image")
    return image


def iter_images(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


class ImageFolderSource:
    live = False

    def __init__(self, folder: Path, *, fps: float = 10.0) -> None:
        if not folder.is_dir():
            raise CaptureError(f"{folder} is not a folder")
        self._paths = iter_images(folder)
        self._index = 0
        self._step_us = int(1_000_000 / fps)

    def read(self) -> Frame | None:
        for path in self._paths:
            try:
                image = decode_image(path)
            except (OSError, ValueError) as err:
                log.error("skipping unreadable image", extra={"path": str(path), "error": str(err)})
                continue
            frame = Frame(image, self._index, self._index * self._step_us, str(path))
            self._index += 1
            return frame
        return None

    def close(self) -> None:
        self._paths = iter(())


class VideoSource:
    """OpenCV VideoCapture: video files, network cameras and local devices."""

    def __init__(self, spec: str, *, open_timeout_s: float = 10.0) -> None:
        self.spec = spec
        self.live = spec.startswith(("rtsp://", "rtsps://", "http://", "https://")) or _is_device(
            spec
        )
        if not self.live and not Path(spec).is_file():
            raise CaptureError(f"no such video file: {spec}")
        target: str | int = int(spec) if spec.isdigit() else spec
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(open_timeout_s * 1000)]
        self._cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not self._cap.isOpened():
            self._cap.release()
            raise CaptureError(f"cannot open {spec}")
        self._index = 0
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._step_us = int(1_000_000 / fps) if fps and fps > 0 else 100_000

    def read(self) -> Frame | None:
        ok, image = self._cap.read()
        if not ok or image is None or image.size == 0:
            if self.live:
                raise CaptureLost(f"{self.spec} stopped delivering frames")
            return None
        at_us = time.time_ns() // 1000 if self.live else self._index * self._step_us
        frame = Frame(image, self._index, at_us, self.spec)
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()


def _is_device(spec: str) -> bool:
    return spec.isdigit() or spec.startswith("/dev/video")


def open_source(spec: str, *, fps: float = 10.0) -> FrameSource:
    path = Path(spec)
    if not spec.startswith(("rtsp://", "rtsps://", "http://", "https://")) and path.is_dir():
        return ImageFolderSource(path, fps=fps)
    return VideoSource(spec)
