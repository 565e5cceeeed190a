"""The raw signals a simulated warehouse emits, in simulated time (microseconds since the
scenario's epoch, ``t_us``). They are what devices would put on the wire, not conclusions: a
tag read at an antenna, a reader's read cycle or keepalive, a door contact, a frame at the gate
camera with a vehicle's plate in it, a sensor sample, a GPS fix, the uplink going down or up.

Both consumers take the same stream: the value-level runner (the edge's real decision objects
fed in-process) and the player that drives the real edge agent as its own process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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


Signal = (TagRead | ReadCycle | ReaderKeepalive | ReaderPower | DoorContact | GateFrame
          | LabelFrame | SensorSample | GpsFix | LinkState)
