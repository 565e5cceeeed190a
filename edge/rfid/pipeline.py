"""RFID pipeline: readers -> batched ``tag_reads`` telemetry, presence changes.

Glue only: adapters produce observations, ``LotPresence`` decides, the context emits; presence
changes and reader health also go to the agent's alerting stage (``ctx.observe``,
edge/alerting.py), which decides the tag-missing and reader-offline alerts. Reads are batched
(up to ``batch_max_reads`` or ``batch_max_ms``) so a busy reader does not cost one MQTT
message per read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract import (
    LotCountBody,
    MessageType,
    PresenceChangeBody,
    TagObservation,
    TagReadsBody,
)
from contract.messages import TagZoneBody, UnexpectedTag, UnexpectedTagsBody
from edge.pipelines import EdgeContext, Pipeline
from edge.rfid.epc import Gs1Pattern
from edge.rfid.impinj import ImpinjIotReader, ImpinjIotReaderConfig
from edge.rfid.llrp_session import LlrpReader, LlrpReaderConfig
from edge.rfid.presence import LotDefinition, LotPresence, PresenceChange
from edge.rfid.reader import HealthCallback, ReaderHealth, TagReader
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.zebra import ZebraIotReader, ZebraIotReaderConfig
from edge.rfid.zones import ZoneDefinition, ZoneTracker

log = logging.getLogger(__name__)

ReaderConfig = Annotated[
    ImpinjIotReaderConfig | LlrpReaderConfig | ZebraIotReaderConfig, Field(discriminator="kind")
]

READER_FACTORIES: dict[str, Callable[[Any, HealthCallback], TagReader]] = {
    "impinj_iot": ImpinjIotReader,
    "llrp": LlrpReader,
    "zebra_iot": ZebraIotReader,
}


class LotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    epcs: list[str] = Field(default_factory=list)
    # GS1 id patterns, e.g. urn:epc:idpat:sgtin:0614141.812345.[1-500] (edge/rfid/epc.py)
    patterns: list[str] = Field(default_factory=list)
    absence_window_s: float = Field(30.0, gt=0)
    # Readers covering the lot: while one is offline its never-read tags stay unknown.
    readers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_tags(self) -> LotConfig:
        if not self.epcs and not self.patterns:
            raise ValueError(f"lot {self.id} needs epcs or patterns")
        for pattern in self.patterns:
            Gs1Pattern.parse(pattern)
        return self

    def definition(self) -> LotDefinition:
        return LotDefinition(
            lot_id=self.id,
            epcs=frozenset(e.upper() for e in self.epcs),
            absence_window_s=self.absence_window_s,
            patterns=tuple(Gs1Pattern.parse(p) for p in self.patterns),
            readers=frozenset(self.readers),
        )


class ZoneConfig(BaseModel):
    """A dock door or bay: the antennas that cover it (edge/rfid/zones.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    antennas: list[int] = Field(min_length=1)
    reader: str | None = None  # None: these antenna numbers on any reader
    min_rssi_cdbm: int | None = None

    def definition(self) -> ZoneDefinition:
        return ZoneDefinition(
            self.name, frozenset(self.antennas), self.reader, self.min_rssi_cdbm
        )


class RfidSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    readers: list[ReaderConfig] = Field(min_length=1)
    lots: list[LotConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    zone_margin_cdbm: int = Field(300, ge=0)
    zone_confirm_reads: int = Field(3, ge=1)
    zone_stale_s: float = Field(10.0, gt=0)  # a zone silent this long loses the tag to another
    # The adaptive departure window (edge/rfid/smoothing.py, docs/rfid.md).
    departure_tail_multiplier: float = Field(23.0, gt=0)
    min_window_s: float = Field(5.0, gt=0)
    max_window_s: float = Field(600.0, gt=0)
    batch_max_reads: int = Field(500, ge=1, le=10_000)
    batch_max_ms: int = Field(100, ge=1)
    tick_interval_s: float = Field(1.0, gt=0)
    lot_count_interval_s: float = Field(10.0, gt=0)


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


class RfidPipeline:
    def __init__(self, section: RfidSection, ctx: EdgeContext) -> None:
        self._section = section
        self._ctx = ctx
        policy = SmoothingPolicy(
            tail_multiplier=section.departure_tail_multiplier,
            min_window_s=section.min_window_s,
            max_window_s=section.max_window_s,
        )
        self.presence = LotPresence(
            [lot.definition() for lot in section.lots], ctx.now_us(), policy=policy
        )
        self._pending: dict[str, list[TagObservation]] = {}
        self.zones = (
            ZoneTracker(
                [z.definition() for z in section.zones],
                margin_cdbm=section.zone_margin_cdbm,
                confirm_reads=section.zone_confirm_reads,
                stale_s=section.zone_stale_s,
            )
            if section.zones
            else None
        )

    def _emit_changes(self, changes: list[PresenceChange]) -> None:
        for c in changes:
            body = PresenceChangeBody(
                lot=c.lot, epc=c.epc, state=c.state, previous=c.previous,
                last_seen_us=c.last_seen_us, reader=c.reader,
            )
            self._ctx.emit(MessageType.PRESENCE_CHANGE, body, observed_at=_time(c.at_us))
        if changes:
            self._ctx.observe(changes)

    def on_health(self, health: ReaderHealth) -> None:
        log.info(
            "reader health", extra={"reader": health.reader_id, "online": health.online,
                                    "reason": health.reason},
        )
        if health.online:
            self.presence.reader_online(health.reader_id, health.at_us)
        else:
            self._emit_changes(self.presence.reader_offline(health.reader_id, health.at_us))
        self._ctx.observe(health)

    def on_observations(self, batch: list[TagObservation]) -> None:
        changes = self.presence.observe_batch(batch)
        for obs in batch:
            pending = self._pending.setdefault(obs.reader_id, [])
            pending.append(obs)
            if len(pending) >= self._section.batch_max_reads:
                self.flush(obs.reader_id)
        if changes:
            self._emit_changes(changes)
        if self.zones is not None:
            self._track_zones(batch)

    def _track_zones(self, batch: list[TagObservation]) -> None:
        assert self.zones is not None
        for obs in batch:
            moved = self.zones.observe(
                obs.reader_id, obs.epc, obs.antenna, obs.rssi_cdbm, obs.observed_at_us
            )
            if moved is not None:
                body = TagZoneBody(
                    epc=moved.epc, zone=moved.zone, previous=moved.previous,
                    reader=moved.reader, rssi_cdbm=moved.rssi_cdbm,
                    lot=self.presence.lot_of(moved.epc),
                )
                self._ctx.emit(MessageType.TAG_ZONE, body, observed_at=_time(moved.at_us))

    def emit_unexpected(self) -> None:
        """Tags in no lot: never dropped silently, each new EPC reported once."""
        if not self.presence.unexpected_tags:
            return
        new = self.presence.unexpected(only_new=True, limit=1000)
        body = UnexpectedTagsBody(
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
        self._ctx.emit(MessageType.UNEXPECTED_TAGS, body)

    def flush(self, reader_id: str | None = None) -> None:
        readers = [reader_id] if reader_id else list(self._pending)
        for rid in readers:
            reads = self._pending.pop(rid, [])
            if reads:
                body = TagReadsBody(reader=rid, reads=[o.as_row() for o in reads])
                self._ctx.emit(
                    MessageType.TAG_READS, body, observed_at=_time(reads[-1].observed_at_us)
                )

    def tick(self) -> None:
        self._emit_changes(self.presence.tick(self._ctx.now_us()))

    def emit_counts(self) -> None:
        for count in self.presence.counts():
            body = LotCountBody(
                lot=count.lot, expected=count.expected, present=count.present,
                missing=count.missing, unknown=count.unknown,
            )
            self._ctx.emit(MessageType.LOT_COUNT, body)
        self.emit_unexpected()

    async def _read(self, config: ReaderConfig) -> None:
        reader = READER_FACTORIES[config.kind](config, self.on_health)
        async with reader:
            async for batch in reader.batches():
                self.on_observations(batch)

    async def _every(self, seconds: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            action()

    async def run(self) -> None:
        section = self._section
        async with asyncio.TaskGroup() as group:
            for reader in section.readers:
                group.create_task(self._read(reader), name=f"reader:{reader.id}")
            group.create_task(self._every(section.batch_max_ms / 1000, self.flush))
            group.create_task(self._every(section.tick_interval_s, self.tick))
            group.create_task(self._every(section.lot_count_interval_s, self.emit_counts))


async def run(section: RfidSection, ctx: EdgeContext) -> None:
    await RfidPipeline(section, ctx).run()


PIPELINE = Pipeline(section="rfid", config_model=RfidSection, run=run)
