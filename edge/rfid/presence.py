"""Which tags of which lot are present, missing or unknown: a pure state machine.

Theory of operation: every expected tag starts ``unknown``. A read makes it ``present``. A
present tag that has not been read for longer than its lot's absence window becomes
``missing``. While the reader that last saw a tag is offline, the tag is ``unknown``, never
``missing``: the absence of reads proves nothing then. Time is passed in (microseconds), so
tests drive it without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from contract import TagObservation
from contract.messages import PresenceState


@dataclass(frozen=True, slots=True)
class LotDefinition:
    lot_id: str
    epcs: frozenset[str]
    absence_window_s: float = 30.0


@dataclass(frozen=True, slots=True)
class PresenceChange:
    lot: str
    epc: str
    state: PresenceState
    previous: PresenceState | None
    last_seen_us: int | None
    reader: str | None
    at_us: int


@dataclass(frozen=True, slots=True)
class LotCount:
    lot: str
    expected: int
    present: int
    missing: int
    unknown: int


@dataclass(slots=True)
class _Tag:
    lot: str
    window_us: int
    state: PresenceState = "unknown"
    last_seen_us: int | None = None
    reader: str | None = None


@dataclass
class LotPresence:
    lots: Iterable[LotDefinition]
    started_us: int
    unexpected_reads: int = 0
    _tags: dict[str, _Tag] = field(init=False, default_factory=dict)
    _lot_ids: list[str] = field(init=False, default_factory=list)
    _offline_readers: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        for lot in self.lots:
            self._lot_ids.append(lot.lot_id)
            window = int(lot.absence_window_s * 1_000_000)
            for epc in lot.epcs:
                self._tags[epc] = _Tag(lot=lot.lot_id, window_us=window)

    def observe(self, obs: TagObservation) -> list[PresenceChange]:
        tag = self._tags.get(obs.epc)
        if tag is None:
            self.unexpected_reads += 1
            return []
        if tag.last_seen_us is None or obs.observed_at_us > tag.last_seen_us:
            tag.last_seen_us = obs.observed_at_us
        tag.reader = obs.reader_id
        if tag.state == "present":
            return []
        return [self._move(obs.epc, tag, "present", obs.observed_at_us)]

    def reader_offline(self, reader_id: str, now_us: int) -> list[PresenceChange]:
        self._offline_readers.add(reader_id)
        return [
            self._move(epc, tag, "unknown", now_us)
            for epc, tag in self._tags.items()
            if tag.reader == reader_id and tag.state != "unknown"
        ]

    def reader_online(self, reader_id: str, now_us: int) -> None:
        self._offline_readers.discard(reader_id)
        # Tags behind the returning reader get a fresh window before they can be missed.
        for tag in self._tags.values():
            if tag.reader == reader_id and tag.state == "unknown":
                tag.last_seen_us = max(tag.last_seen_us or now_us, now_us)

    def tick(self, now_us: int) -> list[PresenceChange]:
        changes = []
        for epc, tag in self._tags.items():
            if tag.state == "missing" or tag.reader in self._offline_readers:
                continue
            reference = tag.last_seen_us if tag.last_seen_us is not None else self.started_us
            if now_us - reference > tag.window_us:
                changes.append(self._move(epc, tag, "missing", now_us))
        return changes

    def counts(self) -> list[LotCount]:
        tally = {lot: {"present": 0, "missing": 0, "unknown": 0} for lot in self._lot_ids}
        for tag in self._tags.values():
            tally[tag.lot][tag.state] += 1
        return [LotCount(lot=lot, expected=sum(c.values()), **c) for lot, c in tally.items()]

    def state_of(self, epc: str) -> PresenceState | None:
        tag = self._tags.get(epc)
        return tag.state if tag else None

    def _move(self, epc: str, tag: _Tag, state: PresenceState, at_us: int) -> PresenceChange:
        change = PresenceChange(
            lot=tag.lot,
            epc=epc,
            state=state,
            previous=tag.state,
            last_seen_us=tag.last_seen_us,
            reader=tag.reader,
            at_us=at_us,
        )
        tag.state = state
        return change
