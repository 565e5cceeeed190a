"""The world a raw-signal story describes: a site on a simulated clock, its readers and antennas,
the tagged lots and where their pieces are over time, what the radio does to reads, doors,
vehicles at the gate, sensors, GPS trackers, the uplink, cameras and labels. It describes the
world, never a decision: nothing here says "missing" or "theft"; the ground-truth labels on
departures (``incident``) are for the judge only.

Every field is bounded and the models refuse unknown keys, so a story file that says something
the world cannot do is refused with the field's path, not half-played. Times are seconds after
the world's start (``at_s``); antennas are named ``reader/port`` (``r1/2``).

``World.signals(seed)`` (generate.py) is the world's time-ordered stream of raw signals
(signals.py), deterministic per seed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from firmware_sim.world.signals import Signal

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
AntennaRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[0-9]{1,2}$")]
Seconds = Annotated[float, Field(ge=0, le=90 * 86400)]  # a story lasts at most 90 days
Probability = Annotated[float, Field(ge=0, le=1)]
Plate = Annotated[str, Field(pattern=r"^[A-Z0-9-]{2,12}$")]
_REF = re.compile(r"^(.+)/([0-9]{1,2})$")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def split_ref(ref: str) -> tuple[str, int]:
    m = _REF.match(ref)
    if m is None:
        raise ValueError(f"antenna {ref!r} is not reader/port")
    return m.group(1), int(m.group(2))


class Antenna(_M):
    port: int = Field(ge=1, le=32)
    zone: Name


class ReaderEvent(_M):
    """The reader's power or its network link goes off or on (a reader on the same switch as a
    pulled cable is alive but unheard: it keeps reading, nothing reaches the gateway)."""

    at_s: Seconds
    power: Literal["off", "on"] | None = None
    network: Literal["down", "up"] | None = None

    @model_validator(mode="after")
    def _one(self) -> ReaderEvent:
        if (self.power is None) == (self.network is None):
            raise ValueError("a reader event sets exactly one of power, network")
        return self


class Reader(_M):
    name: Name
    antennas: list[Antenna] = Field(min_length=1, max_length=32)
    rounds_per_s: float = Field(2.0, gt=0, le=50)  # inventory rounds over all its antennas
    # A report per period (LLRP: AISpec duration); 0 reports every round.
    report_interval_s: float = Field(1.0, ge=0, le=300)
    keepalive_s: float = Field(5.0, gt=0, le=3600)
    rssi_cdbm: int = Field(-5500, ge=-12000, le=0)
    events: list[ReaderEvent] = Field(default_factory=list, max_length=10_000)

    @field_validator("antennas")
    @classmethod
    def _ports_unique(cls, antennas: list[Antenna]) -> list[Antenna]:
        ports = [a.port for a in antennas]
        if len(set(ports)) != len(ports):
            raise ValueError("antenna ports must be unique per reader")
        return antennas


class Lot(_M):
    """A lot of ``pieces`` tagged pieces (one SGTIN-96 tag each, firmware_sim/tags.py), spread
    round-robin over the antennas in ``at`` at the start."""

    name: Name
    pieces: int = Field(ge=1, le=5000)
    at: list[AntennaRef] = Field(min_length=1, max_length=32)
    read_probability: Probability = 0.85  # per round, for its tags, before interference
    absence_window_s: float = Field(30.0, gt=0, le=86400)  # the site's setting for the lot
    # The site's presence setting for the lot (edge/rfid/pipeline.py, docs/rfid.md): the
    # longest trip of a piece between the lot's antennas. None: the gateway's default.
    move_window_s: float | None = Field(None, gt=0, le=86400)
    company_prefix: str = Field("0614141", pattern=r"^[0-9]{6,12}$")


class Interference(_M):
    """Per-round read probability at these antennas (all of a reader's when only the reader is
    named; everywhere when ``at`` is empty) from ``at_s`` for ``for_s``: forklifts, metal,
    a neighbouring reader. The lowest of overlapping ones counts."""

    at_s: Seconds
    for_s: float = Field(gt=0, le=90 * 86400)
    read_probability: Probability
    at: list[Annotated[str, Field(min_length=1, max_length=70)]] = Field(
        default_factory=list, max_length=64)


class Move(_M):
    """A forklift takes ``pieces`` of the lot (those still in the field, lowest first; all when
    None) along ``path``: out of the field for ``gap_s`` between antennas, ``dwell_s`` at each
    antenna on the way, and they stay at the last one. ``repeat`` rounds, ``every_s`` apart,
    go back and forth along the path (a reshuffle)."""

    at_s: Seconds
    lot: Name
    pieces: int | None = Field(None, ge=1, le=5000)
    skip: int = Field(0, ge=0, le=5000)  # leave the first ``skip`` pieces in the field alone
    path: list[AntennaRef] = Field(min_length=1, max_length=32)
    gap_s: float = Field(8.0, ge=0, le=3600)
    dwell_s: float = Field(5.0, ge=0, le=3600)
    repeat: int = Field(1, ge=1, le=10_000)
    every_s: float = Field(0.0, ge=0, le=86400)


class Departure(_M):
    """``pieces`` of the lot (those still in the field, lowest first) leave the RF field for
    good, one every ``spread_s / pieces``: a theft, a release pick-up or a transfer out of the
    site. ``incident`` is the ground-truth label the judge times alerts from."""

    at_s: Seconds
    lot: Name
    pieces: int = Field(ge=1, le=5000)
    spread_s: float = Field(0.0, ge=0, le=3600)
    incident: Name | None = None
    kind: Literal["theft", "release", "transfer"] = "theft"


class Door(_M):
    at_s: Seconds
    door: Name
    open_s: float = Field(60.0, gt=0, le=86400)


class Vehicle(_M):
    """A vehicle at a gate camera: ``frames`` frames with its plate, ``fps`` a second."""

    at_s: Seconds
    plate: Plate
    camera: Name = "gate-1"
    direction: Literal["in", "out"] = "in"
    frames: int = Field(3, ge=1, le=100)
    fps: float = Field(2.0, gt=0, le=30)


class Excursion(_M):
    at_s: Seconds
    for_s: float = Field(gt=0, le=86400)
    value: float = Field(ge=-100, le=1000)


class Sensor(_M):
    name: Name
    kind: Literal["temperature", "humidity", "weight", "shock"] = "temperature"
    lot: Name | None = None
    value: float = Field(ge=-100, le=1000)  # the steady reading
    noise: float = Field(0.1, ge=0, le=100)  # standard deviation per sample
    period_s: float = Field(30.0, ge=1, le=86400)
    excursions: list[Excursion] = Field(default_factory=list, max_length=1000)
    # The site's setting for it: allowed range, how long outside before it counts, hysteresis.
    low: float | None = Field(None, ge=-100, le=1000)
    high: float | None = Field(None, ge=-100, le=1000)
    min_duration_s: float = Field(0.0, ge=0, le=86400)
    hysteresis: float = Field(0.0, ge=0, le=100)


class Waypoint(_M):
    at_s: Seconds
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Tracker(_M):
    """A GPS tracker following its waypoints (linear between them, still after the last),
    reporting a fix every ``period_s`` with ``accuracy_m``, its position off by a slowly
    drifting error of ``noise_m`` standard deviation (AR(1), ``correlation`` per fix)."""

    name: Name
    lot: Name | None = None  # the pledged asset it rides on
    waypoints: list[Waypoint] = Field(min_length=1, max_length=10_000)
    period_s: float = Field(30.0, ge=1, le=86400)
    accuracy_m: float = Field(10.0, gt=0, le=5000)
    noise_m: float = Field(5.0, ge=0, le=5000)
    correlation: float = Field(0.9, ge=0, lt=1)


class LinkCut(_M):
    at_s: Seconds
    for_s: float = Field(gt=0, le=30 * 86400)


class CameraCover(_M):
    """A lens covered for ``for_s``; the camera sends frames at ``fps`` from ``lead_s`` before
    to ``lead_s`` after (a camera's idle frames are not simulated the rest of the time)."""

    at_s: Seconds
    camera: Name = "gate-1"
    for_s: float = Field(gt=0, le=86400)
    fps: float = Field(2.0, gt=0, le=30)
    lead_s: float = Field(10.0, ge=0, le=600)


class LabelShown(_M):
    at_s: Seconds
    camera: Name = "dock-1"
    payload: str = Field(max_length=200)
    readable: bool = True


class Release(_M):
    """An approved release (the paper trail the cloud sends the gateway): up to ``pieces`` of
    the lot may leave with one of ``vehicles`` between ``from_s`` and ``to_s``."""

    lot: Name
    pieces: int = Field(ge=1, le=5000)
    vehicles: list[Plate] = Field(min_length=1, max_length=20)
    from_s: Seconds
    to_s: Seconds

    @model_validator(mode="after")
    def _window(self) -> Release:
        if self.to_s <= self.from_s:
            raise ValueError("a release window ends after it starts")
        return self


class World(_M):
    site: Name = "site-1"
    timezone: str = "Europe/Berlin"
    start: datetime = datetime(2026, 11, 27, 22, 0)  # local wall time at the site
    duration_s: float = Field(gt=0, le=90 * 86400)
    working_hours: tuple[int, int] = (7, 19)  # local hours doors may open without a reason
    fences: Name | None = None  # the site's geofences (geofences/sites/<name>.geojson)
    financier: Name | None = None  # the pledgee of the site's lots (webhook expectations)
    label_unreadable_after_s: float = Field(300.0, gt=0, le=86400)  # the site's setting
    readers: list[Reader] = Field(default_factory=list, max_length=64)
    lots: list[Lot] = Field(default_factory=list, max_length=200)
    interference: list[Interference] = Field(default_factory=list, max_length=10_000)
    moves: list[Move] = Field(default_factory=list, max_length=10_000)
    departures: list[Departure] = Field(default_factory=list, max_length=10_000)
    doors: list[Door] = Field(default_factory=list, max_length=10_000)
    vehicles: list[Vehicle] = Field(default_factory=list, max_length=10_000)
    sensors: list[Sensor] = Field(default_factory=list, max_length=200)
    trackers: list[Tracker] = Field(default_factory=list, max_length=200)
    link_cuts: list[LinkCut] = Field(default_factory=list, max_length=1000)
    camera_covers: list[CameraCover] = Field(default_factory=list, max_length=1000)
    labels: list[LabelShown] = Field(default_factory=list, max_length=10_000)
    # The paper trail: gate list and approved releases as the cloud would send them.
    authorised_vehicles: list[Plate] = Field(default_factory=list, max_length=1000)
    releases: list[Release] = Field(default_factory=list, max_length=1000)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {tz!r}") from e
        return tz

    @field_validator("start")
    @classmethod
    def _naive(cls, start: datetime) -> datetime:
        if start.tzinfo is not None:
            raise ValueError("start is local wall time at the site: give it without an offset")
        return start

    @model_validator(mode="after")
    def _consistent(self) -> World:
        antennas: dict[str, str] = {}
        names = [r.name for r in self.readers]
        if len(set(names)) != len(names):
            raise ValueError("reader names must be unique")
        for r in self.readers:
            for a in r.antennas:
                antennas[f"{r.name}/{a.port}"] = a.zone
        lots = [lot.name for lot in self.lots]
        if len(set(lots)) != len(lots):
            raise ValueError("lot names must be unique")
        if sum(lot.pieces for lot in self.lots) > 20_000:
            raise ValueError("at most 20000 tagged pieces in one world")
        known = set(lots)

        def antenna(ref: str, where: str) -> None:
            if ref not in antennas:
                raise ValueError(f"{where}: no antenna {ref!r} (known: {sorted(antennas)})")

        for lot in self.lots:
            for ref in lot.at:
                antenna(ref, f"lot {lot.name}")
        for i, m in enumerate(self.moves):
            if m.lot not in known:
                raise ValueError(f"moves[{i}]: no lot {m.lot!r}")
            for ref in m.path:
                antenna(ref, f"moves[{i}]")
        for i, d in enumerate(self.departures):
            if d.lot not in known:
                raise ValueError(f"departures[{i}]: no lot {d.lot!r}")
        for i, rel in enumerate(self.releases):
            if rel.lot not in known:
                raise ValueError(f"releases[{i}]: no lot {rel.lot!r}")
        for i, itf in enumerate(self.interference):
            for ref in itf.at:
                if ref not in antennas and ref not in names:
                    raise ValueError(f"interference[{i}]: no reader or antenna {ref!r}")
        sensors = [s.name for s in self.sensors]
        if len(set(sensors)) != len(sensors):
            raise ValueError("sensor names must be unique")
        trackers = [t.name for t in self.trackers]
        if len(set(trackers)) != len(trackers):
            raise ValueError("tracker names must be unique")
        if self.trackers and self.fences is None:
            raise ValueError("trackers need the site's fences (fences)")
        for t in self.trackers:
            times = [w.at_s for w in t.waypoints]
            if times != sorted(times):
                raise ValueError(f"tracker {t.name}: waypoints must be in time order")
        return self

    # -- derived -----------------------------------------------------------------------------
    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def epoch_us(self) -> int:
        """Simulated Unix time of the start, in microseconds."""
        return int(self.start.replace(tzinfo=self.zone).timestamp() * 1_000_000)

    def at_us(self, at_s: float) -> int:
        return self.epoch_us + round(at_s * 1_000_000)

    def zone_of(self, ref: str) -> str:
        reader, port = split_ref(ref)
        for r in self.readers:
            if r.name == reader:
                for a in r.antennas:
                    if a.port == port:
                        return a.zone
        raise KeyError(ref)

    def epcs(self, lot: str) -> list[str]:
        from firmware_sim.tags import sgtin96

        index = [x.name for x in self.lots].index(lot)
        spec = self.lots[index]
        # One item reference per lot, from its place in the world; serials 1..pieces.
        digits = 13 - len(spec.company_prefix)
        item = f"{(812345 + index) % 10 ** digits:0{digits}d}"
        return [sgtin96(spec.company_prefix, item, s) for s in range(1, spec.pieces + 1)]

    def signals(self, seed: int = 0, *, chunk_s: float = 3600.0) -> Iterator[Signal]:
        """The world's raw signals in time order (ties in a fixed order), deterministic per
        seed; generated a chunk of simulated time at a time, so memory stays bounded."""
        from firmware_sim.world.generate import generate

        return generate(self, seed, chunk_s=chunk_s)
