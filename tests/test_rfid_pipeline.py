"""The RFID pipeline end to end with the simulated LLRP reader over TCP: reads become
presence changes, zone changes, unexpected-tag reports and, through the agent's alerting stage,
reader and tag-missing alerts."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime

from pydantic import BaseModel

from contract import MessageType
from contract.messages import validate_body
from edge.alerting import EdgeAlerting, Observation
from edge.rfid.pipeline import RfidPipeline, RfidSection
from firmware_sim.llrp_reader import LlrpReaderSim, ScriptedEvent, TagPopulation
from firmware_sim.tags import lot_tags


class RecordingContext:
    """An EdgeContext that keeps what the pipeline emits, checked against the contract, and
    what the agent's alerting stage makes of what the pipeline observes."""

    site = "site-1"
    gateway = "gw-1"

    def __init__(self) -> None:
        self.emitted: list[tuple[MessageType, BaseModel]] = []
        # No absence window: the one removed tag is the departure incident at once.
        self.alerting = EdgeAlerting(None, absence_window_s=0)

    def emit(
        self, msg_type: MessageType, body: BaseModel, *, observed_at: datetime | None = None
    ) -> None:
        validate_body(msg_type, body.model_dump(mode="json"))
        self.emitted.append((msg_type, body))

    def observe(self, seen: Observation) -> None:
        for alert in self.alerting.on_observed(seen).alerts:
            self.emit(MessageType.ALERT, alert)

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def of(self, msg_type: MessageType) -> list[BaseModel]:
        return [body for t, body in self.emitted if t is msg_type]


async def test_pipeline_with_the_simulated_llrp_reader() -> None:
    lot_a, lot_b = lot_tags(0, 8), lot_tags(1, 8)
    strangers = lot_tags(7, 3)
    population = TagPopulation(
        {1: lot_a, 2: lot_b + strangers}, read_probability=0.9, rng=random.Random(5)
    )
    script = [
        ScriptedEvent(at_s=1.5, action="remove", epcs=(lot_a[0],)),
        ScriptedEvent(at_s=1.5, action="move", epcs=(lot_b[0],), antenna=3),
        ScriptedEvent(at_s=4.0, action="unplug", seconds=1.0),
    ]
    async with LlrpReaderSim(population, rounds_per_s=20, script=script) as sim:
        section = RfidSection.model_validate(
            {
                "readers": [
                    {
                        "kind": "llrp",
                        "id": "dock-1",
                        "host": "127.0.0.1",
                        "port": sim.port,
                        "keepalive_s": 0.3,
                    }
                ],
                "lots": [
                    {"id": "LOT-A", "epcs": lot_a, "absence_window_s": 1.0},
                    {
                        "id": "LOT-B",
                        "patterns": ["urn:epc:idpat:sgtin:0614141.812346.[1-8]"],
                        "absence_window_s": 1.0,
                    },
                ],
                "zones": [
                    {"name": "door-1", "antennas": [1]},
                    {"name": "bay-B", "antennas": [2]},
                    {"name": "door-3", "antennas": [3]},
                ],
                "zone_stale_s": 1.0,
                "min_window_s": 0.5,
                "tick_interval_s": 0.2,
                "lot_count_interval_s": 0.5,
                "batch_max_ms": 50,
            }
        )
        ctx = RecordingContext()
        pipeline = RfidPipeline(section, ctx)
        task = asyncio.create_task(pipeline.run())
        def reader_back() -> bool:
            actions = [
                a.action
                for a in ctx.of(MessageType.ALERT)
                if a.alert_type == "tamper.reader_offline"
            ]
            return "raise" in actions and actions[-1] == "clear"

        try:
            await asyncio.sleep(5.0)
            deadline = time.monotonic() + 20
            while not reader_back() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.6)  # a lot-count interval after the return
        finally:
            task.cancel()

    changes = ctx.of(MessageType.PRESENCE_CHANGE)
    departed = [c for c in changes if c.state == "missing" and c.previous == "present"]
    # the removed tag departs; the unplugged reader makes tags unknown, never missing
    assert {c.epc for c in departed} == {lot_a[0]}, departed
    assert any(c.state == "unknown" for c in changes)
    assert {c.epc for c in changes if c.state == "present"} == set(lot_a + lot_b)

    alerts = ctx.of(MessageType.ALERT)
    offline = [a for a in alerts if a.alert_type == "tamper.reader_offline"]
    assert [a.action for a in offline][-2:] == ["raise", "clear"]
    assert any(a.alert_type == "theft.unreleased_departure" and a.action == "raise"
               for a in alerts)

    zones = ctx.of(MessageType.TAG_ZONE)
    moved = [z for z in zones if z.epc == lot_b[0] and z.zone == "door-3"]
    assert moved and moved[0].previous == "bay-B" and moved[0].lot == "LOT-B"

    unexpected = ctx.of(MessageType.UNEXPECTED_TAGS)
    assert unexpected and unexpected[-1].total_tags == 3
    assert {t.epc for u in unexpected for t in u.new} == set(strangers)

    counts = [c for c in ctx.of(MessageType.LOT_COUNT) if c.lot == "LOT-B"]
    assert counts[-1].expected == 8
    reads = ctx.of(MessageType.TAG_READS)
    assert sum(len(r.reads) for r in reads) > 200
