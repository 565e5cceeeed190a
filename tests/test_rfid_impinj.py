"""Impinj IoT device interface adapter over real HTTP: garbage lines are logged and skipped,
a dead stream is an offline reader that comes back, never a missing tag."""

from __future__ import annotations

import asyncio
import json
import random
import time

from contract import TagObservation
from edge.rfid.impinj import ImpinjIotReader, ImpinjIotReaderConfig
from edge.rfid.presence import LotDefinition, LotPresence
from edge.rfid.reader import ReaderHealth
from firmware_sim.impinj_reader import STREAM_PATH, SimulatedImpinjReader, TagField
from firmware_sim.tags import lot_tags

GOOD = {
    "timestamp": "2024-05-01T10:00:00.000000Z",
    "hostname": "r700",
    "eventType": "tagInventory",
    "tagInventoryEvent": {
        "epcHex": "3034257BF7194E4000003039",
        "antennaPort": 2,
        "peakRssiCdbm": -5120,
    },
}


async def _collect(reader: ImpinjIotReader, reads: list[TagObservation]) -> None:
    async with reader:
        async for batch in reader.batches():
            reads += batch


async def test_garbage_lines_are_skipped_and_counted() -> None:
    lines = [
        json.dumps(GOOD).encode(),
        b"{not json",
        json.dumps({**GOOD, "tagInventoryEvent": {"epcHex": "XYZ"}}).encode(),
        json.dumps({"eventType": "inventoryStatus", "inventoryStatusEvent": {}}).encode(),
        b"\xff\xfe garbage bytes",
        json.dumps([1, 2, 3]).encode(),
        json.dumps(GOOD).encode(),
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Connection: close\r\n\r\n" + b"\n".join(lines) + b"\n"
        )
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    health: list[ReaderHealth] = []
    config = ImpinjIotReaderConfig(
        kind="impinj_iot",
        id="r700",
        url=f"http://127.0.0.1:{port}{STREAM_PATH}",
        set_up=False,  # this server only streams
    )
    adapter = ImpinjIotReader(config, health.append)
    reads: list[TagObservation] = []
    async with server:
        task = asyncio.create_task(_collect(adapter, reads))
        await asyncio.sleep(1.0)  # the server sent every line at once
        task.cancel()
    assert [r.epc for r in reads] == ["3034257BF7194E4000003039"] * 2
    assert reads[0].antenna == 2 and reads[0].rssi_cdbm == -5120
    assert adapter.garbage_lines == 4  # not JSON x2, bad EPC, not an object
    assert [h.online for h in health] == [True]


async def test_unplugged_impinj_reader_is_offline_then_back_and_no_tag_goes_missing() -> None:
    lots = {"LOT-A": lot_tags(0, 10)}
    field = TagField(lots, read_rate=(0.8, 0.9), rng=random.Random(2))
    async with SimulatedImpinjReader(field, host="127.0.0.1", port=0, cycle_s=0.05) as sim:
        health: list[ReaderHealth] = []
        presence = LotPresence(
            [LotDefinition("LOT-A", frozenset(lots["LOT-A"]), 1.0)],
            started_us=time.time_ns() // 1000,
        )
        changes = []

        def on_health(h: ReaderHealth) -> None:
            health.append(h)
            if h.online:
                presence.reader_online(h.reader_id, h.at_us)
            else:
                changes.extend(presence.reader_offline(h.reader_id, h.at_us))

        config = ImpinjIotReaderConfig(
            kind="impinj_iot",
            id="r700",
            url=f"http://127.0.0.1:{sim.port}{STREAM_PATH}",
            stale_after_s=0.5,
        )
        reads: list[TagObservation] = []
        task = asyncio.create_task(_collect(ImpinjIotReader(config, on_health), reads))
        seen = 0
        deadline = time.monotonic() + 12
        unplugged = False
        while time.monotonic() < deadline and not (unplugged and health[-1].online):
            changes += presence.observe_batch(reads[seen:])
            seen = len(reads)
            changes += presence.tick(time.time_ns() // 1000)
            if not unplugged and len(reads) > 20:
                sim._unplugged_until = asyncio.get_running_loop().time() + 2.0
                for stream in list(sim._streams):
                    stream.close()
                unplugged = True
            await asyncio.sleep(0.05)
        task.cancel()
    assert [h.online for h in health][:3] == [True, False, True]
    assert not [c for c in changes if c.state == "missing"], changes
