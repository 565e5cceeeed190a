"""The raw signals a simulated warehouse emits, in simulated time: ``t_us`` is the simulated
Unix time in microseconds (the world's local start time in its site time zone, plus the
offset). They are what devices would put on the wire, not conclusions: a
tag read at an antenna, a reader's read cycle or keepalive, a door contact, a frame at the gate
camera with a vehicle's plate in it, a sensor sample, a GPS fix, the uplink going down or up.

Both consumers take the same stream: the value-level runner (the edge's real decision objects
fed in-process) and the player that drives the real edge agent as its own process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True, slots=True)
class TagRead:
    """One singulation of one tag by one antenna during a read cycle."""

    t_us: int
    reader: str
    antenna: int
    epc: str
    rssi_cdbm: int = -5500


@dataclass(frozen=True, slots=True)
class ReadCycle:
    """A reader finished an inventory round on these antennas (read or not): the proof that it
    was alive and reading, whether or not a tag answered."""

    t_us: int
    reader: str
    antennas: tuple[int, ...] = (1,)


@dataclass(frozen=True, slots=True)
class TagSeen:
    """One tag in a `ReadReport`: how often it answered in the report's rounds and when last."""

    epc: str
    antenna: int
    count: int
    last_us: int
    rssi_cdbm: int = -5500
    first_us: int | None = None  # LLRP FirstSeenTimestamp; None: not reported


@dataclass(slots=True, eq=False)  # not frozen: a week has 10^5 of them; do not change one
class ReadReport:
    """What a reader sends at the end of a report period (LLRP: an RO_ACCESS_REPORT at the end
    of each AISpec, one TagReportData per tag with TagSeenCount and LastSeenTimestamp): the
    tags that answered in the ``rounds`` read rounds since ``since_us``, each once.
    ``rounds`` > 0 with no tags is still proof that the reader was alive and reading. A
    reader configured to report every round sends one report per round.

    This is how the world speaks RFID: one value per reader per period, not one per read, and
    its columns are numpy arrays (``tag`` indexes ``epcs``, the world's EPC table, shared by all
    reports), so a simulated week of a warehouse is generated in seconds. ``tags`` gives the
    rows as `TagSeen`; ``expand_report`` gives per-read `TagRead`/`ReadCycle` signals."""

    t_us: int
    reader: str
    since_us: int
    rounds: int
    antennas: tuple[int, ...]
    epcs: tuple[str, ...]
    # The generator's column block (tag index into epcs, antenna port, TagSeenCount, last and
    # first read in simulated Unix µs; int64 arrays shared by many reports) and this report's
    # rows in it: the columns are sliced only when read.
    block: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    lo: int
    hi: int
    rssi_cdbm: int = -5500

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def tag(self) -> np.ndarray:
        return self.block[0][self.lo:self.hi]

    @property
    def antenna(self) -> np.ndarray:
        return self.block[1][self.lo:self.hi]

    @property
    def count(self) -> np.ndarray:
        return self.block[2][self.lo:self.hi]

    @property
    def last_us(self) -> np.ndarray:
        return self.block[3][self.lo:self.hi]

    @property
    def first_us(self) -> np.ndarray:
        return self.block[4][self.lo:self.hi]

    @property
    def tags(self) -> tuple[TagSeen, ...]:
        epcs, rssi = self.epcs, self.rssi_cdbm
        return tuple(TagSeen(epcs[t], a, c, last, rssi, first) for t, a, c, last, first in zip(
            self.tag.tolist(), self.antenna.tolist(), self.count.tolist(),
            self.last_us.tolist(), self.first_us.tolist(), strict=True))

    def seen_rows(self) -> list[tuple[str, int, int, int, int, int]]:
        """The rows as the gateway's aggregated path takes them (edge/rfid/presence.py
        ``SeenRow``): epc, antenna, peak RSSI, first read, last read, seen count."""
        epcs, rssi = self.epcs, self.rssi_cdbm
        return [(epcs[t], a, rssi, first, last, c) for t, a, c, last, first in zip(
            self.tag.tolist(), self.antenna.tolist(), self.count.tolist(),
            self.last_us.tolist(), self.first_us.tolist(), strict=True)]

    def key(self) -> tuple[object, ...]:
        """Everything it says, comparable (arrays make ``==`` ambiguous)."""
        return (self.t_us, self.reader, self.since_us, self.rounds, self.antennas,
                self.tag.tolist(), self.antenna.tolist(), self.count.tolist(),
                self.last_us.tolist(), self.first_us.tolist(), self.rssi_cdbm)


@dataclass(frozen=True, slots=True)
class ReaderKeepalive:
    t_us: int
    reader: str


@dataclass(frozen=True, slots=True)
class ReaderPower:
    """Power (or its network link) on or off: while off the reader sends nothing at all."""

    t_us: int
    reader: str
    on: bool
    cause: Literal["power", "network"] = "power"


@dataclass(frozen=True, slots=True)
class DoorContact:
    t_us: int
    door: str
    open: bool


@dataclass(frozen=True, slots=True)
class GateFrame:
    """A vehicle in front of a gate camera; ``plate`` None is a frame with no vehicle (or a
    covered lens when ``covered``). The player renders it (firmware_sim/camera)."""

    t_us: int
    camera: str
    plate: str | None
    direction: Literal["in", "out"] | None = None
    covered: bool = False


@dataclass(frozen=True, slots=True)
class LabelFrame:
    """A pallet label in front of a camera; ``readable`` False is a torn or smudged one."""

    t_us: int
    camera: str
    payload: str
    readable: bool = True


@dataclass(frozen=True, slots=True)
class SensorSample:
    t_us: int
    sensor: str
    kind: Literal["temperature", "humidity", "weight", "shock"]
    value: float
    lot: str | None = None


@dataclass(frozen=True, slots=True)
class GpsFix:
    t_us: int
    tracker: str
    lat: float
    lon: float
    accuracy_m: float


@dataclass(frozen=True, slots=True)
class LinkState:
    """The gateway's uplink to the cloud cut (False) or restored (True)."""

    t_us: int
    up: bool


Signal = (TagRead | ReadCycle | ReadReport | ReaderKeepalive | ReaderPower | DoorContact
          | GateFrame | LabelFrame | SensorSample | GpsFix | LinkState)


def expand_report(report: ReadReport) -> list[TagRead | ReadCycle]:
    """A report as per-read signals: each tag's last read, then the round that ended the
    period (the reader's own aggregation hides the earlier reads, as on the wire)."""
    out: list[TagRead | ReadCycle] = [
        TagRead(seen.last_us, report.reader, seen.antenna, seen.epc, seen.rssi_cdbm)
        for seen in sorted(report.tags, key=lambda s: s.last_us)
    ]
    out.append(ReadCycle(report.t_us, report.reader, report.antennas))
    return out
