"""RFID pipeline: readers -> batched ``tag_reads`` telemetry, presence changes.

Config + station + glue: adapters produce observations, ``RfidStation`` (edge/rfid/station.py)
decides, the context emits; the readers' completed read cycles go to the station (the proof
presence needs before a silent tag is missing); presence changes and reader health also go to
the agent's alerting stage (``ctx.observe``, edge/alerting.py), which decides the tag-missing
and reader-offline alerts. Reads are batched (up to ``batch_max_reads`` or ``batch_max_ms``) so
a busy reader does not cost one MQTT message per read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.pipelines import EdgeContext, Pipeline, clock_of
from edge.rfid.epc import Gs1Pattern
from edge.rfid.impinj import ImpinjIotReader, ImpinjIotReaderConfig
from edge.rfid.llrp_session import LlrpReader, LlrpReaderConfig
from edge.rfid.presence import LotDefinition
from edge.rfid.reader import CycleCallback, HealthCallback, ReaderCycle, ReaderHealth, TagReader
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.station import RfidOutput, RfidStation
from edge.rfid.zebra import ZebraIotReader, ZebraIotReaderConfig
from edge.rfid.zones import ZoneDefinition

log = logging.getLogger(__name__)

ReaderConfig = Annotated[
    ImpinjIotReaderConfig | LlrpReaderConfig | ZebraIotReaderConfig, Field(discriminator="kind")
]

READER_FACTORIES: dict[str, Callable[[Any, HealthCallback, CycleCallback], TagReader]] = {
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
    # Longest unread move between antennas of the lot's zone (forklift trip); None: the
    # absence window. No tag of the lot is declared missing sooner (docs/rfid.md).
    move_window_s: float | None = Field(None, gt=0)
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
            move_window_s=self.move_window_s,
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
    # The reader's proof before a silent tag is missing (edge/rfid/smoothing.py): read cycles
    # enough that a tag read with this probability per cycle is missed by all of them with at
    # most this probability; a reader without a cycle for cycle_silence_s proves nothing.
    cycle_read_probability: float = Field(0.3, gt=0, lt=1)
    false_missing_bound: float = Field(1e-6, gt=0, lt=1)
    cycle_silence_s: float = Field(5.0, gt=0)
    batch_max_reads: int = Field(500, ge=1, le=10_000)
    batch_max_ms: int = Field(100, ge=1)
    tick_interval_s: float = Field(1.0, gt=0)
    lot_count_interval_s: float = Field(10.0, gt=0)


class RfidPipeline:
    """Glue: the readers and the timers feed the station; its output goes to the context."""

    def __init__(self, section: RfidSection, ctx: EdgeContext) -> None:
        self._section = section
        self._ctx = ctx
        self._clock = clock_of(ctx)  # the ticks, flushes and the LLRP stale timer run on it
        self.station = RfidStation(
            [lot.definition() for lot in section.lots],
            [z.definition() for z in section.zones],
            ctx.now_us(),
            policy=SmoothingPolicy(
                tail_multiplier=section.departure_tail_multiplier,
                min_window_s=section.min_window_s,
                max_window_s=section.max_window_s,
                cycle_read_probability=section.cycle_read_probability,
                false_missing_bound=section.false_missing_bound,
                cycle_silence_s=section.cycle_silence_s,
            ),
            batch_max_reads=section.batch_max_reads,
            zone_margin_cdbm=section.zone_margin_cdbm,
            zone_confirm_reads=section.zone_confirm_reads,
            zone_stale_s=section.zone_stale_s,
        )

    def _hand_on(self, out: RfidOutput) -> None:
        for msg_type, body, at in out.messages:
            self._ctx.emit(msg_type, body, observed_at=at)
        for seen in out.observed:
            self._ctx.observe(seen)

    def on_health(self, health: ReaderHealth) -> None:
        log.info(
            "reader health", extra={"reader": health.reader_id, "online": health.online,
                                    "reason": health.reason},
        )
        self._hand_on(self.station.on_health(health))

    def on_cycle(self, cycle: ReaderCycle) -> None:
        self.station.on_cycle(cycle)

    async def _read(self, config: ReaderConfig) -> None:
        reader = (LlrpReader(config, self.on_health, self.on_cycle, clock=self._clock)
                  if isinstance(config, LlrpReaderConfig)
                  else READER_FACTORIES[config.kind](config, self.on_health, self.on_cycle))
        async with reader:
            async for batch in reader.batches():
                self._hand_on(self.station.on_observations(batch))

    async def _every(self, seconds: float, produce: Callable[[], RfidOutput]) -> None:
        while True:
            await self._clock.sleep(seconds)
            self._hand_on(produce())

    async def run(self) -> None:
        section = self._section
        async with asyncio.TaskGroup() as group:
            for reader in section.readers:
                group.create_task(self._read(reader), name=f"reader:{reader.id}")
            group.create_task(self._every(section.batch_max_ms / 1000, self.station.flush))
            group.create_task(self._every(section.tick_interval_s,
                                          lambda: self.station.tick(self._ctx.now_us())))
            group.create_task(self._every(section.lot_count_interval_s, self.station.counts))


async def run(section: RfidSection, ctx: EdgeContext) -> None:
    await RfidPipeline(section, ctx).run()


PIPELINE = Pipeline(section="rfid", config_model=RfidSection, run=run)
