"""Which dock door or bay a tag is in, from the antenna that reads it and how loudly.

Theory of operation: each zone is a set of (reader, antenna) pairs, optionally with a minimum
RSSI (a weak read through the wall from the next bay does not count). Per tag we keep a smoothed
RSSI for every zone that has read it. A tag enters its first zone on its first qualifying read.
It moves from zone A to zone B only when B's smoothed RSSI beats A's by ``margin_cdbm`` (or A
has not read it for ``stale_s``) on ``confirm_reads`` consecutive reads from B: hysteresis, so a
tag on the boundary between two doors does not flap between them. Pure: values in, changes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_NO_RSSI_CDBM = -9000  # a read without RSSI counts as a weak one


@dataclass(frozen=True, slots=True)
class ZoneDefinition:
    name: str
    antennas: frozenset[int]
    reader: str | None = None  # None: these antenna numbers on any reader
    min_rssi_cdbm: int | None = None


@dataclass(frozen=True, slots=True)
class ZoneChange:
    epc: str
    zone: str
    previous: str | None
    rssi_cdbm: int  # smoothed, in the new zone
    reader: str
    at_us: int


class _TagZones:
    __slots__ = ("candidate", "candidate_reads", "current", "heard")

    def __init__(self) -> None:
        self.current: str | None = None
        self.candidate: str | None = None
        self.candidate_reads = 0
        self.heard: dict[str, list[float]] = {}  # zone -> [smoothed rssi, last read us]


class ZoneTracker:
    def __init__(
        self,
        zones: Iterable[ZoneDefinition],
        *,
        margin_cdbm: int = 300,
        confirm_reads: int = 3,
        rssi_weight: float = 0.3,
        stale_s: float = 10.0,
    ) -> None:
        if confirm_reads < 1 or not 0 < rssi_weight <= 1:
            raise ValueError("confirm_reads >= 1 and 0 < rssi_weight <= 1 required")
        self._by_antenna: dict[tuple[str | None, int], ZoneDefinition] = {}
        for zone in zones:
            for antenna in zone.antennas:
                key = (zone.reader, antenna)
                if key in self._by_antenna:
                    raise ValueError(f"antenna {key} is in two zones")
                self._by_antenna[key] = zone
        self._margin = margin_cdbm
        self._confirm = confirm_reads
        self._weight = rssi_weight
        self._stale_us = int(stale_s * 1_000_000)
        self._tags: dict[str, _TagZones] = {}

    def zone_of(self, epc: str) -> str | None:
        state = self._tags.get(epc)
        return state.current if state else None

    def observe(
        self, reader: str, epc: str, antenna: int, rssi_cdbm: int | None, at_us: int
    ) -> ZoneChange | None:
        zone = self._by_antenna.get((reader, antenna)) or self._by_antenna.get((None, antenna))
        if zone is None:
            return None
        rssi = _NO_RSSI_CDBM if rssi_cdbm is None else rssi_cdbm
        if zone.min_rssi_cdbm is not None and rssi < zone.min_rssi_cdbm:
            return None
        state = self._tags.get(epc)
        if state is None:
            state = self._tags[epc] = _TagZones()
        heard = state.heard.get(zone.name)
        if heard is None:
            heard = state.heard[zone.name] = [float(rssi), at_us]
        else:
            heard[0] += (rssi - heard[0]) * self._weight
            heard[1] = max(heard[1], at_us)
        if state.current is None:
            state.current = zone.name
            return ZoneChange(epc, zone.name, None, round(heard[0]), reader, at_us)
        if zone.name == state.current:
            state.candidate = None
            state.candidate_reads = 0
            return None
        current = state.heard[state.current]
        louder = heard[0] > current[0] + self._margin
        stale = at_us - current[1] > self._stale_us
        if not (louder or stale):
            state.candidate = None
            state.candidate_reads = 0
            return None
        if state.candidate == zone.name:
            state.candidate_reads += 1
        else:
            state.candidate = zone.name
            state.candidate_reads = 1
        if state.candidate_reads < self._confirm:
            return None
        previous = state.current
        state.current = zone.name
        state.candidate = None
        state.candidate_reads = 0
        return ZoneChange(epc, zone.name, previous, round(heard[0]), reader, at_us)

    def forget(self, epc: str) -> None:
        """Drop a tag's history (it left the site)."""
        self._tags.pop(epc, None)
