"""Presence you can trust (issue 13), on values: a simulated field of tags, antennas and readers
drives the real `LotPresence` and `ZoneTracker` with raw reads, read cycles and the adapter's
health reports, on a simulated clock. Forklift moves inside the zone, reader power loss at any
stale timer, a long spell of interference, and a real departure, at 1-4 read rounds a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from edge.rfid.presence import LotDefinition, LotPresence, PresenceChange
from edge.rfid.reader import ReaderCycle
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.zones import ZoneChange, ZoneDefinition, ZoneTracker
from firmware_sim.tags import lot_tags

S = 1_000_000


@dataclass
class Field:
    """Tags in front of (reader, antenna) pairs; each powered reader runs ``rounds_per_s``
    inventory rounds a second, reads each tag in front of it with probability ``p`` per round
    and reports the round's end. A reader without power sends nothing; its adapter reports it
    offline ``stale_s`` after its last message and online again ``reconnect_s`` after power
    returns."""

    presence: LotPresence
    rounds_per_s: float
    p: float
    stale_s: float = 15.0
    reconnect_s: float = 2.0
    zones: ZoneTracker | None = None
    seed: int = 1
    where: dict[str, tuple[str, int] | None] = field(default_factory=dict)
    powered: dict[str, bool] = field(default_factory=dict)
    changes: list[PresenceChange] = field(default_factory=list)
    zone_moves: list[ZoneChange] = field(default_factory=list)
    t: float = 0.0
    _silent_since: dict[str, float] = field(default_factory=dict)
    _reported_offline: set[str] = field(default_factory=set)
    _back_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def place(self, epcs: list[str], reader: str | None, antenna: int = 1) -> None:
        for epc in epcs:
            self.where[epc] = None if reader is None else (reader, antenna)
            if reader is not None:
                self.powered.setdefault(reader, True)

    def power(self, reader: str, on: bool) -> None:
        self.powered[reader] = on
        if on:
            self._back_at[reader] = self.t + self.reconnect_s
        else:
            self._silent_since[reader] = self.t

    def run_until(self, until_s: float) -> None:
        step = 1 / self.rounds_per_s
        next_tick = int(self.t) + 1
        presence = self.presence
        while self.t + step <= until_s + 1e-9:
            self.t += step
            at_us = round(self.t * S)
            for reader, on in self.powered.items():
                if not on:
                    continue
                rows = [
                    (epc, spot[1], -5000, at_us)
                    for epc, spot in self.where.items()
                    if spot is not None and spot[0] == reader and self.rng.random() < self.p
                ]
                # The round's end is reported with the time it ended (the pipeline hands it on
                # at once, while the reads wait in the batch queue: the order does not matter).
                presence.reader_cycle(ReaderCycle(reader, (0,), at_us))
                self.changes += presence.observe_rows(reader, rows)
                if self.zones is not None:
                    for epc, antenna, rssi, t in rows:
                        moved = self.zones.observe(reader, epc, antenna, rssi, t)
                        if moved is not None:
                            self.zone_moves.append(moved)
            self._adapters(at_us)
            if self.t >= next_tick:
                self.changes += presence.tick(at_us)
                next_tick += 1

    def _adapters(self, at_us: int) -> None:
        """The adapters' stale timers and reconnections, as health reports."""
        for reader, on in self.powered.items():
            if not on:
                silent = self._silent_since[reader]
                if reader not in self._reported_offline and self.t - silent >= self.stale_s:
                    self._reported_offline.add(reader)
                    self.changes += self.presence.reader_offline(reader, at_us)
            elif reader in self._reported_offline and self.t >= self._back_at[reader]:
                self._reported_offline.discard(reader)
                self.presence.reader_online(reader, at_us)

    def states(self, epcs: list[str]) -> set[str | None]:
        return {self.presence.state_of(e) for e in epcs}


def _events(changes: list[PresenceChange], state: str) -> list[PresenceChange]:
    return [c for c in changes if c.state == state]


# -- a forklift moves pallets between bays of the lot's zone ---------------------------------


@pytest.mark.parametrize("rounds_per_s", [1, 2, 4])
@pytest.mark.parametrize("transit_s", [8, 25])
def test_a_forklift_move_inside_the_zone_is_a_zone_change_never_a_departure(
    rounds_per_s: float, transit_s: float
) -> None:
    """Main at 4 rounds/s: the adaptive window (23 mean gaps, about 7 s at p = 0.8) called every
    8 s transit a departure. The lot's move window (30 s) is a floor whatever the read rate."""
    tags = lot_tags(0, 40)
    pallets = [tags[i * 8:(i + 1) * 8] for i in range(5)]
    bays = ZoneTracker([ZoneDefinition("bay-1", frozenset({1})),
                        ZoneDefinition("bay-3", frozenset({3}))])
    presence = LotPresence([LotDefinition("LOT-A", frozenset(tags))], started_us=0)
    world = Field(presence, rounds_per_s, p=0.8, zones=bays)
    world.place(tags, "r1", antenna=1)
    world.run_until(120)
    assert world.states(tags) == {"present"}
    for pallet in pallets:  # one after another: lifted, carried unread, set down in bay 3
        world.place(pallet, None)
        world.run_until(world.t + transit_s)
        world.place(pallet, "r1", antenna=3)
        world.run_until(world.t + 20)
    world.run_until(world.t + 120)

    assert _events(world.changes, "missing") == []
    assert _events(world.changes, "unknown") == []
    assert world.states(tags) == {"present"}
    moved = {(m.epc, m.previous, m.zone) for m in world.zone_moves if m.previous is not None}
    assert moved == {(e, "bay-1", "bay-3") for e in tags}


def test_the_move_window_does_not_depend_on_the_read_rate() -> None:
    tags = lot_tags(0, 4)
    presence = LotPresence([LotDefinition("LOT-A", frozenset(tags), move_window_s=45)], 0)
    world = Field(presence, rounds_per_s=4, p=0.9)
    world.place(tags, "r1")
    world.run_until(60)
    # mean gap about 0.28 s: 23 gaps are 6.4 s, but no tag leaves in under 45 s
    assert {presence.window_of(e) for e in tags} == {45.0}


# -- a reader loses power ------------------------------------------------------------------


@pytest.mark.parametrize("rounds_per_s", [2, 4])
@pytest.mark.parametrize("stale_s", [5, 15, 60, 400])
def test_a_reader_without_power_makes_its_tags_unknown_never_missing(
    rounds_per_s: float, stale_s: float
) -> None:
    """Reader 2 loses power for 5 min; 20 of lot A's 40 tags are carried off meanwhile. Main at
    2-4 rounds/s with a 15 s stale timer declared all 40 missing 6-14 s after the power loss.
    Now: unknown during the outage, whatever the stale timer (400 s: the adapter never notices),
    and after power returns exactly the 20 taken are missing, the rest present again."""
    lot_a, lot_b = lot_tags(0, 40), lot_tags(1, 40)
    presence = LotPresence(
        [LotDefinition("LOT-A", frozenset(lot_a)), LotDefinition("LOT-B", frozenset(lot_b))],
        started_us=0,
    )
    world = Field(presence, rounds_per_s, p=0.8, stale_s=stale_s)
    world.place(lot_a, "r2", antenna=1)
    world.place(lot_b, "r1", antenna=1)
    world.run_until(300)
    world.power("r2", False)
    world.run_until(400)
    taken = lot_a[:20]
    world.place(taken, None)
    world.run_until(600)
    during = list(world.changes)
    world.power("r2", True)
    world.run_until(700)

    assert _events(during, "missing") == []
    assert world.states(lot_b) == {"present"}  # the other reader's lot is untouched
    unknown = _events(during, "unknown")
    assert {c.epc for c in unknown} == set(lot_a)
    # unknown at the latest a window (30 s) plus a cycle silence (5 s) after the power loss,
    # or when the adapter reports the reader offline, if that is sooner
    assert max(c.at_us for c in unknown) <= (300 + min(stale_s, 30 + 5) + 1) * S
    missing = _events(world.changes, "missing")
    assert {c.epc for c in missing} == set(taken)
    assert all(c.previous == "unknown" for c in missing)
    # proven after the return: a window of cycles from the reader
    assert min(c.at_us for c in missing) > 600 * S
    assert max(c.at_us for c in missing) <= (600 + world.reconnect_s + 30 + 1) * S
    assert world.states(lot_a[20:]) == {"present"}
    assert [c for c in world.changes if c.event == "tag_returned"] == []


def test_a_reader_that_stops_cycling_but_keeps_its_connection_proves_nothing() -> None:
    """A hung reader answers keepalives (the adapter stays online) but runs no inventory."""
    tags = lot_tags(0, 10)
    presence = LotPresence([LotDefinition("LOT-A", frozenset(tags))], started_us=0)
    world = Field(presence, rounds_per_s=4, p=0.8, stale_s=10_000)
    world.place(tags, "r1")
    world.run_until(60)
    world.power("r1", False)  # nothing read, no cycle; the connection looks alive
    world.run_until(3600)
    assert _events(world.changes, "missing") == []
    assert world.states(tags) == {"unknown"}


# -- interference ----------------------------------------------------------------------------


@pytest.mark.parametrize("rounds_per_s", [1, 4])
def test_interference_for_an_hour_is_no_departure(rounds_per_s: float) -> None:
    """200 tags on 3 readers, read probability 0.85, then 0.45 for 60 min, then 0.85."""
    tags = lot_tags(0, 200)
    presence = LotPresence([LotDefinition("LOT-A", frozenset(tags))], started_us=0)
    world = Field(presence, rounds_per_s, p=0.85, seed=int(rounds_per_s))
    for i, reader in enumerate(("r1", "r2", "r3")):
        world.place(tags[i::3], reader, antenna=1 + i)
    world.run_until(600)
    world.p = 0.45
    world.run_until(600 + 3600)
    world.p = 0.85
    world.run_until(600 + 3600 + 600)
    assert _events(world.changes, "missing") == []
    assert _events(world.changes, "unknown") == []
    assert world.states(tags) == {"present"}


# -- a real departure ------------------------------------------------------------------------


@pytest.mark.parametrize(("rounds_per_s", "p", "within_s"), [(4, 0.8, 31), (1, 0.6, 59)])
def test_a_real_departure_under_a_live_reader_is_still_detected(
    rounds_per_s: float, p: float, within_s: float
) -> None:
    """Detected within max(window, proof cycles / rounds per s) plus a tick. At 4 rounds/s and
    p = 0.8: the 30 s move window (the 39 cycles take 10 s), so 31 s. At 1 round/s and p = 0.6:
    23 estimated mean gaps (38 s, up to 1.5 x that for the estimate's error) or 39 cycles."""
    policy = SmoothingPolicy()
    tags = lot_tags(0, 40)
    presence = LotPresence([LotDefinition("LOT-A", frozenset(tags))], 0, policy=policy)
    world = Field(presence, rounds_per_s, p=p)
    world.place(tags, "r1")
    world.run_until(300)
    taken = tags[:8]
    world.place(taken, None)
    world.run_until(400)

    missing = _events(world.changes, "missing")
    assert {c.epc for c in missing} == set(taken)
    mean_gap_s = 1 / (p * rounds_per_s)
    window = policy.detection_bound_s(mean_gap_s, move_window_s=30)
    bound = policy.detection_bound_s(mean_gap_s, move_window_s=30, cycles_per_s=rounds_per_s)
    # the adaptive part of the window is an estimate: allow it 50 % error, plus one tick
    assert max(1.5 * window if window > 30 else window, bound) + 1 <= within_s
    for c in missing:
        assert c.last_seen_us is not None
        assert c.at_us - c.last_seen_us <= within_s * S
        assert c.at_us <= (300 + within_s) * S
    assert world.states(tags[8:]) == {"present"}


# -- cycles of some antennas only ----------------------------------------------------------


def test_cycles_of_some_antennas_prove_nothing_for_the_others() -> None:
    """A reader that reports its rounds per antenna: the proof needs every antenna it reads
    on, since a tag last read on one may have moved to another."""
    policy = SmoothingPolicy(cycle_read_probability=0.5)  # N = 20
    n = policy.proof_cycles
    tag = lot_tags(0, 1)[0]
    presence = LotPresence([LotDefinition("LOT-A", frozenset({tag}), absence_window_s=5)], 0,
                           policy=policy)
    presence.reader_cycle(ReaderCycle("r1", (2,), 0))  # the reader reports per antenna
    presence.observe_rows("r1", [(tag, 1, -5000, 1 * S)])
    for i in range(1, 4 * 59):  # only antenna 2 keeps cycling, four rounds a second
        presence.reader_cycle(ReaderCycle("r1", (2,), S + i * S // 4))
    # the reader is cycling, so not unknown; but not one round on antenna 1: not missing
    assert presence.tick(60 * S) == []
    for i in range(n):  # antenna 1 gets one short of N + 1 rounds after the read
        presence.reader_cycle(ReaderCycle("r1", (1,), 61 * S + i * S // 4))
    assert presence.tick(70 * S) == []
    presence.reader_cycle(ReaderCycle("r1", (1, 2), 71 * S))
    [gone] = presence.tick(72 * S)
    assert (gone.epc, gone.state) == (tag, "missing")
