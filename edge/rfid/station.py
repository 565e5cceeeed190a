"""Everything the gateway decides about RFID reads, without I/O: reads in, messages out.

Theory of operation. The station holds the pure deciders (``LotPresence`` for present, missing
and unknown; ``ZoneTracker`` for zone moves) and the read batches not yet sent. Each call takes
values (a batch of observations, a reader's health or completed read cycle, the time) and
returns an ``RfidOutput``:
the messages to emit, each with the moment it is about, and what the agent's alerting stage
must see that is not a message (presence changes, reader health; edge/alerting.py). The glue
(edge/rfid/pipeline.py) runs the readers and the timers and hands the output to the context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel

from contract import (
    LotCountBody,
    MessageType,
    PresenceChangeBody,
    TagObservation,
    TagReadsBody,
)
from contract.messages import TagZoneBody, UnexpectedTag, UnexpectedTagsBody
from edge.alerting import Observation
from edge.rfid.presence import LotDefinition, LotPresence, PresenceChange, SeenRow, TagRow
from edge.rfid.reader import ReaderCycle, ReaderHealth
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.zones import ZoneDefinition, ZoneTracker

UNEXPECTED_REPORT_LIMIT = 1000  # new unexpected EPCs per report; the totals count them all


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass
class RfidOutput:
    messages: list[tuple[MessageType, BaseModel, datetime | None]] = field(default_factory=list)
    observed: list[Observation] = field(default_factory=list)

    def extend(self, other: RfidOutput) -> RfidOutput:
        self.messages += other.messages
        self.observed += other.observed
        return self


class RfidStation:
    def __init__(
        self,
        lots: list[LotDefinition],
        zones: list[ZoneDefinition],
        started_us: int,
        *,
        policy: SmoothingPolicy,
        batch_max_reads: int,
        zone_margin_cdbm: int,
        zone_confirm_reads: int,
        zone_stale_s: float,
        telemetry: bool = True,
    ) -> None:
        self.presence = LotPresence(lots, started_us, policy=policy)
        # ``tag_reads`` and ``tag_zone`` are telemetry for the cloud's map: no decision here or
        # in the cloud's rules depends on them. A caller that drops them (the world's runner,
        # which judges decisions only) asks for none and pays for no zone tracking or batching.
        self.telemetry = telemetry
        self.zones = (
            ZoneTracker(zones, margin_cdbm=zone_margin_cdbm, confirm_reads=zone_confirm_reads,
                        stale_s=zone_stale_s)
            if zones and telemetry else None
        )
        self.batch_max_reads = batch_max_reads
        self._pending: dict[str, list[TagRow]] = {}  # per reader: rows for tag_reads

    def _changes(self, changes: list[PresenceChange]) -> RfidOutput:
        out = RfidOutput()
        for c in changes:
            body = PresenceChangeBody(
                lot=c.lot, epc=c.epc, state=c.state, previous=c.previous,
                last_seen_us=c.last_seen_us, reader=c.reader,
            )
            out.messages.append((MessageType.PRESENCE_CHANGE, body, _time(c.at_us)))
        if changes:
            out.observed.append(changes)
        return out

    def on_health(self, health: ReaderHealth) -> RfidOutput:
        if health.online:
            self.presence.reader_online(health.reader_id, health.at_us)
            out = RfidOutput()
        else:
            out = self._changes(self.presence.reader_offline(health.reader_id, health.at_us))
        out.observed.append(health)
        return out

    def on_cycle(self, cycle: ReaderCycle) -> None:
        """A reader's completed read cycle: nothing to emit, the proof presence waits for."""
        self.presence.reader_cycle(cycle)

    def on_cycles(self, reader_id: str, antennas: tuple[int, ...], ends_us: Iterable[int]
                  ) -> None:
        """Several completed cycles of one reader over the same antennas, in order: as one
        ``on_cycle`` each, in one call (a report's rounds)."""
        self.presence.reader_cycles(reader_id, antennas, ends_us)

    def on_observations(self, batch: list[TagObservation]) -> RfidOutput:
        changes = self.presence.observe_batch(batch)
        out = RfidOutput()
        for obs in batch if self.telemetry else ():
            pending = self._pending.setdefault(obs.reader_id, [])
            pending.append(obs.as_row())
            if len(pending) >= self.batch_max_reads:
                out.extend(self.flush(obs.reader_id))
        if changes:
            out.extend(self._changes(changes))
        if self.zones is not None:
            out.extend(self._zone_moves(
                (o.reader_id, o.epc, o.antenna, o.rssi_cdbm, o.observed_at_us) for o in batch))
        return out

    def on_report(self, reader_id: str, rows: list[SeenRow]) -> RfidOutput:
        """A reader's aggregated report, one row per tag (LLRP TagReportData with its seen
        count, first and last read): presence decides it as the per-read path decides the same
        reads (``LotPresence.observe_seen``); zones and ``tag_reads`` take each tag at its last
        read with its peak RSSI, which is what an adapter yields per report."""
        out = RfidOutput()
        changes = self.presence.observe_seen(reader_id, rows)
        if self.telemetry:
            pending = self._pending.setdefault(reader_id, [])
            for epc, antenna, rssi, _first, last, _count in rows:
                pending.append((epc, antenna, rssi, last))
                if len(pending) >= self.batch_max_reads:
                    out.extend(self.flush(reader_id))
                    pending = self._pending.setdefault(reader_id, [])
        if changes:
            out.extend(self._changes(changes))
        if self.zones is not None:
            out.extend(self._zone_moves(
                (reader_id, epc, antenna, rssi, last)
                for epc, antenna, rssi, _first, last, _count in rows))
        return out

    def _zone_moves(self, reads: Iterable[tuple[str, str, int, int | None, int]]
                    ) -> RfidOutput:
        """Reads as (reader, epc, antenna, rssi, at) through the zone tracker."""
        assert self.zones is not None
        out = RfidOutput()
        observe = self.zones.observe
        for reader_id, epc, antenna, rssi, at_us in reads:
            moved = observe(reader_id, epc, antenna, rssi, at_us)
            if moved is not None:
                body = TagZoneBody(
                    epc=moved.epc, zone=moved.zone, previous=moved.previous,
                    reader=moved.reader, rssi_cdbm=moved.rssi_cdbm,
                    lot=self.presence.lot_of(moved.epc),
                )
                out.messages.append((MessageType.TAG_ZONE, body, _time(moved.at_us)))
        return out

    def flush(self, reader_id: str | None = None) -> RfidOutput:
        """The read batches waiting (one reader's, or all) as ``tag_reads``."""
        out = RfidOutput()
        for rid in [reader_id] if reader_id else list(self._pending):
            reads = self._pending.pop(rid, [])
            if reads:
                body = TagReadsBody(reader=rid, reads=reads)
                out.messages.append((MessageType.TAG_READS, body, _time(reads[-1][3])))
        return out

    def tick(self, now_us: int) -> RfidOutput:
        return self._changes(self.presence.tick(now_us))

    def counts(self) -> RfidOutput:
        """Each lot's count, and tags in no lot: never dropped silently, each new EPC once."""
        out = RfidOutput()
        for count in self.presence.counts():
            body = LotCountBody(
                lot=count.lot, expected=count.expected, present=count.present,
                missing=count.missing, unknown=count.unknown,
            )
            out.messages.append((MessageType.LOT_COUNT, body, None))
        if self.presence.unexpected_tags:
            new = self.presence.unexpected(only_new=True, limit=UNEXPECTED_REPORT_LIMIT)
            unexpected = UnexpectedTagsBody(
                total_tags=self.presence.unexpected_tags,
                total_reads=self.presence.unexpected_reads,
                new=[
                    UnexpectedTag(
                        epc=u.epc, reads=u.reads, first_seen_us=u.first_seen_us,
                        last_seen_us=u.last_seen_us, reader=u.reader,
                    )
                    for u in new
                ],
            )
            out.messages.append((MessageType.UNEXPECTED_TAGS, unexpected, None))
        return out
