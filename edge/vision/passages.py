"""One vehicle passage, one plate: tracking plate reads across frames and voting on the text.

Theory of operation: each frame brings the plate reads it found (``PlateSighting``: box, text or
None when unreadable, confidence, time). A sighting joins the open track whose last box is
nearest (centre distance under ``join_distance`` plate widths); otherwise it opens a track.
A track closes when it has not been seen for ``gap_us``; on closing it becomes a ``Passage`` if
it has at least ``min_reads`` readable sightings. Its plate is the text with the largest sum of
confidences (a vote), its evidence the most confident sighting of that text, and its direction
``in`` or ``out`` when a counting line is configured and the track crossed it.

Fed with values and a clock by the caller; no camera, no sleeping.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

Box = tuple[int, int, int, int]
Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class PlateSighting:
    box: Box
    text: str | None  # validated plate text, None when it could not be read
    confidence: float
    at_us: int
    region: str = ""
    plate_format: str = ""
    evidence: Any = None  # whatever the caller needs to store the best crop later


@dataclass(frozen=True, slots=True)
class CountingLine:
    """A line across the picture, in frame fractions; crossing it towards ``inside`` is "in"."""

    x1: float
    y1: float
    x2: float
    y2: float
    inside: Literal["left", "right"] = "left"  # seen walking from (x1, y1) to (x2, y2)

    def side(self, x: float, y: float) -> float:
        return (self.x2 - self.x1) * (y - self.y1) - (self.y2 - self.y1) * (x - self.x1)


@dataclass(frozen=True, slots=True)
class Passage:
    track: int
    plate: str
    region: str
    plate_format: str
    confidence: float  # share of the vote times the best sighting's confidence
    reads: int
    first_seen_us: int
    last_seen_us: int
    direction: Direction | None
    best: PlateSighting


@dataclass
class _Track:
    id: int
    sightings: list[PlateSighting] = field(default_factory=list)

    @property
    def last(self) -> PlateSighting:
        return self.sightings[-1]


def _leader(track: _Track) -> tuple[str, int] | None:
    """The most read text of a track and how often it was read."""
    counts: dict[str, int] = defaultdict(int)
    for s in track.sightings:
        if s.text:
            counts[s.text] += 1
    if not counts:
        return None
    text = max(counts, key=lambda t: counts[t])
    return text, counts[text]


def _differs(a: str, b: str) -> int:
    """Characters that differ (plus the length difference): OCR misreads differ by one or two."""
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def _centre(box: Box) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


class PassageTracker:
    def __init__(
        self,
        *,
        frame_size: tuple[int, int],
        gap_us: int = 2_000_000,
        join_distance: float = 2.5,
        min_reads: int = 2,
        line: CountingLine | None = None,
    ) -> None:
        self.frame_w, self.frame_h = frame_size
        self.gap_us = gap_us
        self.join_distance = join_distance
        self.min_reads = min_reads
        self.line = line
        self._open: list[_Track] = []
        self._ids = itertools.count(1)

    @property
    def open_tracks(self) -> int:
        return len(self._open)

    def settled(
        self, box: Box, now_us: int, *, agree: int = 3, recent_us: int = 500_000,
        recheck_every: int = 4,
    ) -> bool:
        """True if OCR may be skipped for this box: the track it continues (seen within
        ``recent_us``, its last box within one plate width) has ``agree`` reads of one text, and
        OCR ran at least once in its last ``recheck_every`` sightings, counting this one.

        Detection still extends the track. The periodic re-read notices a different vehicle
        taking the place of the last one (its text then splits the track)."""
        track = self._nearest(box, set(), None)
        if track is None or now_us - track.last.at_us > recent_us:
            return False
        cx, cy = _centre(box)
        tx, ty = _centre(track.last.box)
        if ((cx - tx) ** 2 + (cy - ty) ** 2) ** 0.5 > max(box[2], track.last.box[2]):
            return False
        if all(s.text is None for s in track.sightings[-(recheck_every - 1) :]):
            return False  # at least every ``recheck_every``-th sighting is read
        leader = _leader(track)
        return leader is not None and leader[1] >= agree

    def _nearest(self, box: Box, taken: set[int], text: str | None) -> _Track | None:
        cx, cy = _centre(box)
        best: tuple[float, _Track] | None = None
        for track in self._open:
            if track.id in taken:
                continue
            leader = _leader(track)
            if text and leader and leader[1] >= 2 and _differs(text, leader[0]) > 2:
                continue  # a clearly different plate where one just was: another vehicle
            tx, ty = _centre(track.last.box)
            scale = max(box[2], track.last.box[2], 1)
            distance = ((cx - tx) ** 2 + (cy - ty) ** 2) ** 0.5 / scale
            if distance <= self.join_distance and (best is None or distance < best[0]):
                best = (distance, track)
        return best[1] if best else None

    def observe(self, sightings: list[PlateSighting], now_us: int) -> list[Passage]:
        """Add one frame's sightings; returns the passages that ended by ``now_us``."""
        # Close first, so a vehicle coming back after the gap starts a new passage.
        ended = self._close(lambda t: now_us - t.last.at_us > self.gap_us)
        taken: set[int] = set()
        for sighting in sorted(sightings, key=lambda s: -s.confidence):
            track = self._nearest(sighting.box, taken, sighting.text)
            if track is None:
                track = _Track(next(self._ids))
                self._open.append(track)
            track.sightings.append(sighting)
            taken.add(track.id)
        return ended

    def flush(self) -> list[Passage]:
        """Close every open track (end of a video, shutdown)."""
        return self._close(lambda t: True)

    def _close(self, ended: Any) -> list[Passage]:
        done = [t for t in self._open if ended(t)]
        self._open = [t for t in self._open if not ended(t)]
        passages = [p for p in (self._decide(t) for t in done) if p is not None]
        return passages

    def _decide(self, track: _Track) -> Passage | None:
        readable = [s for s in track.sightings if s.text]
        if len(readable) < self.min_reads:
            return None
        votes: dict[str, float] = defaultdict(float)
        for s in readable:
            votes[s.text] += s.confidence  # type: ignore[index]
        winner = max(votes, key=lambda text: votes[text])
        best = max((s for s in readable if s.text == winner), key=lambda s: s.confidence)
        share = votes[winner] / sum(votes.values())
        return Passage(
            track=track.id,
            plate=winner,
            region=best.region,
            plate_format=best.plate_format,
            confidence=round(share * best.confidence, 3),
            reads=len(readable),
            first_seen_us=track.sightings[0].at_us,
            last_seen_us=track.last.at_us,
            direction=self._direction(track),
            best=best,
        )

    def _direction(self, track: _Track) -> Direction | None:
        if self.line is None or len(track.sightings) < 2:
            return None
        first = _centre(track.sightings[0].box)
        last = _centre(track.last.box)
        before = self.line.side(first[0] / self.frame_w, first[1] / self.frame_h)
        after = self.line.side(last[0] / self.frame_w, last[1] / self.frame_h)
        if before == 0 or after == 0 or (before > 0) == (after > 0):
            return None  # did not cross
        # In image coordinates (y down) a positive side value lies to the right of the line.
        entered_right = after > 0
        return "in" if entered_right == (self.line.inside == "right") else "out"
