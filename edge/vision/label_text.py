"""The printed text of labels whose symbol does not scan, read by OCR off the frame loop.

The text detector costs 0.3-1 s a call on one core: a camera's loop that waited for it would
drop a second of frames. So the loop hands a crop to ``LabelTextWorker`` and goes on; one
background thread reads it and the lines come back at a later frame, as an observation dated
by the frame the crop came from (``TextResult.at_us``).

Bounds, so that OCR never grows into the loop's time or the machine's:
- one thread, one call at a time; ``pending`` jobs wait at most (1 by default), the oldest is
  dropped when a newer one comes (``submit`` returns the dropped jobs: the caller may ask again);
- a job that waited longer than ``stale_after_s`` is dropped unread: the label may have moved;
- the caller's ``OcrBudget`` decides how often a call may be asked for and on how many pixels.

``JobQueue`` is the pure part (what waits, what is dropped); the thread is I/O at the rim.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.vision.labels import LabelRead

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextJob:
    lot: str
    crop: np.ndarray
    at_us: int  # the frame the crop came from
    queued_s: float = 0.0  # monotonic clock when handed over, for the staleness bound


@dataclass(frozen=True, slots=True)
class TextResult:
    lot: str
    at_us: int
    reads: list[LabelRead]
    crop: np.ndarray
    ms: float  # wall time of the OCR call


class JobQueue:
    """At most ``size`` jobs wait; a new job pushes the oldest out. Pure, not thread-safe."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a job queue holds at least one job")
        self._jobs: deque[TextJob] = deque()
        self.size = size

    def put(self, job: TextJob) -> list[TextJob]:
        """Queue ``job``; the jobs pushed out to make room (oldest first)."""
        dropped = []
        while len(self._jobs) >= self.size:
            dropped.append(self._jobs.popleft())
        self._jobs.append(job)
        return dropped

    def take(self, now_s: float, stale_after_s: float) -> tuple[TextJob | None, list[TextJob]]:
        """The oldest job still fresh at ``now_s``; and the stale ones passed over."""
        stale: list[TextJob] = []
        while self._jobs:
            job = self._jobs.popleft()
            if now_s - job.queued_s <= stale_after_s:
                return job, stale
            stale.append(job)
        return None, stale

    def __len__(self) -> int:
        return len(self._jobs)


class LabelTextWorker:
    """One background thread reading label text; the frame loop never waits for it."""

    def __init__(self, read: Callable[[np.ndarray], list[LabelRead]], *, pending: int = 1,
                 stale_after_s: float = 10.0) -> None:
        self._read = read
        self._queue = JobQueue(pending)
        self.stale_after_s = stale_after_s
        self._done: list[TextResult] = []
        self._dropped: list[TextJob] = []
        self._busy = False
        self._closed = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="label-ocr", daemon=True)
        self._thread.start()

    def submit(self, lot: str, crop: np.ndarray, at_us: int) -> list[TextJob]:
        """Hand a crop over (copied: the frame's buffer is reused); never blocks.

        Returns the jobs dropped unread since the last call: pushed out by this one or stale."""
        job = TextJob(lot, crop.copy(), at_us, time.monotonic())
        with self._lock:
            if self._closed:
                return [job]
            self._dropped += self._queue.put(job)
            self._lock.notify()
            dropped, self._dropped = self._dropped, []
        return dropped

    def results(self) -> list[TextResult]:
        """Reads finished since the last call; never blocks."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def dropped(self) -> list[TextJob]:
        """Jobs dropped unread (stale) since the last call; never blocks."""
        with self._lock:
            dropped, self._dropped = self._dropped, []
        return dropped

    def idle(self, timeout_s: float) -> bool:
        """Wait until nothing waits or runs (for shutdown and tests); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._busy and not len(self._queue),
                                       timeout_s)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or len(self._queue) > 0)
                if self._closed:
                    return
                job, stale = self._queue.take(time.monotonic(), self.stale_after_s)
                self._dropped += stale
                if job is None:
                    self._lock.notify_all()
                    continue
                self._busy = True
            started = time.perf_counter()
            try:
                reads = self._read(job.crop)
            except Exception:  # one bad crop must not end the camera's text reading
                log.exception("label text reading failed", extra={"lot": job.lot})
                reads = []
            ms = (time.perf_counter() - started) * 1000
            with self._lock:
                self._done.append(TextResult(job.lot, job.at_us, reads, job.crop, ms))
                self._busy = False
                self._lock.notify_all()
